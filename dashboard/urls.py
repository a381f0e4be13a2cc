from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.i18n import set_language

from .views import alerts, campaigns, overview, presets, prospects, servers, suppressions

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("partials/stats/", overview.stats_partial, name="stats-partial"),
    path("partials/recommendations/", overview.recommendations_partial, name="recommendations-partial"),
    path("partials/alerts/", overview.alerts_partial, name="alerts-partial"),
    path("partials/daily-chart/", overview.daily_chart_partial, name="daily-chart-partial"),
    path("alerts/", alerts.alerts, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", overview.acknowledge_alert, name="alert-acknowledge"),
    path("presets/", presets.presets, name="presets"),
    path("presets/recommend/", presets.recommend, name="preset-recommend"),
    path("presets/plan/", presets.plan, name="preset-plan"),
    path("presets/apply/", presets.apply, name="preset-apply"),
    path("presets/rotation/", presets.rotation, name="rotation"),
    path("servers/", servers.servers, name="servers"),
    path("servers/rows/", servers.rows_partial, name="server-rows"),
    path("servers/<int:pk>/", servers.detail, name="server-detail"),
    path("servers/<int:pk>/form/", servers.server_form, name="server-form"),
    path("servers/<int:pk>/edit/", servers.edit, name="server-edit"),
    path("servers/<int:pk>/pause/", servers.pause, name="server-pause"),
    path("servers/<int:pk>/resume/", servers.resume, name="server-resume"),
    path("servers/<int:pk>/advance-warmup/", servers.advance, name="server-advance"),
    path("servers/<int:pk>/check/", servers.check, name="server-check"),
    path("prospects/", prospects.prospects, name="prospects"),
    path("prospects/upload/", prospects.upload, name="prospect-upload"),
    path("prospects/lists/<int:pk>/", prospects.list_detail, name="list-detail"),
    path("prospects/imports/<int:pk>/", prospects.import_detail, name="import-detail"),
    path("prospects/imports/<int:pk>/progress/", prospects.import_progress, name="import-progress"),
    path("prospects/imports/<int:pk>/errors.csv", prospects.import_errors_csv, name="import-errors"),
    path("campaigns/", campaigns.campaigns, name="campaigns"),
    path("campaigns/new/", campaigns.campaign_new, name="campaign-new"),
    path("campaigns/create/", campaigns.campaign_create, name="campaign-create"),
    path("campaigns/preview/", campaigns.campaign_preview, name="campaign-preview"),
    path("campaigns/preview/frame/", campaigns.campaign_preview_frame, name="campaign-preview-frame"),
    path("campaigns/<int:pk>/", campaigns.campaign_detail, name="campaign-detail"),
    path("campaigns/<int:pk>/edit/", campaigns.campaign_edit, name="campaign-edit"),
    path("campaigns/<int:pk>/save/", campaigns.campaign_update, name="campaign-update"),
    path("campaigns/<int:pk>/progress/", campaigns.campaign_progress, name="campaign-progress"),
    path("campaigns/<int:pk>/test/", campaigns.campaign_test, name="campaign-test"),
    path("campaigns/<int:pk>/<slug:action>/", campaigns.campaign_action, name="campaign-action"),
    path("suppressions/", suppressions.suppressions, name="suppressions"),
    path("suppressions/add/", suppressions.suppression_add, name="suppression-add"),
    path("suppressions/remove/", suppressions.suppression_remove, name="suppression-remove"),
    # The sign-in page offers the language switch too, so choosing a language needs no login.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("i18n/", include("django.conf.urls.i18n")),
]
