"""Campaigns: create and edit with a live preview, test send, start/pause/resume/cancel, and
live progress (its own partial, polled while the campaign can still move)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.csp import CSP
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_POST

from campaigns import services
from campaigns.headers import HeaderInjection, InvalidAddress
from campaigns.models import Campaign, Prospect, ProspectList
from campaigns.rendering import CompiledMessage, InvalidMessage, RecipientRefused, RenderedMessage, render_preview
from mailops.errors import DomainError

from ..access import operator_required
from ..forms import CampaignForm, TestSendForm, add_domain_error
from .common import page, paginate

LIVE = (Campaign.Status.RUNNING, Campaign.Status.PAUSED)
PREVIEW_SESSION_KEY = "campaign_previews"
PREVIEWS_KEPT = 4
# The preview frame shows mail as a mail client would: its own inline styles, no scripts, no
# remote images (nothing leaves loopback), inside a sandboxed iframe of this site only.
PREVIEW_CSP = {
    "default-src": [CSP.NONE],
    "style-src": [CSP.UNSAFE_INLINE],
    "img-src": ["data:"],
    "frame-ancestors": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.NONE],
}


def campaigns(request: HttpRequest) -> HttpResponse:
    rows = Campaign.objects.select_related("prospect_list")
    return page(request, "dashboard/campaigns.html", {"campaigns": paginate(request, rows)})


def _campaign(pk: int) -> Campaign:
    return get_object_or_404(Campaign.objects.select_related("prospect_list"), pk=pk)


def _form_values(form: CampaignForm) -> dict[str, Any]:
    return {name: form.cleaned_data.get(name) for name in CampaignForm.FIELDS}


def campaign_new(request: HttpRequest) -> HttpResponse:
    initial = {}
    if request.GET.get("list"):
        initial["prospect_list"] = ProspectList.objects.filter(pk=request.GET["list"]).first()
    return page(request, "dashboard/campaign_form.html", {"form": CampaignForm(initial=initial), "campaign": None})


@operator_required
def campaign_create(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST)
    if form.is_valid():
        try:
            campaign = services.campaign_create(**_form_values(form))
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, _("Campaign created. Check the preview, send a test, then start it."))
            return redirect("dashboard:campaign-detail", pk=campaign.pk)
    return page(request, "dashboard/campaign_form.html", {"form": form, "campaign": None}, status=422)


def _initial(campaign: Campaign) -> dict[str, Any]:
    return {name: getattr(campaign, name) for name in CampaignForm.FIELDS}


def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    return page(
        request,
        "dashboard/campaign_form.html",
        {"form": CampaignForm(initial=_initial(campaign)), "campaign": campaign},
    )


@operator_required
def campaign_update(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    form = CampaignForm(request.POST, initial=_initial(campaign))
    if form.is_valid():
        changes = {name: form.cleaned_data.get(name) for name in form.changed_data if name in CampaignForm.FIELDS}
        try:
            if changes:
                services.campaign_update(campaign=campaign, **changes)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, _("Campaign saved."))
            return redirect("dashboard:campaign-detail", pk=campaign.pk)
    return page(request, "dashboard/campaign_form.html", {"form": form, "campaign": campaign}, status=422)


def _progress_context(campaign: Campaign) -> dict[str, Any]:
    progress = services.campaign_progress(campaign)
    return {"campaign": campaign, "progress": progress, "live": campaign.status in LIVE}


def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    context = _progress_context(campaign)
    context["test_form"] = TestSendForm()
    context.update(campaign_preview_for(campaign))
    return page(request, "dashboard/campaign_detail.html", context)


def campaign_progress(request: HttpRequest, pk: int) -> HttpResponse:
    return page(request, "dashboard/partials/campaign_progress.html", _progress_context(_campaign(pk)))


ACTIONS = {
    "start": services.campaign_start,
    "pause": services.campaign_pause,
    "resume": services.campaign_resume,
    "cancel": services.campaign_cancel,
}


@operator_required
def campaign_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404(action)
    campaign = _campaign(pk)
    try:
        campaign = ACTIONS[action](campaign=campaign)
    except DomainError as error:
        messages.error(request, error.message)
    if request.htmx:
        return page(request, "dashboard/partials/campaign_progress_action.html", _progress_context(_campaign(pk)))
    return redirect("dashboard:campaign-detail", pk=campaign.pk)


@operator_required
def campaign_test(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _campaign(pk)
    form = TestSendForm(request.POST)
    result: dict[str, Any] | None = None
    if form.is_valid():
        try:
            result = services.campaign_test_send(campaign=campaign, to=form.cleaned_data["to"])
        except DomainError as error:
            add_domain_error(form, error)
    context = {"campaign": campaign, "test_form": form, "result": result}
    if request.htmx:
        return page(request, "dashboard/partials/test_send.html", context, status=200 if result is not None else 422)
    if result is not None and result.get("success"):
        messages.success(request, _("Test sent through %(server)s.") % {"server": result.get("server")})
    else:
        messages.error(request, (result or {}).get("error") or _("The test could not be sent; see the form."))
    return redirect("dashboard:campaign-detail", pk=campaign.pk)


# --- preview ---------------------------------------------------------------------------------


def _sample_recipient(list_id: int | None) -> Mapping[str, object] | None:
    if not list_id:
        return None
    return (
        Prospect.objects.filter(prospect_list_id=list_id)
        .order_by("pk")
        .values("email", "name", "company", "country", "custom")
        .first()
    )


def _render(values: Mapping[str, Any], list_id: int | None) -> RenderedMessage:
    compiled = CompiledMessage.compile(
        subject=values.get("subject") or "",
        html=values.get("html_body") or "",
        text=values.get("text_body") or "",
        from_email=values.get("from_email") or "",
        from_name=values.get("from_name") or "",
        reply_to=values.get("reply_to") or None,
    )
    return render_preview(compiled, _sample_recipient(list_id))


@require_POST
def campaign_preview(request: HttpRequest) -> HttpResponse:
    """The live preview of the form as it is being typed; nothing is saved."""
    values = {name: request.POST.get(name, "") for name in CampaignForm.FIELDS}
    list_id = int(values["prospect_list"]) if str(values.get("prospect_list") or "").isdigit() else None
    context: dict[str, Any] = {}
    if not any((values.get(name) or "").strip() for name in ("subject", "html_body", "text_body")):
        return page(request, "dashboard/partials/campaign_preview.html", {"empty": True})
    try:
        rendered = _render(values, list_id)
    except (HeaderInjection, InvalidAddress, InvalidMessage, RecipientRefused) as exc:
        context["error"] = str(exc)
    else:
        key = hashlib.sha256(rendered.html.encode()).hexdigest()[:16]
        kept = dict(list(request.session.get(PREVIEW_SESSION_KEY, {}).items())[-(PREVIEWS_KEPT - 1) :])
        kept[key] = rendered.html
        request.session[PREVIEW_SESSION_KEY] = kept
        context.update({"rendered": rendered, "frame_url": reverse("dashboard:campaign-preview-frame") + f"?k={key}"})
    return page(request, "dashboard/partials/campaign_preview.html", context)


@xframe_options_sameorigin
@csp_override(PREVIEW_CSP)
def campaign_preview_frame(request: HttpRequest) -> HttpResponse:
    """The HTML part alone, for the sandboxed iframe: a saved campaign, or the last live preview."""
    if request.GET.get("campaign", "").isdigit():
        campaign = _campaign(int(request.GET["campaign"]))
        try:
            html = _render(
                {name: getattr(campaign, name) for name in CampaignForm.FIELDS}, campaign.prospect_list_id
            ).html
        except (HeaderInjection, InvalidAddress, InvalidMessage, RecipientRefused) as exc:
            html = format_html("<p>{}</p>", str(exc))
    else:
        html = request.session.get(PREVIEW_SESSION_KEY, {}).get(request.GET.get("k", ""))
        if html is None:
            raise Http404("preview expired")
    response = HttpResponse(html or "<p></p>", content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def campaign_preview_for(campaign: Campaign) -> dict[str, Any]:
    """The preview panel of a saved campaign (detail page)."""
    try:
        rendered = _render({name: getattr(campaign, name) for name in CampaignForm.FIELDS}, campaign.prospect_list_id)
    except (HeaderInjection, InvalidAddress, InvalidMessage, RecipientRefused) as exc:
        return {"error": str(exc)}
    return {"rendered": rendered, "frame_url": reverse("dashboard:campaign-preview-frame") + f"?campaign={campaign.pk}"}
