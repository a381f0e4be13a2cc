from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.include_format_suffixes = False  # one URL per resource, no /servers.json twins
router.register("servers", api.ServerViewSet, basename="api-server")
router.register("alerts", api.AlertViewSet, basename="api-alert")

urlpatterns = [
    path("email-config/multi-server", api.MultiServerConfigView.as_view(), name="api-multi-server"),
    path("presets/", api.PresetListView.as_view(), name="api-presets"),
    path("presets/recommend/", api.PresetRecommendationView.as_view(), name="api-preset-recommend"),
    path("configuration/", api.ActiveConfigurationView.as_view(), name="api-configuration"),
    path("configuration/save-as-preset/", api.SaveAsPresetView.as_view(), name="api-configuration-save-as-preset"),
    path("statistics/", api.StatisticsView.as_view(), name="api-statistics"),
    path("recommendations/", api.RecommendationsView.as_view(), name="api-recommendations"),
    *router.urls,
]
