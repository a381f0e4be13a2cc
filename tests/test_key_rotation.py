from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from servers.models import Server, ServerKind

pytestmark = pytest.mark.django_db

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def raw_columns(server: Server) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password, api_key FROM servers_server WHERE id = %s", [server.pk])
        return cursor.fetchone()


def rotate() -> str:
    out = io.StringIO()
    call_command("rotatekeys", stdout=out)
    return out.getvalue()


def make_servers() -> list[Server]:
    smtp = [
        Server.objects.create(kind=ServerKind.SMTP, slot=n, name=f"SMTP Server {n}", host="127.0.0.1", password=f"pw-{n}-s3cret")
        for n in range(1, 4)
    ]
    blank = Server.objects.create(kind=ServerKind.SMTP, slot=9, name="No password", host="127.0.0.1")
    sendgrid = Server.objects.create(kind=ServerKind.SENDGRID, slot=1, name="SendGrid", api_key="SG.abcdefghij.klmnopqrstuv")
    return [*smtp, blank, sendgrid]


def test_rotation_keeps_every_password_readable_under_the_new_key_alone(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    servers = make_servers()
    before = {s.pk: raw_columns(s) for s in servers}

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    report = rotate()
    assert "servers.Server: 4 re-encrypted, 0 already" in report

    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    for server in servers:
        fresh = Server.objects.get(pk=server.pk)
        assert (fresh.password, fresh.api_key) == (server.password, server.api_key)
        if server.password:
            assert raw_columns(server)[0] != before[server.pk][0]


def test_a_second_run_changes_nothing(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    servers = make_servers()
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    rotate()
    after_first = {s.pk: raw_columns(s) for s in servers}

    report = rotate()

    assert "0 re-encrypted, 4 already under the current key" in report
    assert {s.pk: raw_columns(s) for s in servers} == after_first


def test_without_rotation_dropping_the_old_key_would_lose_the_secrets(settings):
    """The failure the command exists to prevent, so the test above proves something."""
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    server = make_servers()[0]
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    with pytest.raises(Exception, match="cannot be decrypted"):
        Server.objects.get(pk=server.pk)


def test_a_value_no_key_can_read_is_reported_and_fails_the_command(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    server = make_servers()[0]
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    with pytest.raises(CommandError, match=rf"servers.Server #{server.pk} password"):
        rotate()
