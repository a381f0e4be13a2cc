from __future__ import annotations

from django.contrib import admin

from .models import Campaign, DeliveryEvent, ImportJob, Message, Prospect, ProspectList, Suppression


@admin.register(ProspectList)
class ProspectListAdmin(admin.ModelAdmin):
    list_display = ("name", "prospect_count", "created_at")
    search_fields = ("name",)


@admin.register(Prospect)
class ProspectAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "company", "country", "prospect_list")
    search_fields = ("email", "name", "company")
    list_filter = ("prospect_list",)
    list_select_related = ("prospect_list",)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("filename", "prospect_list", "status", "rows_total", "rows_imported", "rows_duplicate", "rows_invalid", "created_at")
    list_filter = ("status",)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "prospect_list", "total", "sent", "deferred", "bounced", "failed", "suppressed", "unknown", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "subject")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("to_email", "status", "campaign", "server", "attempts", "reply_code", "next_attempt_at", "sent_at")
    list_filter = ("status", "server")
    search_fields = ("to_email", "message_id")
    raw_id_fields = ("campaign", "prospect", "server")
    show_full_result_count = False


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "message", "server", "code", "enhanced_status", "source")
    list_filter = ("kind", "source")
    raw_id_fields = ("message",)
    show_full_result_count = False


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "reason", "source", "created_at")
    list_filter = ("reason",)
    search_fields = ("email",)
