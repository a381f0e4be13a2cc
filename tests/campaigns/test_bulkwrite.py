from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.bulkwrite import update_rows
from campaigns.models import Message, MessageStatus
from servers.models import Server, ServerKind

pytestmark = pytest.mark.django_db


def _messages(count: int) -> list[Message]:
    return Message.objects.bulk_create(
        [Message(to_email=f"r{i}@example.org", status=MessageStatus.SENDING) for i in range(count)]
    )


def test_it_writes_each_rows_own_values_of_every_type():
    server = Server.objects.create(kind=ServerKind.SMTP, slot=1, name="SMTP Server 1", host="127.0.0.1")
    rows = _messages(3)
    when = timezone.now().replace(microsecond=123456)
    for i, message in enumerate(rows):
        message.status = [MessageStatus.SENT, MessageStatus.DEFERRED, MessageStatus.BOUNCED][i]
        message.attempts = i + 1
        message.server = server if i != 1 else None
        message.reply_code = [250, None, 550][i]
        message.enhanced_status = ["2.0.0", "", "5.1.1"][i]
        message.reply_text = f"reply 'quoted' {i}; DROP TABLE x"
        message.sent_at = when + dt.timedelta(seconds=i) if i != 2 else None

    assert update_rows(Message, rows, ["status", "attempts", "server", "reply_code", "enhanced_status",
                                       "reply_text", "sent_at"]) == 3

    stored = {m.pk: m for m in Message.objects.all()}
    for i, message in enumerate(rows):
        got = stored[message.pk]
        assert (got.status, got.attempts, got.server_id, got.reply_code, got.enhanced_status, got.reply_text,
                got.sent_at) == (message.status, message.attempts, message.server_id, message.reply_code,
                                 message.enhanced_status, message.reply_text, message.sent_at)


def test_it_leaves_rows_that_do_not_match_the_filters_alone():
    rows = _messages(4)
    Message.objects.filter(pk=rows[0].pk).update(status=MessageStatus.CANCELLED)
    for message in rows:
        message.reply_text = "written"

    assert update_rows(Message, rows, ["reply_text"], filters={"status": MessageStatus.SENDING}) == 3

    assert Message.objects.get(pk=rows[0].pk).reply_text == ""
    assert Message.objects.filter(reply_text="written").count() == 3


def test_it_splits_large_writes_into_chunks():
    rows = _messages(23)
    for message in rows:
        message.message_id = f"<{message.pk}@example.org>"

    assert update_rows(Message, rows, ["message_id"], batch_size=5) == 23

    assert all(m.message_id == f"<{m.pk}@example.org>" for m in Message.objects.all())
