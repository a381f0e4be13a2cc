"""The alerts page: every alert, filtered by level, kind and whether it was acknowledged."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from servers.models import Alert

from .common import page, paginate

ACK_CHOICES = ("", "no", "yes")


def alerts(request: HttpRequest) -> HttpResponse:
    rows = Alert.objects.select_related("server", "acknowledged_by")
    level = request.GET.get("level", "")
    kind = request.GET.get("kind", "")
    acknowledged = request.GET.get("acknowledged", "")
    if level in Alert.Level.values:
        rows = rows.filter(level=level)
    else:
        level = ""
    kinds = list(Alert.objects.order_by("kind").values_list("kind", flat=True).distinct())
    if kind in kinds:
        rows = rows.filter(kind=kind)
    else:
        kind = ""
    if acknowledged == "yes":
        rows = rows.filter(acknowledged_at__isnull=False)
    elif acknowledged == "no":
        rows = rows.filter(acknowledged_at__isnull=True)
    else:
        acknowledged = ""
    context = {
        "alerts": paginate(request, rows),
        "levels": Alert.Level.choices,
        "kinds": kinds,
        "level": level,
        "kind": kind,
        "acknowledged": acknowledged,
    }
    template = "dashboard/partials/alert_table.html" if request.htmx else "dashboard/alerts.html"
    return page(request, template, context)
