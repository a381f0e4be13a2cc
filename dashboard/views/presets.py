"""Presets and costs: the 15 presets by tier, the seed's cost table, the volume box, applying a
preset or a custom configuration (always through a confirmation that shows what changes), and
the rotation strategy."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from mailops.errors import DomainError
from servers.configuration import (
    active_configuration,
    apply_plan,
    get_presets,
    plan_change,
    recommend_preset,
    set_rotation_strategy,
)
from servers.models import Preset, Tier

from ..access import operator_required
from ..forms import CustomConfigForm, RotationForm, VolumeForm, add_domain_error
from .common import page

TIER_ORDER = [t.value for t in Tier]
# The rows of the seed's "Comparación de Costos" table, in its order.
COMPARISON_KEYS = [
    "starter",
    "basic-dual",
    "professional",
    "business",
    "enterprise",
    "hybrid-basic",
    "hybrid-professional",
]
UPGRADE_AT = 0.8


def _tiers(presets: dict[str, Preset]) -> list[dict[str, Any]]:
    groups: dict[str, list[Preset]] = {}
    for preset in sorted(presets.values(), key=lambda p: (p.position, p.key)):
        groups.setdefault(preset.tier, []).append(preset)
    labels = dict(Tier.choices)
    return [{"key": t, "label": labels[t], "presets": groups[t]} for t in TIER_ORDER if t in groups]


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    presets = get_presets()
    config = active_configuration()
    context = {
        "tiers": _tiers(presets),
        "comparison": [presets[k] for k in COMPARISON_KEYS if k in presets],
        "config": config,
        "volume_form": VolumeForm(),
        "custom_form": CustomConfigForm(),
        "rotation_form": RotationForm(initial={"strategy": config.rotation_strategy} if config else None),
    }
    context.update(extra)
    return context


def presets(request: HttpRequest) -> HttpResponse:
    return page(request, "dashboard/presets.html", _context(request))


def recommend(request: HttpRequest) -> HttpResponse:
    """The volume box: which preset fits N emails a day (the seed's FAQ ladder)."""
    form = VolumeForm(request.GET or None)
    context: dict[str, Any] = {"volume_form": form}
    if form.is_valid():
        volume = form.cleaned_data["emails_per_day"]
        preset = Preset.objects.select_related("warmup_schedule").filter(key=recommend_preset(volume)).first()
        context.update({"volume": volume, "preset": preset})
        if preset is not None and preset.emails_per_day:
            share = volume / preset.emails_per_day
            context.update(
                {
                    "utilisation": round(100 * share),
                    "over_capacity": share > 1,
                    "near_capacity": UPGRADE_AT < share <= 1,
                }
            )
    return page(request, "dashboard/partials/volume_result.html", context)


def _plan_from_post(request: HttpRequest) -> tuple[Any, CustomConfigForm | None, str | None]:
    """(plan, custom form, preset key); plan is None when the input is invalid (errors are on the form)."""
    if request.POST.get("kind") == "preset":
        key = request.POST.get("preset", "")
        return plan_change("preset", key), None, key
    form = CustomConfigForm(request.POST)
    if not form.is_valid():
        return None, form, None
    try:
        return plan_change("custom", form.as_config()), form, None
    except DomainError as error:
        add_domain_error(form, error)
        return None, form, None


@operator_required
def plan(request: HttpRequest) -> HttpResponse:
    """Show what applying would change; nothing is applied until the operator confirms."""
    try:
        change, form, key = _plan_from_post(request)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("dashboard:presets")
    if change is None:
        if request.htmx:
            # The errors belong in the form itself, not in the confirmation panel the request aimed at.
            response = page(request, "dashboard/partials/custom_form.html", {"custom_form": form}, status=422)
            return reswap(retarget(response, "#custom-form"), "outerHTML")
        return page(request, "dashboard/presets.html", _context(request, custom_form=form), status=422)
    context = {"plan": change, "custom_form": form, "preset_key": key, "config": active_configuration()}
    if request.htmx:
        return page(request, "dashboard/partials/plan_confirm.html", context)
    return page(request, "dashboard/presets.html", _context(request, **context))


@operator_required
def apply(request: HttpRequest) -> HttpResponse:
    try:
        change, form, _key = _plan_from_post(request)
        if change is None:
            raise DomainError(_("The configuration is no longer valid; check the form and try again."))
        config = apply_plan(change)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("Applied %(name)s: %(servers)s servers, %(capacity)s emails a day.")
            % {
                "name": config.name,
                "servers": config.server_count,
                "capacity": number_format(config.emails_per_day, force_grouping=True),
            },
        )
    target = reverse("dashboard:presets")
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


@operator_required
def rotation(request: HttpRequest) -> HttpResponse:
    form = RotationForm(request.POST)
    saved = False
    if form.is_valid():
        try:
            set_rotation_strategy(strategy=form.cleaned_data["strategy"])
            saved = True
        except DomainError as error:
            add_domain_error(form, error)
    if not request.htmx:
        if saved:
            messages.success(request, _("Rotation strategy saved."))
        return redirect("dashboard:presets")
    return page(
        request,
        "dashboard/partials/rotation_form.html",
        {"rotation_form": form, "saved": saved, "config": active_configuration()},
        status=200 if saved or form.is_valid() else 422,
    )
