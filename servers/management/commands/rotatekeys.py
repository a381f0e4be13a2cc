"""`manage.py rotatekeys`: re-encrypt every secret under the first FIELD_ENCRYPTION_KEY.

Rotation procedure (docs/SECURITY.md): put the new key first (FIELD_ENCRYPTION_KEY=new,old),
restart, run this command, then drop the old key. A value already under the first key is
left alone, so running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from servers import fields


@dataclass
class Counts:
    rotated: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


def encrypted_columns() -> list[tuple[type, list[str]]]:
    """Every model with EncryptedTextField columns, found by type so a new secret field is never missed."""
    found = []
    for model in apps.get_models():
        columns = [f.column for f in model._meta.concrete_fields if isinstance(f, fields.EncryptedTextField)]
        if columns:
            found.append((model, columns))
    return found


def _under_first_key(stored: str, first: Fernet) -> bool:
    try:
        first.decrypt(stored[len(fields.PREFIX) :].encode())
    except InvalidToken:
        return False
    return True


def rotate_model(model: type, columns: list[str]) -> Counts:
    """Re-encrypt one model's columns, reading and writing the raw ciphertext.

    Raw SQL on purpose: the ORM would decrypt on read (from_db_value) and encrypt again on
    write (get_prep_value). Each row is rewritten only if its value is still the one read,
    so a secret an operator changes meanwhile is never overwritten with the old one.
    """
    counts = Counts()
    first = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode())
    qn = connection.ops.quote_name
    table, pk = qn(model._meta.db_table), qn(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk}, {', '.join(qn(c) for c in columns)} FROM {table} ORDER BY {pk}")
        rows = cursor.fetchall()
    for row in rows:
        for column, stored in zip(columns, row[1:]):
            if not stored:
                continue
            if not stored.startswith(fields.PREFIX):
                counts.unreadable.append(f"{model._meta.label} #{row[0]} {column} (not ciphertext)")
                continue
            if _under_first_key(stored, first):
                counts.current += 1
                continue
            try:
                new = fields.rotate(stored)
            except InvalidToken:
                counts.unreadable.append(f"{model._meta.label} #{row[0]} {column}")
                continue
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET {qn(column)} = %s WHERE {pk} = %s AND {qn(column)} = %s", [new, row[0], stored]
                )
                counts.rotated += cursor.rowcount
    return counts


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field under the first key in FIELD_ENCRYPTION_KEY (safe to run again)."

    def handle(self, *args, **options):
        total = Counts()
        for model, columns in encrypted_columns():
            counts = rotate_model(model, columns)
            total.rotated += counts.rotated
            total.current += counts.current
            total.unreadable += counts.unreadable
            self.stdout.write(
                f"{model._meta.label}: {counts.rotated} re-encrypted, {counts.current} already under the current key"
            )
        self.stdout.write(f"total: {total.rotated} re-encrypted, {total.current} already current")
        if total.unreadable:
            raise CommandError(
                "these values cannot be decrypted with any key in FIELD_ENCRYPTION_KEY (was an old key removed too "
                "early? put it back after the new one and run again): " + "; ".join(total.unreadable)
            )
