"""The bench's data: the pool aimed at the sinks, prospect lists, a campaign, an operator.

Bulk rows are written the fastest way each engine offers (COPY on PostgreSQL,
executemany on SQLite): they are setup, not what is being measured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

SUBJECT = "Spring rates for {{ company }}"
HTML = (
    "<html><body><p>Hello {{ name }},</p>"
    "<p>Our spring rates for {{ company }} are out. Twelve new routes, group fares from 49 EUR,"
    " and a commission table your agents will like.</p>"
    + "<p>Paragraph of offer details for travel agencies, with dates, routes and conditions.</p>" * 12
    + "<p>Reply to this mail and we will send the full table.</p><p>Kind regards,<br>The bench team</p>"
    "</body></html>"
)
TEXT = (
    "Hello {{ name }},\n\nOur spring rates for {{ company }} are out. Twelve new routes, group fares from 49 EUR,"
    " and a commission table your agents will like.\n\n"
    + "Paragraph of offer details for travel agencies, with dates, routes and conditions.\n" * 12
    + "\nReply to this mail and we will send the full table.\n\nKind regards,\nThe bench team\n"
)
FROM_EMAIL = "offers@bench.example"


def recipient(i: int) -> tuple[str, str, str, str]:
    """(email, name, company, country) of the i-th bench recipient: deterministic, spread over 500 domains."""
    return f"agent{i}@agency{i % 500}.example", f"Agent {i}", f"Agency {i % 500}", "ES"


def configure_pool(*, servers: int = 5, strategy: str = "round-robin") -> list[Any]:
    """A custom configuration with the sinks as its servers (SMTP_HOST_n), warm-up off, a daily limit out of reach."""
    from servers.configuration import MAX_DAILY_LIMIT, create_custom_config
    from servers.models import Quota, Server, ServerState

    create_custom_config(
        name="bench pool",
        server_count=servers,
        daily_limit_per_server=MAX_DAILY_LIMIT,
        warmup_enabled=False,
        rotation_strategy=strategy,
    )
    pool = Server.objects.filter(in_pool=True, kind="smtp")
    pool.update(state=ServerState.ACTIVE, state_reason="", suspect_until=None, next_send_at=None, min_delay_seconds=0)
    Quota.objects.filter(server__in=pool).update(used=0)
    return list(pool.order_by("slot"))


def reset_quota() -> None:
    from servers.models import Quota

    Quota.objects.update(used=0)


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def bulk_insert(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, chunk: int = 20000) -> None:
    """Insert many rows with COPY (PostgreSQL) or executemany (SQLite)."""
    if connection.vendor == "postgresql":
        _copy(table, columns, rows)
        return
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    adapt = connection.ops.adapt_datetimefield_value
    batch: list[Sequence[Any]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for row in rows:
            # Stored the way Django stores them, so string comparisons on SQLite order correctly.
            batch.append([adapt(v) if isinstance(v, dt.datetime) else v for v in row])
            if len(batch) >= chunk:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def make_list(name: str, count: int, *, offset: int = 0) -> Any:
    from campaigns.models import Prospect, ProspectList

    prospect_list = ProspectList.objects.create(name=name, prospect_count=count)
    now = timezone.now()
    custom = "{}"
    rows = (
        (prospect_list.pk, *recipient(i), custom, now)
        for i in range(offset, offset + count)
    )
    bulk_insert(
        Prospect._meta.db_table,
        ["prospect_list_id", "email", "name", "company", "country", "custom", "created_at"],
        rows,
    )
    return prospect_list


def make_campaign(prospect_list: Any, *, name: str) -> Any:
    from campaigns.services import campaign_create

    return campaign_create(
        name=name,
        prospect_list=prospect_list,
        from_email=FROM_EMAIL,
        from_name="Bench Travel",
        reply_to="sales@bench.example",
        subject=SUBJECT,
        html_body=HTML,
        text_body=TEXT,
    )


def sample_message() -> bytes:
    """One campaign message rendered exactly as the pipeline renders it, for the raw ceiling."""
    from campaigns.rendering import CompiledMessage
    from campaigns.unsubscribe import make_token

    compiled = CompiledMessage.compile(
        subject=SUBJECT, html=HTML, text=TEXT, from_email=FROM_EMAIL, from_name="Bench Travel",
        reply_to="sales@bench.example", list_unsubscribe=True,
    )
    email, name, company, country = recipient(1)
    rendered = compiled.render(
        {"email": email, "name": name, "company": company, "country": country, "custom": {}},
        message_pk=1,
        unsubscribe_token=make_token(email=email, message_id=1, campaign_id=1),
    )
    return rendered.data


def operator(username: str = "bench") -> Any:
    """An operator user (for the API and the dashboard)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    user.set_password("bench-password-not-secret")
    user.save()
    group, _ = Group.objects.get_or_create(name="operators")
    user.groups.add(group)
    return user
