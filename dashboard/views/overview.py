"""The overview: global cards, recommendations, latest alerts and the 14-day chart.

Each refreshable part is its own partial, polled by static/js/poll.js only while the tab is visible.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse

from servers import alerts as alert_service
from servers.models import Alert
from servers.recommendations import get_recommendations

from .. import selectors
from ..access import operator_required
from ..display import chart_labels
from .common import back, page

LATEST_ALERTS = 8
CHART_DAYS = 14


def _context() -> dict:
    return {
        "stats": selectors.overview(),
        "recommendations": get_recommendations(),
        "alerts": list(Alert.objects.select_related("server")[:LATEST_ALERTS]),
        "daily": selectors.daily_volume(days=CHART_DAYS),
        "chart_labels": chart_labels(),
    }


def overview(request: HttpRequest) -> HttpResponse:
    return page(request, "dashboard/overview.html", _context())


def stats_partial(request: HttpRequest) -> HttpResponse:
    return page(request, "dashboard/partials/stat_cards.html", {"stats": selectors.overview()})


def recommendations_partial(request: HttpRequest) -> HttpResponse:
    return page(request, "dashboard/partials/recommendations.html", {"recommendations": get_recommendations()})


def alerts_partial(request: HttpRequest) -> HttpResponse:
    alerts = list(Alert.objects.select_related("server")[:LATEST_ALERTS])
    return page(request, "dashboard/partials/latest_alerts.html", {"alerts": alerts})


def daily_chart_partial(request: HttpRequest) -> HttpResponse:
    return page(request, "dashboard/partials/daily_chart_data.html", {"daily": selectors.daily_volume(days=CHART_DAYS)})


@operator_required
def acknowledge_alert(request: HttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(Alert.objects.select_related("server"), pk=pk)
    alert_service.acknowledge(alert, request.user)
    alert.refresh_from_db()
    if not request.htmx:
        return back(request, reverse("dashboard:overview"))
    template = (
        "dashboard/partials/alert_item.html" if request.POST.get("compact") else "dashboard/partials/alert_row.html"
    )
    return page(request, template, {"alert": alert})
