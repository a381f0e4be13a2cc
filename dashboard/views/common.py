"""What every dashboard view shares: rendering with the role, pagination, going back after a POST."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from mailops.permissions import is_operator

PAGE_SIZE = 50


def page(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HttpResponse:
    """Render with what every page needs: the role decides which controls appear."""
    context = dict(context or {})
    context.setdefault("can_operate", is_operator(request.user))
    return render(request, template, context, status=status)


def paginate(request: HttpRequest, queryset: Any, *, count: int | None = None, per_page: int = PAGE_SIZE) -> Page:
    """A page of `queryset`; `count` spares a COUNT(*) when an aggregate already knows it."""
    paginator = Paginator(queryset, per_page)
    if count is not None:
        paginator.count = count  # type: ignore[misc]
    return paginator.get_page(request.GET.get("page"))


def back(request: HttpRequest, default: str) -> HttpResponse:
    """After a form POST without HTMX: return to the page it came from (same host only)."""
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return redirect(target)
