"""The dashboard's forms. They check shape (numbers, required fields) with translated messages;
the services behind them own the rules and answer with DomainError, which `add_domain_error`
puts next to the field it names."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from campaigns.models import ProspectList, Suppression
from mailops.errors import DomainError
from servers.configuration import MAX_DAILY_LIMIT, MAX_SERVERS
from servers.models import RotationStrategy, Server, ServerKind

# DomainError.field uses the API's names; the forms use Python's.
_FIELD_ALIASES = {
    "serverCount": "server_count",
    "dailyLimitPerServer": "daily_limit_per_server",
    "sendGridDailyLimit": "sendgrid_daily_limit",
    "includeSendGrid": "include_sendgrid",
    "warmupEnabled": "warmup_enabled",
    "rotationStrategy": "rotation_strategy",
}


# Lives in dashboard/templates/ because the default form renderer only searches app directories.
FIELD_TEMPLATE = "dashboard/forms/field.html"


class Styled:
    """Label, input, help text, errors, in that order (checkboxes inline), without a colon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for field in self.fields.values():  # type: ignore[attr-defined]
            field.template_name = FIELD_TEMPLATE


def add_domain_error(form: forms.BaseForm, error: DomainError) -> None:
    field = _FIELD_ALIASES.get(error.field or "") or re.sub(r"(?<!^)(?=[A-Z])", "_", error.field or "").lower()
    form.add_error(field if field in form.fields else None, error.message)


class VolumeForm(Styled, forms.Form):
    emails_per_day = forms.IntegerField(label=_("How many emails a day?"), min_value=0, max_value=10_000_000)


class CustomConfigForm(Styled, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    server_count = forms.IntegerField(label=_("SMTP servers"), min_value=1, max_value=MAX_SERVERS)
    daily_limit_per_server = forms.IntegerField(
        label=_("Daily limit per server"), min_value=1, max_value=MAX_DAILY_LIMIT, initial=500
    )
    include_sendgrid = forms.BooleanField(label=_("Add SendGrid as overflow"), required=False)
    sendgrid_daily_limit = forms.IntegerField(
        label=_("SendGrid emails a day"),
        min_value=1,
        max_value=MAX_DAILY_LIMIT,
        required=False,
        help_text=_("Empty: as much as the SMTP servers together."),
    )
    warmup_enabled = forms.BooleanField(label=_("Warm up new IPs"), required=False, initial=True)
    regions = forms.CharField(
        label=_("Regions"),
        required=False,
        help_text=_("Optional, comma-separated, e.g. US, EU, LATAM. Servers are spread evenly over them."),
    )

    def clean_regions(self) -> list[str]:
        raw = self.cleaned_data.get("regions") or ""
        return [r.strip().upper() for r in raw.split(",") if r.strip()]

    def as_config(self) -> dict[str, Any]:
        """The seed's custom configuration object."""
        data = self.cleaned_data
        config: dict[str, Any] = {
            "name": data["name"],
            "serverCount": data["server_count"],
            "dailyLimitPerServer": data["daily_limit_per_server"],
            "includeSendGrid": bool(data.get("include_sendgrid")),
            "warmupEnabled": bool(data.get("warmup_enabled")),
        }
        if data.get("include_sendgrid") and data.get("sendgrid_daily_limit"):
            config["sendGridDailyLimit"] = data["sendgrid_daily_limit"]
        if data.get("regions"):
            config["regions"] = data["regions"]
        return config


class RotationForm(Styled, forms.Form):
    strategy = forms.ChoiceField(label=_("Rotation strategy"), choices=RotationStrategy.choices)


class ServerForm(Styled, forms.ModelForm):
    """Edit a relay. Secrets are write-only: never rendered, and a blank field keeps the stored one."""

    password = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only. Leave blank to keep the current password."),
    )
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Write-only. Leave blank to keep the current key."),
    )

    class Meta:
        model = Server
        fields = [
            "name",
            "host",
            "port",
            "security",
            "verify_tls",
            "username",
            "ip_address",
            "bind_source_address",
            "helo_name",
            "region",
            "priority",
            "daily_limit",
            "min_delay_seconds",
            "warmup_enabled",
        ]
        labels = {
            "name": _("Name"),
            "host": _("Host"),
            "port": _("Port"),
            "security": _("Security"),
            "verify_tls": _("Verify the TLS certificate"),
            "username": _("Username"),
            "ip_address": _("Egress IP address"),
            "bind_source_address": _("Bind the IP as the source address"),
            "helo_name": _("HELO name"),
            "region": _("Region"),
            "priority": _("Priority"),
            "daily_limit": _("Daily limit"),
            "min_delay_seconds": _("Seconds between emails"),
            "warmup_enabled": _("Warm-up"),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.kind == ServerKind.SENDGRID:
            for name in (
                "host",
                "port",
                "security",
                "verify_tls",
                "username",
                "password",
                "bind_source_address",
                "helo_name",
            ):
                self.fields.pop(name, None)
        else:
            self.fields.pop("api_key")
        self.fields["priority"].widget = forms.Select(choices=[(1, _("1 — primary")), (2, _("2 — overflow / backup"))])
        self.fields["min_delay_seconds"].min_value = 0
        self.fields["min_delay_seconds"].widget.attrs["min"] = 0
        self.fields["min_delay_seconds"].widget.attrs["step"] = "0.1"

    def clean_min_delay_seconds(self) -> float:
        value = self.cleaned_data["min_delay_seconds"]
        if value < 0:
            raise forms.ValidationError(_("The delay cannot be negative."))
        return value

    def changes(self) -> dict[str, Any]:
        """What to hand to servers.services.server_update (which drops blank secrets)."""
        return {name: self.cleaned_data[name] for name in self.fields if name in self.cleaned_data}


class UploadForm(Styled, forms.Form):
    prospect_list = forms.ModelChoiceField(
        label=_("Add to list"), queryset=ProspectList.objects.all(), required=False, empty_label=_("— a new list —")
    )
    new_list_name = forms.CharField(label=_("New list name"), max_length=200, required=False)
    file = forms.FileField(
        label=_("CSV file"), help_text=_("Needs an email column; name, company and country are optional.")
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("prospect_list") and not (data.get("new_list_name") or "").strip():
            self.add_error("new_list_name", _("Choose a list or give the new list a name."))
        return data


class CampaignForm(Styled, forms.Form):
    name = forms.CharField(label=_("Campaign name"), max_length=200)
    prospect_list = forms.ModelChoiceField(label=_("Prospect list"), queryset=ProspectList.objects.all())
    from_name = forms.CharField(label=_("From name"), max_length=200, required=False)
    from_email = forms.EmailField(label=_("From address"))
    reply_to = forms.EmailField(label=_("Reply-To"), required=False)
    subject = forms.CharField(
        label=_("Subject"),
        max_length=500,
        help_text=_('Merge fields: {{ name }}, {{ company }}, {{ name|default:"there" }}'),
    )
    html_body = forms.CharField(label=_("HTML body"), required=False, widget=forms.Textarea(attrs={"rows": 10}))
    text_body = forms.CharField(
        label=_("Text body"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("Empty: made from the HTML body."),
    )
    scheduled_at = forms.DateTimeField(
        label=_("Start at"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        help_text=_("Empty: as soon as it is started."),
    )
    daily_max = forms.IntegerField(label=_("At most per day"), min_value=1, required=False)

    FIELDS = (
        "name",
        "prospect_list",
        "from_name",
        "from_email",
        "reply_to",
        "subject",
        "html_body",
        "text_body",
        "scheduled_at",
        "daily_max",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not (data.get("html_body") or "").strip() and not (data.get("text_body") or "").strip():
            self.add_error("html_body", _("Write an HTML body, a text body, or both."))
        return data


class TestSendForm(Styled, forms.Form):
    to = forms.EmailField(label=_("Send a test to"))


class SuppressionForm(Styled, forms.Form):
    email = forms.EmailField(label=_("Email address"))
    reason = forms.ChoiceField(label=_("Reason"), choices=Suppression.Reason.choices, initial=Suppression.Reason.MANUAL)


class SearchForm(Styled, forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=200)
