from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "MAILOPS_PRODUCTION", "DEBUG")}
    base.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120)


def test_production_refuses_to_start_without_a_secret_key():
    result = _run("check", env={"MAILOPS_PRODUCTION": "true", "FIELD_ENCRYPTION_KEY": "x" * 44})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_a_field_encryption_key():
    result = _run("check", env={"MAILOPS_PRODUCTION": "true", "SECRET_KEY": "s" * 60})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY must be set" in result.stderr


def test_production_settings_pass_check_deploy():
    from cryptography.fernet import Fernet

    env = {
        "MAILOPS_PRODUCTION": "true",
        "SECRET_KEY": "k3y-" + "a1B2c3D4e5F6g7H8" * 4,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "mail.example.test",
    }
    result = _run("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_defaults_need_no_server():
    from django.conf import settings

    if not os.environ.get("DATABASE_URL"):
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    if not os.environ.get("REDIS_URL"):
        assert settings.CELERY_BROKER_URL == "filesystem://"
    assert settings.TIME_ZONE == "UTC" and settings.USE_TZ
