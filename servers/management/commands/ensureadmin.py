from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from mailops.permissions import OPERATORS_GROUP


class Command(BaseCommand):
    help = "Create the first admin user with a random password, printed once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(f"an admin exists already; reset a password with: manage.py changepassword {username}")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email=f"{username}@localhost", password=password)
        user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
        self.stdout.write(self.style.SUCCESS(f"created admin user — username: {username}  password: {password}"))
        self.stdout.write("(shown once; change it with manage.py changepassword)")
