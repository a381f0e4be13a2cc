"""What the figures were measured on: CPU, cores, memory, Python, database and broker."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import psutil


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def database_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        if connection.vendor == "sqlite":
            import sqlite3

            cursor.execute("PRAGMA journal_mode")
            return f"SQLite {sqlite3.sqlite_version} ({cursor.fetchone()[0].upper()} journal)"
    return connection.vendor


def broker_version(redis_url: str) -> str:
    if not redis_url:
        return "kombu filesystem transport"
    import redis

    client = redis.Redis.from_url(redis_url)
    info = client.info("server")
    client.close()
    return f"Redis {info.get('redis_version', '?')}"


def describe(*, redis_url: str) -> dict[str, Any]:
    import django

    memory = psutil.virtual_memory().total
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(memory / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "database": database_version(),
        "broker": broker_version(redis_url),
    }
