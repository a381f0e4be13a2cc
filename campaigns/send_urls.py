"""URLs for single sends; mailops/urls.py includes them under /api/."""

from __future__ import annotations

from django.urls import path

from .api_send import SendView

urlpatterns = [
    path("send/", SendView.as_view(), name="api-send"),
]
