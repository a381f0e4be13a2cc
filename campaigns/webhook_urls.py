"""Webhook routes, mounted at the site root by mailops/urls.py: path("", include("campaigns.webhook_urls"))."""

from __future__ import annotations

from django.urls import path

from .webhooks import sendgrid_events

urlpatterns = [
    path("webhooks/sendgrid/", sendgrid_events, name="sendgrid-webhook"),
]
