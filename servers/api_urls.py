from django.urls import path

from . import api

urlpatterns = [
    path("email-config/multi-server", api.MultiServerConfigView.as_view(), name="api-multi-server"),
    path("presets/", api.PresetListView.as_view(), name="api-presets"),
    path("presets/recommend/", api.PresetRecommendationView.as_view(), name="api-preset-recommend"),
]
