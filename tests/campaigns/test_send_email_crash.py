"""A web process killed while a single send waits for the relay's reply after DATA.

The send runs in a child process, as a gunicorn worker would run it, against the test
database. The relay keeps the message and holds its final reply; the child is killed
with SIGKILL while it waits, so the outcome is never written. Once the lease expires the
dispatcher must count the message as unknown, never send it again.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns import dispatch
from campaigns.models import DeliveryEvent, Message, MessageStatus
from servers.models import ServerDailyStat
from servers.relay import Faults
from tests.support.celery_worker import ROOT, database_url
from tests.support.engine import make_config, make_server, recipients_of

pytestmark = pytest.mark.django_db(transaction=True)

# Long enough that the child is certainly still waiting when it is killed.
HELD_REPLY_SECONDS = 30.0

CHILD = """
import sys
import django
django.setup()
from campaigns.sending import send_email
send_email(to=sys.argv[1], subject="Your receipt", text="Thank you for your order.")
"""


def start_single_send(to: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailops.settings",
        "DATABASE_URL": database_url(),
        "MAILOPS_VAR_DIR": str(tmp_path / "web-var"),
        # The child must still be waiting for the reply when it dies, not time out first.
        "SMTP_DATA_TIMEOUT": str(HELD_REPLY_SECONDS * 2),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    log = open(tmp_path / "web.log", "wb")
    try:
        return subprocess.Popen([sys.executable, "-c", CHILD, to], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()


def test_a_single_send_killed_after_data_is_unknown_and_never_sent_again(relay_factory, tmp_path):
    relay = relay_factory(faults=Faults(slow=1.0, slow_delay=HELD_REPLY_SECONDS, slow_on=frozenset({"data"})))
    server = make_server(relay, name="SMTP Server 1")
    make_config()

    child = start_single_send("ana@example.com", tmp_path)
    try:
        relay.wait_for(1, timeout=30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL, (tmp_path / "web.log").read_text()

    message = Message.objects.get()
    # The outcome was never written: only the lease and the mark tell what happened.
    assert message.status == MessageStatus.SENDING
    assert message.sent_at is not None, "the hand-over to the relay was marked before DATA"

    after_lease = message.lease_expires_at + dt.timedelta(seconds=1)
    assert dispatch.reclaim_expired_leases(now=after_lease) == 0
    message.refresh_from_db()
    assert message.status == MessageStatus.UNKNOWN
    assert DeliveryEvent.objects.get(message=message).kind == DeliveryEvent.Kind.UNKNOWN
    assert ServerDailyStat.objects.get(server=server).unknown == 1

    # The next dispatch finds nothing to send: the message is counted, not resent.
    assert dispatch.run_once(now=after_lease).total_claimed == 0
    assert recipients_of(relay) == ["ana@example.com"]
