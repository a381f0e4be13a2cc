"""Mounted at the site root by mailops/urls.py: path("", include("campaigns.unsubscribe_urls"))."""

from __future__ import annotations

from django.urls import path

from .unsubscribe_views import unsubscribe

urlpatterns = [
    path("u/<str:token>/", unsubscribe, name="unsubscribe"),
]
