"""Writes on lists, imports and campaigns: keyword-only, typed, atomic where they must be.

Views, API endpoints, tasks and management commands call these and nothing else, so a
rule (what may be edited while paused, who may start what) lives in one place.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from mailops.errors import DomainError
from servers.configuration import active_configuration
from servers.daytime import day_start, sending_day
from servers.models import Quota, Server
from servers.rotation import eligible_servers

from .headers import HeaderInjection, InvalidAddress, check_header_value
from .models import Campaign, DeliveryEvent, ImportJob, Message, MessageStatus, Prospect, ProspectList, Suppression
from .rendering import SAMPLE_RECIPIENT, CompiledMessage, InvalidMessage, RecipientRefused

log = logging.getLogger(__name__)

PENDING = (MessageStatus.QUEUED, MessageStatus.DEFERRED)
UNFINISHED = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING)
Status = Campaign.Status

# Content may change while paused (fix a typo before resuming); the list only while a draft.
CONTENT_FIELDS = ("name", "from_name", "from_email", "reply_to", "subject", "html_body", "text_body")
SCHEDULE_FIELDS = ("scheduled_at", "daily_max")
EDITABLE = {
    Status.DRAFT: {*CONTENT_FIELDS, *SCHEDULE_FIELDS, "prospect_list"},
    Status.PAUSED: {*CONTENT_FIELDS, *SCHEDULE_FIELDS},
    Status.RUNNING: {"name", *SCHEDULE_FIELDS},
}


# --- lists and imports ----------------------------------------------------------------------


def list_create(*, name: str, description: str = "") -> ProspectList:
    name = (name or "").strip()
    if not name:
        raise DomainError("a list needs a name", field="name")
    return ProspectList.objects.create(name=name[:200], description=description or "")


def import_create(
    *, prospect_list: ProspectList, upload: IO[bytes], filename: str, user: Any = None, run_async: bool = True
) -> ImportJob:
    """Store an uploaded CSV and queue its import; the dashboard polls the returned job."""
    from . import importer

    job = importer.store_upload(prospect_list=prospect_list, upload=upload, filename=filename, user=user)
    if run_async and job.status == ImportJob.Status.PENDING:
        job_id = job.pk
        transaction.on_commit(lambda: _enqueue("import_prospects", job_id))
    return job


# --- campaigns: create and edit -------------------------------------------------------------


def _compile(values: Mapping[str, Any]) -> CompiledMessage:
    """Compile the campaign's message, turning every content problem into a DomainError naming its field."""
    for field, header in (("subject", "Subject"), ("from_name", "From"), ("from_email", "From"), ("reply_to", "Reply-To")):
        try:
            check_header_value(header, values.get(field) or "")
        except HeaderInjection as exc:
            raise DomainError(str(exc), field=field) from exc
    try:
        return CompiledMessage.compile(
            subject=values.get("subject") or "",
            html=values.get("html_body") or "",
            text=values.get("text_body") or "",
            from_email=values.get("from_email") or "",
            from_name=values.get("from_name") or "",
            reply_to=values.get("reply_to") or None,
        )
    except InvalidAddress as exc:
        field = "reply_to" if "Reply-To" in str(exc) else "from_email"
        raise DomainError(str(exc), field=field) from exc
    except HeaderInjection as exc:
        raise DomainError(str(exc), field="subject") from exc
    except InvalidMessage as exc:
        field = "subject" if "subject" in str(exc) else "html_body"
        raise DomainError(str(exc), field=field) from exc


def _check_schedule(values: Mapping[str, Any]) -> None:
    daily_max = values.get("daily_max")
    if daily_max is not None and (not isinstance(daily_max, int) or isinstance(daily_max, bool) or daily_max < 1):
        raise DomainError("daily_max must be a whole number of at least 1, or empty for no limit", field="daily_max")
    scheduled_at = values.get("scheduled_at")
    if scheduled_at is not None and not isinstance(scheduled_at, dt.datetime):
        raise DomainError("scheduled_at must be a date and time", field="scheduled_at")
    if isinstance(scheduled_at, dt.datetime) and timezone.is_naive(scheduled_at):
        raise DomainError("scheduled_at needs a time zone (for example 2025-05-01T09:00:00Z)", field="scheduled_at")


def campaign_create(
    *,
    name: str,
    prospect_list: ProspectList,
    from_email: str,
    subject: str,
    from_name: str = "",
    reply_to: str = "",
    html_body: str = "",
    text_body: str = "",
    scheduled_at: dt.datetime | None = None,
    daily_max: int | None = None,
) -> Campaign:
    values = {
        "name": (name or "").strip(),
        "prospect_list": prospect_list,
        "from_email": (from_email or "").strip(),
        "from_name": (from_name or "").strip(),
        "reply_to": (reply_to or "").strip(),
        "subject": subject or "",
        "html_body": html_body or "",
        "text_body": text_body or "",
        "scheduled_at": scheduled_at,
        "daily_max": daily_max,
    }
    if not values["name"]:
        raise DomainError("a campaign needs a name", field="name")
    _compile(values)
    _check_schedule(values)
    return Campaign.objects.create(**values)


@transaction.atomic
def campaign_update(*, campaign: Campaign, **changes: Any) -> Campaign:
    """Change fields of a draft (anything), a paused campaign (content, schedule) or a running one (name, schedule)."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    allowed = EDITABLE.get(campaign.status, set())
    unknown = set(changes) - {*CONTENT_FIELDS, *SCHEDULE_FIELDS, "prospect_list"}
    if unknown:
        raise DomainError(f"cannot change {', '.join(sorted(unknown))}; editable fields are "
                          f"{', '.join(sorted({*CONTENT_FIELDS, *SCHEDULE_FIELDS, 'prospect_list'}))}")
    refused = set(changes) - allowed
    if refused:
        raise DomainError(
            f"a {campaign.status} campaign's {', '.join(sorted(refused))} cannot change"
            + ("; pause it first" if campaign.status == Status.RUNNING else ""),
            field=sorted(refused)[0],
        )
    values = {f: getattr(campaign, f) for f in (*CONTENT_FIELDS, *SCHEDULE_FIELDS)}
    values.update({k: (v.strip() if isinstance(v, str) and k not in ("subject", "html_body", "text_body") else v)
                   for k, v in changes.items()})
    if not (values.get("name") or "").strip():
        raise DomainError("a campaign needs a name", field="name")
    _compile(values)
    _check_schedule(values)
    for field, value in changes.items():
        setattr(campaign, field, values.get(field, value))
    campaign.save(update_fields=list(changes))
    return campaign


# --- campaigns: the lifecycle ---------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _region_sql(rules: Mapping[str, str]) -> tuple[str, list[str]]:
    """A CASE expression giving servers.routing.region_for(p.email, rules), evaluated by the database.

    The longest suffix wins, as in region_for; a suffix matches the end of the domain or the
    whole domain (".es" matches "x@agency.es" and "x@es").
    """
    if not rules:
        return "''", []
    whens: list[str] = []
    params: list[str] = []
    ordered = sorted(
        ((("." + s.lower().lstrip(".")), r) for s, r in rules.items()), key=lambda item: -len(item[0])
    )
    for suffix, region in ordered:
        whens.append("WHEN p.address LIKE %s ESCAPE '!' OR p.address LIKE %s ESCAPE '!' THEN %s")
        params += ["%" + _like_escape(suffix), "%@" + _like_escape(suffix[1:]), region]
    return "CASE " + " ".join(whens) + " ELSE '' END", params


def _insert_messages(campaign: Campaign, now: dt.datetime) -> int:
    """One INSERT … SELECT: a message per prospect, suppressed addresses already marked suppressed.

    Each address is lower-cased once, and the suppression list is joined once (a hash join
    on PostgreSQL), rather than probed per row for each column that depends on it.
    """
    config = active_configuration()
    region_case, region_params = _region_sql(config.routing_rules if config else {})
    qn = connection.ops.quote_name
    message = qn(Message._meta.db_table)
    prospect = qn(Prospect._meta.db_table)
    suppression = qn(Suppression._meta.db_table)
    sql = (
        f"INSERT INTO {message} (campaign_id, prospect_id, to_email, to_name, region, status, attempts, "
        f"next_attempt_at, enhanced_status, reply_text, message_id, created_at) "
        f"SELECT %s, p.id, p.email, p.name, {region_case}, "
        f"CASE WHEN s.email IS NULL THEN %s ELSE %s END, 0, %s, '', "
        f"CASE WHEN s.email IS NULL THEN '' ELSE %s END, '', %s "
        f"FROM (SELECT id, email, name, LOWER(email) AS address FROM {prospect} WHERE prospect_list_id = %s) p "
        # Suppression addresses are stored lower-cased (campaigns/suppression.normalize) and unique.
        f"LEFT JOIN {suppression} s ON s.email = p.address "
        f"ORDER BY p.id"
    )
    # Adapted as the ORM would: raw, SQLite would store "…+00:00" where the ORM stores no
    # offset, and its text comparison would then put a row due this very microsecond after now.
    at = connection.ops.adapt_datetimefield_value(now)
    params = [
        campaign.pk,
        *region_params,
        MessageStatus.QUEUED,
        MessageStatus.SUPPRESSED,
        at,
        "suppressed: on the suppression list when the campaign started",
        at,
        campaign.prospect_list_id,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def campaign_start(*, campaign: Campaign) -> Campaign:
    """Create the campaign's messages set-based and hand them to the dispatcher.

    The status flip and the INSERT … SELECT commit together, so a crash leaves a draft with
    no messages, and two clicks on "start" create one set of messages.
    """
    _compile({f: getattr(campaign, f) for f in CONTENT_FIELDS})
    now = timezone.now()
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign.pk, status=Status.DRAFT).update(
            status=Status.RUNNING, started_at=now
        ):
            current = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
            raise DomainError(f"only a draft campaign can be started; this one is {current}", field="status")
        total = _insert_messages(campaign, now)
        suppressed = Message.objects.filter(campaign_id=campaign.pk, status=MessageStatus.SUPPRESSED).count()
        Campaign.objects.filter(pk=campaign.pk).update(total=total, suppressed=suppressed)
        transaction.on_commit(_kick_dispatch)
    campaign.refresh_from_db()
    return campaign


def campaign_pause(*, campaign: Campaign) -> Campaign:
    """Stop new claims at once. Batches already on a connection finish; batches not yet begun hand their messages back."""
    if not Campaign.objects.filter(pk=campaign.pk, status=Status.RUNNING).update(status=Status.PAUSED):
        campaign.refresh_from_db()
        raise DomainError(f"only a running campaign can be paused; this one is {campaign.status}", field="status")
    campaign.refresh_from_db()
    return campaign


def campaign_resume(*, campaign: Campaign) -> Campaign:
    """Continue where it stopped: the queued and deferred messages are simply claimable again."""
    if not Campaign.objects.filter(pk=campaign.pk, status=Status.PAUSED).update(status=Status.RUNNING):
        campaign.refresh_from_db()
        raise DomainError(f"only a paused campaign can be resumed; this one is {campaign.status}", field="status")
    transaction.on_commit(_kick_dispatch)
    campaign.refresh_from_db()
    return campaign


@transaction.atomic
def campaign_cancel(*, campaign: Campaign) -> Campaign:
    """Stop everything: pending messages become cancelled; messages on a connection right now finish."""
    now = timezone.now()
    if not Campaign.objects.filter(
        pk=campaign.pk, status__in=[Status.DRAFT, Status.RUNNING, Status.PAUSED]
    ).update(status=Status.CANCELLED, finished_at=now):
        campaign.refresh_from_db()
        raise DomainError(f"a {campaign.status} campaign cannot be cancelled", field="status")
    cancel_pending_messages(campaign_ids=[campaign.pk])
    campaign.refresh_from_db()
    return campaign


def cancel_pending_messages(*, campaign_ids: list[int]) -> int:
    if not campaign_ids:
        return 0
    return Message.objects.filter(campaign_id__in=campaign_ids, status__in=PENDING).update(
        status=MessageStatus.CANCELLED, lease_expires_at=None, reply_text="campaign cancelled"
    )


def campaign_test_send(*, campaign: Campaign, to: str) -> dict[str, Any]:
    """Send the campaign's message once to `to`, merged with the list's first prospect (or a sample).

    It goes through the same rotation, quota and transports as any single send, so it uses
    one message of today's quota; the subject says it is a test.
    """
    from .sending import send_email

    compiled = _compile({f: getattr(campaign, f) for f in CONTENT_FIELDS})
    prospect = (
        Prospect.objects.filter(prospect_list_id=campaign.prospect_list_id)
        .values("email", "name", "company", "country", "custom")
        .first()
    )
    recipient: dict[str, Any] = dict(prospect) if prospect else dict(SAMPLE_RECIPIENT)
    recipient["email"] = to
    try:
        # Not a signed token: the footer's link in a test send unsubscribes nobody.
        rendered = compiled.render(recipient, message_pk=0, unsubscribe_token="test-send")
    except RecipientRefused as exc:
        raise DomainError(exc.reason, field="to") from exc
    return send_email(
        to=to,
        subject=f"[TEST] {rendered.subject}",
        html=rendered.html,
        text=rendered.text,
        from_=campaign.from_email,
        from_name=campaign.from_name,
        reply_to=campaign.reply_to or None,
    )


# --- progress ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capacity:
    today_remaining: int
    per_day: int
    per_second: float | None


def pool_capacity(*, now: dt.datetime | None = None) -> Capacity:
    """What the eligible pool can still send today, per full day, and per second when paced."""
    now = now or timezone.now()
    day = sending_day(now)
    servers = eligible_servers(now=now)
    rows = {q.server_id: q for q in Quota.objects.filter(server__in=[s.pk for s in servers], day=day)}
    today = 0
    per_day = 0
    per_second = 0.0
    unpaced = False
    for server in servers:
        cap = rows[server.pk].cap if server.pk in rows else server.cap_for(day)
        used = rows[server.pk].used if server.pk in rows else 0
        today += max(0, cap - used)
        per_day += server.cap_for(day + dt.timedelta(days=1))
        if server.min_delay_seconds > 0:
            per_second += 1.0 / server.min_delay_seconds
        else:
            unpaced = True
    return Capacity(today_remaining=today, per_day=per_day, per_second=None if unpaced else per_second or None)


def estimate_finish(
    *, remaining: int, capacity: Capacity, daily_max: int | None = None, now: dt.datetime | None = None
) -> dt.datetime | None:
    """When `remaining` messages would be through if they had the pool to themselves; None when it has no capacity."""
    now = now or timezone.now()
    if remaining <= 0:
        return now
    today = capacity.today_remaining if daily_max is None else min(capacity.today_remaining, daily_max)
    per_day = capacity.per_day if daily_max is None else min(capacity.per_day, daily_max)

    def paced(n: int) -> dt.timedelta:
        return dt.timedelta(seconds=n / capacity.per_second) if capacity.per_second else dt.timedelta(0)

    if remaining <= today:
        return now + paced(remaining)
    if per_day <= 0:
        return None
    left = remaining - today
    days = math.ceil(left / per_day)
    last_day_count = left - (days - 1) * per_day
    return day_start(sending_day(now) + dt.timedelta(days=days)) + paced(last_day_count)


def campaign_progress(campaign: Campaign) -> dict[str, Any]:
    """Counters, where the mail went, and when the rest should be through."""
    campaign.refresh_from_db()
    per_server: dict[int, dict[str, Any]] = {}
    rows = (
        Message.objects.filter(campaign_id=campaign.pk, server__isnull=False)
        .values("server_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    names = dict(Server.objects.values_list("pk", "name"))
    for row in rows:
        entry = per_server.setdefault(
            row["server_id"], {"server_id": row["server_id"], "server": names.get(row["server_id"], ""), "total": 0}
        )
        entry[row["status"]] = entry.get(row["status"], 0) + row["n"]
        entry["total"] += row["n"]
    pending = dict(
        Message.objects.filter(campaign_id=campaign.pk, status__in=UNFINISHED)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    remaining = sum(pending.values())
    finish = None
    if campaign.status in (Status.RUNNING, Status.PAUSED):
        finish = estimate_finish(remaining=remaining, capacity=pool_capacity(), daily_max=campaign.daily_max)
    return {
        "id": campaign.pk,
        "status": campaign.status,
        "total": campaign.total,
        "sent": campaign.sent,
        "deferred": campaign.deferred,
        "bounced": campaign.bounced,
        "failed": campaign.failed,
        "suppressed": campaign.suppressed,
        "unknown": campaign.unknown,
        "queued": pending.get(MessageStatus.QUEUED, 0),
        "waiting_retry": pending.get(MessageStatus.DEFERRED, 0),
        "sending": pending.get(MessageStatus.SENDING, 0),
        "remaining": remaining,
        "progress": round(100.0 * (campaign.total - remaining) / campaign.total, 1) if campaign.total else (
            100.0 if campaign.status == Status.DONE else 0.0
        ),
        "per_server": sorted(per_server.values(), key=lambda e: -e["total"]),
        "started_at": campaign.started_at,
        "finished_at": campaign.finished_at,
        "estimated_finish": finish,
    }


# --- unsubscribe -------------------------------------------------------------------------------


def unsubscribe(
    *, email: str, message_id: int | None = None, campaign_id: int | None = None, one_click: bool = False
) -> bool:
    """Suppress the address everywhere, at once; its queued and deferred messages become suppressed.

    Returns True when the address was not suppressed before. Messages already on a
    connection are caught by the sender's send-time re-check. The unsubscribe is also
    kept as a delivery event of the message it came from, for the campaign's report.
    """
    from .suppression import suppress

    how = "one-click" if one_click else "unsubscribe page"
    where = f" (campaign {campaign_id})" if campaign_id else ""
    with transaction.atomic():
        new = suppress(email, reason=Suppression.Reason.UNSUBSCRIBE, source=f"{how}{where}")
        repeat = DeliveryEvent.objects.filter(message_id=message_id, kind=DeliveryEvent.Kind.UNSUBSCRIBED).exists()
        if message_id and not repeat and Message.objects.filter(pk=message_id).exists():
            DeliveryEvent.objects.create(
                message_id=message_id, kind=DeliveryEvent.Kind.UNSUBSCRIBED, source="unsubscribe", text=how
            )
    return new


# --- helpers -----------------------------------------------------------------------------------


def _enqueue(task_name: str, *args: Any) -> None:
    """Queue a task; a broker hiccup must not undo a committed start (beat dispatches anyway)."""
    from . import tasks

    try:
        getattr(tasks, task_name).delay(*args)
    except Exception:  # noqa: BLE001 — the beat schedule is the safety net
        log.exception("could not queue %s%r; the periodic schedule will pick it up", task_name, args)


def _kick_dispatch() -> None:
    _enqueue("dispatch")
