from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from . import api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.include_format_suffixes = False  # one URL per resource, no /servers.json twins
router.register("lists", api.ProspectListViewSet, basename="api-list")
router.register("imports", api.ImportJobViewSet, basename="api-import")
router.register("campaigns", api.CampaignViewSet, basename="api-campaign")
router.register("suppressions", api.SuppressionViewSet, basename="api-suppression")

urlpatterns = [
    path("lists/<int:list_id>/prospects/", api.ListProspectsView.as_view(), name="api-list-prospects"),
    path("imports/<int:import_id>/errors/", api.ImportErrorsView.as_view(), name="api-import-errors"),
    # A file name, not a collection: no trailing slash, as the dashboard's download link.
    path("imports/<int:pk>/errors.csv", api.ImportJobViewSet.as_view({"get": "errors_csv"}), name="api-import-errors-csv"),
    *router.urls,
]
