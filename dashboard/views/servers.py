"""The servers table (each row its own partial so an action swaps just that row) and the server
detail page with its charts, histories and edit form."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from mailops.errors import DomainError
from servers import health, services
from servers.configuration import advance_warmup_day
from servers.models import BlocklistCheck, HealthCheck, Server, ServerKind

from .. import selectors
from ..access import operator_only, operator_required
from ..display import chart_labels
from ..forms import ServerForm, add_domain_error
from .common import back, page

HISTORY_DAYS = 30
HEALTH_ROWS = 20
BLOCKLIST_ROWS = 30


def servers(request: HttpRequest) -> HttpResponse:
    include_idle = request.GET.get("all") == "1"
    return page(
        request,
        "dashboard/servers.html",
        {"rows": selectors.server_rows(include_idle=include_idle), "include_idle": include_idle},
    )


def rows_partial(request: HttpRequest) -> HttpResponse:
    include_idle = request.GET.get("all") == "1"
    return page(
        request,
        "dashboard/partials/server_rows.html",
        {"rows": selectors.server_rows(include_idle=include_idle), "include_idle": include_idle},
    )


def _server(pk: int) -> Server:
    return get_object_or_404(Server.objects.select_related("warmup_schedule"), pk=pk)


def _detail_context(server: Server, form: ServerForm | None = None) -> dict:
    volume = selectors.daily_volume(days=HISTORY_DAYS, server=server)
    return {
        "server": server,
        "row": selectors.server_row(server),
        "volume": volume,
        "reputation": selectors.reputation_history(server, volume),
        "health_checks": list(HealthCheck.objects.filter(server=server)[:HEALTH_ROWS]),
        "blocklist_checks": list(
            BlocklistCheck.objects.filter(server=server).exclude(status=BlocklistCheck.Status.CLEAR)[:BLOCKLIST_ROWS]
        ),
        "last_clear": BlocklistCheck.objects.filter(server=server, status=BlocklistCheck.Status.CLEAR).first(),
        # The edit form is fetched when opened (server_form) unless it comes back with errors:
        # it is the costliest part of the page and the page is mostly read.
        "form": form,
        "chart_labels": chart_labels(),
        "has_password": _has_secret(server),
    }


def detail(request: HttpRequest, pk: int) -> HttpResponse:
    return page(request, "dashboard/server_detail.html", _detail_context(_server(pk)))


@operator_only
def server_form(request: HttpRequest, pk: int) -> HttpResponse:
    server = _server(pk)
    return page(
        request,
        "dashboard/partials/server_form.html",
        {"server": server, "form": ServerForm(instance=server), "has_password": _has_secret(server)},
    )


def _has_secret(server: Server) -> bool:
    return bool(server.password) if server.kind == ServerKind.SMTP else bool(server.api_key)


@operator_required
def edit(request: HttpRequest, pk: int) -> HttpResponse:
    server = _server(pk)
    form = ServerForm(request.POST, instance=server)
    if not form.is_valid():
        return page(request, "dashboard/server_detail.html", _detail_context(server, form), status=422)
    try:
        server = services.server_update(server=_server(pk), **form.changes())
    except DomainError as error:
        add_domain_error(form, error)
        return page(request, "dashboard/server_detail.html", _detail_context(_server(pk), form), status=422)
    messages.success(request, _("Saved %(name)s.") % {"name": server.name})
    return redirect("dashboard:server-detail", pk=server.pk)


def _row_response(request: HttpRequest, server: Server) -> HttpResponse:
    if not request.htmx:
        return back(request, reverse("dashboard:servers"))
    server.refresh_from_db()
    return page(request, "dashboard/partials/server_row_action.html", {"row": selectors.server_row(server)})


@operator_required
def pause(request: HttpRequest, pk: int) -> HttpResponse:
    server = _server(pk)
    try:
        services.server_pause(server=server, reason=f"paused by {request.user.get_username()} from the dashboard")
    except DomainError as error:
        messages.warning(request, error.message)
    return _row_response(request, server)


@operator_required
def resume(request: HttpRequest, pk: int) -> HttpResponse:
    server = _server(pk)
    try:
        services.server_resume(server=server)
    except DomainError as error:
        messages.warning(request, error.message)
    return _row_response(request, server)


@operator_required
def advance(request: HttpRequest, pk: int) -> HttpResponse:
    server = _server(pk)
    try:
        server = advance_warmup_day(server)
    except DomainError as error:
        messages.error(request, error.message)
    return _row_response(request, server)


@operator_required
def check(request: HttpRequest, pk: int) -> HttpResponse:
    server = _server(pk)
    if not server.is_configured:
        messages.warning(request, _("%(name)s has no credentials yet; edit it first.") % {"name": server.name})
    else:
        health.check_server(server)
    return _row_response(request, server)
