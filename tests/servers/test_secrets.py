from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from servers.fields import rotate
from servers.models import Server

pytestmark = pytest.mark.django_db


def _raw(column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM servers_server WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_the_raw_column_never_holds_the_password():
    server = Server.objects.create(kind="smtp", slot=1, name="SMTP Server 1", host="h", password="hunter2-secret", api_key="SG.abc.def")
    raw_password, raw_key = _raw("password", server.pk), _raw("api_key", server.pk)
    assert "hunter2" not in raw_password and raw_password.startswith("enc1:")
    assert "SG.abc" not in raw_key
    assert Server.objects.get(pk=server.pk).password == "hunter2-secret"


def test_encryption_is_not_deterministic():
    a = Server.objects.create(kind="smtp", slot=1, name="a", password="same")
    b = Server.objects.create(kind="smtp", slot=2, name="b", password="same")
    assert _raw("password", a.pk) != _raw("password", b.pk)


def test_empty_secrets_stay_empty():
    server = Server.objects.create(kind="smtp", slot=1, name="a")
    assert _raw("password", server.pk) == ""


def test_a_new_key_first_still_reads_old_values_and_rotation_moves_them(settings):
    old = settings.FIELD_ENCRYPTION_KEYS[0]
    server = Server.objects.create(kind="smtp", slot=1, name="a", password="pw")
    stored = _raw("password", server.pk)
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    assert Server.objects.get(pk=server.pk).password == "pw"
    rotated = rotate(stored)
    settings.FIELD_ENCRYPTION_KEYS = [new]
    from servers.fields import decrypt

    assert decrypt(rotated) == "pw"
