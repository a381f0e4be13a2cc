from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import Token, TokenProxy

from . import quota
from .models import Alert, BlocklistCheck, Configuration, HealthCheck, Preset, Quota, Server, ServerDailyStat, WarmupSchedule


class ServerForm(forms.ModelForm):
    """Secrets are write-only: the form never renders the stored value, and a blank field keeps it."""

    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave blank to keep the current password.")
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), help_text="Leave blank to keep the current key.")

    class Meta:
        model = Server
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["password"] = ""
        self.initial["api_key"] = ""

    def clean_password(self):
        return self.cleaned_data["password"] or (self.instance.password if self.instance.pk else "")

    def clean_api_key(self):
        return self.cleaned_data["api_key"] or (self.instance.api_key if self.instance.pk else "")


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    form = ServerForm
    list_display = ("name", "kind", "host", "port", "ip_address", "region", "priority", "state", "in_pool", "daily_limit", "reputation", "warmup_day_display")
    list_filter = ("kind", "state", "in_pool", "region", "priority", "warmup_enabled")
    search_fields = ("name", "host", "ip_address")
    readonly_fields = ("state_changed_at", "last_health_check_at", "last_health_ok", "consecutive_health_failures", "next_send_at", "created_at")

    @admin.display(description="Warm-up day")
    def warmup_day_display(self, obj: Server) -> str:
        return str(obj.warmup_day()) if obj.warmup_enabled else "—"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # Today's cap follows at once, as from the API and the dashboard: a new IP's warm-up
        # restart or a lower limit must hold for single sends too, not only after a dispatch.
        quota.sync_cap(obj)


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "tier", "recommended", "smtp_servers", "daily_limit_per_server", "sendgrid_daily_limit", "emails_per_day", "monthly_cost", "setup_cost", "cost_per_1000", "is_builtin")
    list_filter = ("tier", "recommended", "is_builtin")
    search_fields = ("key", "name")

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_builtin:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(WarmupSchedule)
class WarmupScheduleAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "unit", "steps", "is_builtin")

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_builtin:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Configuration)
class ConfigurationAdmin(admin.ModelAdmin):
    list_display = ("name", "tier", "is_active", "server_count", "daily_limit_per_server", "include_sendgrid", "rotation_strategy", "emails_per_day", "monthly_cost", "activated_at")
    list_filter = ("is_active", "tier", "rotation_strategy")


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ("server", "day", "used", "cap")
    list_filter = ("day",)
    date_hierarchy = "day"


@admin.register(ServerDailyStat)
class ServerDailyStatAdmin(admin.ModelAdmin):
    list_display = ("server", "day", "sent", "delivered", "deferred", "bounced", "complained", "failed", "unknown", "reputation")
    list_filter = ("server",)
    date_hierarchy = "day"


@admin.register(HealthCheck)
class HealthCheckAdmin(admin.ModelAdmin):
    list_display = ("server", "checked_at", "ok", "stage", "latency_ms", "error")
    list_filter = ("ok", "stage", "server")


@admin.register(BlocklistCheck)
class BlocklistCheckAdmin(admin.ModelAdmin):
    list_display = ("server", "checked_at", "ip_address", "zone", "status", "reason")
    list_filter = ("status", "zone")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "level", "kind", "server", "message", "emailed_at", "acknowledged_at", "acknowledged_by")
    list_filter = ("level", "kind", "acknowledged_at")


# --- API tokens -----------------------------------------------------------------------------------
# The project package is not an app, so the token admin lives here. INSTALLED_APPS lists
# rest_framework.authtoken before servers, so DRF's own TokenAdmin is registered by now.


def masked_key(key: str) -> str:
    """Enough of a token's key to tell tokens apart, never enough to use one."""
    return f"{key[:4]}…" if key else "—"


def _token_name(token: Token) -> str:
    return f"token of {token.user} ({masked_key(token.key)})"


# DRF's Token.__str__ is the key itself, and the admin names objects by str(obj): in titles,
# breadcrumbs, messages, its action log (LogEntry.object_repr, listed on the admin index and
# each history page) and the related objects a user's delete page lists. Nothing needs a
# token's str() to be its key (code that needs the key reads .key), so name it by its owner.
Token.__str__ = _token_name  # type: ignore[method-assign]


class ApiTokenAdmin(TokenAdmin):
    """DRF's token admin without the keys.

    A key is shown once, in the answer to the form that created it (as `createtoken` prints
    it once); no list, form, message or log entry shows more than its first four characters.
    A token is created or deleted, never edited: giving a key to another user would hand
    that user its powers.
    """

    list_display = ("key_prefix", "user", "created")
    list_display_links = ("key_prefix",)
    search_fields = ("user__username",)

    @admin.display(description="Key")
    def key_prefix(self, token: TokenProxy) -> str:
        return masked_key(token.key)

    def get_fields(self, request, obj=None):
        return ("user",) if obj is None else ("key_prefix", "user", "created")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("key_prefix", "user", "created")

    def has_change_permission(self, request, obj=None):
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            # Each user has at most one token: offer only those without one.
            kwargs["queryset"] = get_user_model().objects.filter(auth_token__isnull=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def response_add(self, request, obj, post_url_continue=None):
        # Rendered into this one response, not put in a message: messages travel in a cookie
        # and would carry the key to every later page until read.
        return TemplateResponse(
            request,
            "admin/authtoken/token_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Token created",
                "token": obj,
                "masked": masked_key(obj.key),
            },
        )


admin.site.unregister(TokenProxy)
admin.site.register(TokenProxy, ApiTokenAdmin)
