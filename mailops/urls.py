"""Every URL of the site. Each one needs a signed-in user except the sign-in page, /u/<token>/
(one-click unsubscribe), the SendGrid webhook (signed) and /metrics (bearer token); the
access table in tests/test_urls_access.py fails for any URL added without a decision."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated

from .login import ThrottledLoginView
from .metrics import metrics

urlpatterns = [
    # The admin's own sign-in form is not throttled: send it to ours.
    path("admin/login/", login_not_required(RedirectView.as_view(pattern_name="login", query_string=True)), name="admin-login"),
    path("admin/", admin.site.urls),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("metrics", metrics, name="metrics"),
    # drf-spectacular serves to anyone by default; the API's shape is for signed-in users only.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", permission_classes=[IsAuthenticated], template_name="api/swagger_ui.html"
        ),
        name="api-docs",
    ),
    path("api/", include("servers.api_urls")),
    path("api/", include("campaigns.api_urls")),
    path("api/", include("campaigns.send_urls")),
    path("", include("campaigns.unsubscribe_urls")),
    path("", include("campaigns.webhook_urls")),
    path("", include("dashboard.urls")),
]
