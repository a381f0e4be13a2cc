"""The (empty) URL configuration of the test Celery worker; see worker_settings.py."""

from __future__ import annotations

urlpatterns: list[object] = []
