"""The suppression list: search, add, remove. Adding takes effect everywhere at once (campaigns/suppression.py)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from campaigns import suppression
from campaigns.models import Suppression

from ..access import operator_required
from ..forms import SearchForm, SuppressionForm
from .common import page, paginate


def suppressions(request: HttpRequest, form: SuppressionForm | None = None, status: int = 200) -> HttpResponse:
    search = SearchForm(request.GET or None)
    rows = Suppression.objects.all()
    q = search.cleaned_data.get("q", "") if search.is_valid() else ""
    if q:
        rows = rows.filter(email__icontains=q.strip().lower())
    reason = request.GET.get("reason", "")
    if reason in Suppression.Reason.values:
        rows = rows.filter(reason=reason)
    context = {
        "rows": paginate(request, rows),
        "search": search,
        "q": q,
        "reason": reason,
        "reasons": Suppression.Reason.choices,
        "form": form or SuppressionForm(),
    }
    template = (
        "dashboard/partials/suppression_table.html"
        if request.htmx and request.method == "GET"
        else "dashboard/suppressions.html"
    )
    return page(request, template, context, status=status)


@operator_required
def suppression_add(request: HttpRequest) -> HttpResponse:
    form = SuppressionForm(request.POST)
    if not form.is_valid():
        return suppressions(request, form, status=422)
    email = form.cleaned_data["email"]
    if suppression.suppress(
        email, reason=form.cleaned_data["reason"], source=f"dashboard: {request.user.get_username()}"
    ):
        messages.success(request, _("%(email)s is suppressed: it will never be sent to again.") % {"email": email})
    else:
        messages.info(request, _("%(email)s was already suppressed.") % {"email": email})
    return redirect("dashboard:suppressions")


@operator_required
def suppression_remove(request: HttpRequest) -> HttpResponse:
    email = request.POST.get("email", "")
    if suppression.unsuppress(email):
        messages.success(request, _("%(email)s removed from the suppression list.") % {"email": email})
    else:
        messages.warning(request, _("%(email)s was not on the suppression list.") % {"email": email})
    return redirect("dashboard:suppressions")
