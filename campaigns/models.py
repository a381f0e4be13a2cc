from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from servers.models import Server


class ProspectList(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    prospect_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Prospect(models.Model):
    # No index of its own: the unique index below starts with the list, and with a second
    # index PostgreSQL scanned a whole list to filter an import chunk's lower-cased addresses.
    prospect_list = models.ForeignKey(
        ProspectList, on_delete=models.CASCADE, related_name="prospects", db_index=False
    )
    email = models.CharField(max_length=320)
    name = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=100, blank=True)
    custom = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            # One prospect per mailbox: mail servers treat Ana@example.com and ana@example.com
            # as one inbox, so a list holding both would mail it twice. The importer's
            # COPY and INSERT … ON CONFLICT DO NOTHING lean on this index to skip them.
            models.UniqueConstraint(F("prospect_list"), Lower("email"), name="one_prospect_per_list_address"),
        ]

    def __str__(self) -> str:
        return self.email


class ImportJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Done")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    prospect_list = models.ForeignKey(ProspectList, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=255)
    stored_path = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, help_text=_("Why the whole file was rejected, and how to fix it."))
    total_bytes = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    rows_total = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    rows_invalid = models.PositiveIntegerField(default=0)
    rows_suppressed = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def progress(self) -> float:
        if self.status in (self.Status.DONE, self.Status.REJECTED):
            return 100.0
        if not self.total_bytes:
            return 0.0
        return round(min(100.0, 100.0 * self.bytes_read / self.total_bytes), 1)


class ImportRowError(models.Model):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    line = models.PositiveIntegerField()
    reason = models.CharField(max_length=500)
    raw = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "line"]


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    name = models.CharField(max_length=200)
    prospect_list = models.ForeignKey(ProspectList, on_delete=models.PROTECT, related_name="campaigns")
    from_name = models.CharField(max_length=200, blank=True)
    from_email = models.EmailField()
    reply_to = models.EmailField(blank=True)
    subject = models.CharField(max_length=500)
    html_body = models.TextField(blank=True)
    text_body = models.TextField(blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    daily_max = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Counters move with F() updates in the same transactions as the messages they count.
    total = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    unknown = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def finished_count(self) -> int:
        return self.sent + self.bounced + self.failed + self.suppressed + self.unknown

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.finished_count)

    @property
    def progress(self) -> float:
        if not self.total:
            return 100.0 if self.status == self.Status.DONE else 0.0
        return round(100.0 * self.finished_count / self.total, 1)


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DEFERRED = "deferred", _("Deferred")
    BOUNCED = "bounced", _("Bounced")
    FAILED = "failed", _("Failed")
    SUPPRESSED = "suppressed", _("Suppressed")
    UNKNOWN = "unknown", _("Unknown: reply lost after DATA")
    CANCELLED = "cancelled", _("Cancelled")


FINAL_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.BOUNCED,
    MessageStatus.FAILED,
    MessageStatus.SUPPRESSED,
    MessageStatus.UNKNOWN,
    MessageStatus.CANCELLED,
)


class Message(models.Model):
    """One per (campaign, recipient) or per API send."""

    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    prospect = models.ForeignKey(Prospect, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_email = models.CharField(max_length=320)
    to_name = models.CharField(max_length=200, blank=True)
    region = models.CharField(max_length=20, blank=True, help_text=_("From the recipient's TLD and the routing rules."))
    status = models.CharField(max_length=12, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    reply_code = models.PositiveSmallIntegerField(null=True, blank=True)
    enhanced_status = models.CharField(max_length=12, blank=True)
    reply_text = models.TextField(blank=True)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    payload = models.JSONField(null=True, blank=True, help_text=_("Subject, bodies and headers of a single send."))
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["status", "next_attempt_at"],
                name="message_due",
                condition=Q(status__in=["queued", "deferred"]),
            ),
            models.Index(fields=["campaign", "status"]),
            models.Index(fields=["status", "lease_expires_at"], name="message_leased", condition=Q(status="sending")),
            # The dispatcher's read: one campaign's (or single sends') due messages, soonest first,
            # without walking the rows already sent.
            models.Index(
                fields=["campaign", "next_attempt_at"],
                name="message_campaign_due",
                condition=Q(status__in=["queued", "deferred"]),
            ),
            # A campaign's daily maximum counts the recipients first tried today.
            models.Index(fields=["campaign", "first_attempt_at"], name="message_campaign_first_try"),
            # Suppressing an address finds its pending mail (campaigns/suppression.pending_to).
            # Not partial on status: SQLite cannot use a partial index when the statuses are
            # bound parameters, as the ORM sends them.
            models.Index(Lower("to_email"), name="message_address"),
        ]

    def __str__(self) -> str:
        return f"{self.to_email} ({self.status})"


class DeliveryEvent(models.Model):
    """Append-only facts about a message. Aggregates are maintained as these arrive."""

    class Kind(models.TextChoices):
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        DEFERRED = "deferred", _("Deferred")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Complained")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        FAILED = "failed", _("Failed")
        UNKNOWN = "unknown", _("Unknown")

    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    code = models.PositiveSmallIntegerField(null=True, blank=True)
    enhanced_status = models.CharField(max_length=12, blank=True)
    category = models.CharField(max_length=12, blank=True)
    text = models.TextField(blank=True)
    source = models.CharField(max_length=20, default="smtp")
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["message", "-created_at"])]


class Suppression(models.Model):
    class Reason(models.TextChoices):
        UNSUBSCRIBE = "unsubscribe", _("Unsubscribed")
        HARD_BOUNCE = "hard_bounce", _("Hard bounce")
        COMPLAINT = "complaint", _("Complaint")
        MANUAL = "manual", _("Added by an operator")

    email = models.CharField(max_length=320, unique=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    source = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"


class DispatchLock(models.Model):
    """A named lease: whoever updates `expires_at` from the past to the future runs (single-flight)."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(default=timezone.now)


class WebhookDelivery(models.Model):
    """A signed webhook request already taken, remembered while its signature is still fresh.

    `digest` is SHA-256 over the signed content (timestamp and body), not over the signature:
    an ECDSA signature can be re-encoded into another valid one without the key, so a
    digest of the signature would let a captured request through a second time.
    """

    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)


class IdempotencyKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    response = models.JSONField(null=True)
    status_code = models.PositiveSmallIntegerField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_idempotency_key_per_user")]
