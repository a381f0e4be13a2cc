"""`manage.py createtoken USER [--role operator|viewer]`: an API token for a program.

The user is created when missing (with an unusable password: it signs in only by token)
and put in exactly one role group, so a token's powers are the role's.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from mailops.permissions import OPERATORS_GROUP, VIEWERS_GROUP

ROLES = {"operator": OPERATORS_GROUP, "viewer": VIEWERS_GROUP}


class Command(BaseCommand):
    help = "Create (or with --rotate, replace) the API token of USER, creating the user with the given role if needed."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=sorted(ROLES), help="Put the user in this role (required for a new user).")
        parser.add_argument("--rotate", action="store_true", help="Replace an existing token; the old one stops working.")

    @transaction.atomic
    def handle(self, *args, username: str, role: str | None, rotate: bool, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            if role is None:
                raise CommandError(f"no user named {username!r}; pass --role operator or --role viewer to create one")
            user = User.objects.create_user(username=username)
            user.set_unusable_password()
            user.save(update_fields=["password"])
            self.stderr.write(f"created user {username!r} (token-only: it has no password)")
        if role is not None:
            user.groups.remove(*Group.objects.filter(name__in=ROLES.values()))
            user.groups.add(Group.objects.get_or_create(name=ROLES[role])[0])
        existing = Token.objects.filter(user=user).first()
        if existing is not None and not rotate:
            raise CommandError(
                f"{username!r} already has a token (created {existing.created:%Y-%m-%d}); "
                "pass --rotate to replace it, or delete it in the admin"
            )
        if existing is not None:
            existing.delete()
        token = Token.objects.create(user=user)
        roles = ", ".join(user.groups.filter(name__in=ROLES.values()).values_list("name", flat=True)) or "no role"
        self.stderr.write(f"token for {username!r} ({roles}); it is shown once, store it now:")
        self.stdout.write(token.key)
