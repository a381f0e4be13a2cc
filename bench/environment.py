"""Where the benchmark runs: a database, broker and scratch folder of its own, never the user's.

* PostgreSQL (DATABASE_URL set): the bench uses `<name>_bench` on the same server, dropped
  and created afresh for each run. The user's database is never opened.
* Redis (REDIS_URL set): the bench uses database index BENCH_REDIS_DB (default 15) on the
  same server, so its queue cannot mix with the user's; only Celery's queue keys there are purged.
* Otherwise the embedded default: SQLite and the filesystem broker in bench/work/<engine>/,
  wiped at the start of each run.

Everything is handed to child processes through the environment, so the Celery workers,
the dispatcher and every measuring subprocess see exactly what this process sees.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
SINK_HOST = "127.0.0.1"


@dataclass
class BenchEnv:
    engine: str  # "postgresql" or "sqlite"
    broker: str  # "redis" or "filesystem"
    database_url: str
    redis_url: str
    work: Path
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{'PostgreSQL' if self.engine == 'postgresql' else 'SQLite'} + {'Redis' if self.broker == 'redis' else 'filesystem broker'}"

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.variables)
        env.update(extra)
        return env


def bench_database_url(url: str) -> str:
    """`postgres://…/mailops` → `postgres://…/mailops_bench` (kept as is when it already ends in _bench)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "mailops"
    if not name.endswith("_bench"):
        name = f"{name}_bench"
    return urlunsplit(parts._replace(path="/" + name))


def bench_redis_url(url: str) -> str:
    parts = urlsplit(url)
    index = os.environ.get("BENCH_REDIS_DB", "15")
    return urlunsplit(parts._replace(path="/" + index))


def _recreate_postgres(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    assert name.endswith("_bench"), name  # never drop anything but the bench's own database
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def prepare(*, sink_ports: list[int], alert_port: int) -> BenchEnv:
    """Decide the configuration, reset the bench's own state, and export it to os.environ."""
    user_db = os.environ.get("DATABASE_URL", "")
    user_redis = os.environ.get("REDIS_URL", "")
    engine = "postgresql" if user_db.startswith(("postgres://", "postgresql://", "pgsql://")) else "sqlite"
    if user_db and engine == "sqlite" and not user_db.startswith("sqlite"):
        raise SystemExit(f"the bench supports PostgreSQL or the embedded SQLite, not {urlsplit(user_db).scheme}")
    broker = "redis" if user_redis else "filesystem"
    work = WORK / f"{engine}-{broker}"
    if work.exists():
        shutil.rmtree(work)
    (work / "var").mkdir(parents=True)
    database_url = ""
    if engine == "postgresql":
        database_url = bench_database_url(user_db)
        _recreate_postgres(database_url)
    redis_url = bench_redis_url(user_redis) if user_redis else ""

    variables = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "MAILOPS_VAR_DIR": str(work / "var"),
        # Production-like: no per-query bookkeeping, no debug toolbar of errors.
        "DEBUG": "false",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "ALERT_SMTP_HOST": SINK_HOST,
        "ALERT_SMTP_PORT": str(alert_port),
        "PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        # Nothing outward: the sweeps never run in the bench, but a stray lookup would stay on loopback.
        "DNS_RESOLVER": "127.0.0.1",
        "DNS_RESOLVER_PORT": "5399",
    }
    if database_url:
        variables["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    if redis_url:
        variables["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    for n, port in enumerate(sink_ports, start=1):
        variables[f"SMTP_HOST_{n}"] = SINK_HOST
        variables[f"SMTP_PORT_{n}"] = str(port)
        variables[f"SMTP_SECURITY_{n}"] = "none"
        variables[f"SMTP_IP_{n}"] = f"127.0.0.{10 + n}"
        variables[f"SMTP_HELO_{n}"] = "bench.localhost"
    os.environ.update(variables)
    return BenchEnv(
        engine=engine, broker=broker, database_url=database_url, redis_url=redis_url, work=work, variables=variables
    )
