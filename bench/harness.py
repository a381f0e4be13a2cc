"""`python -m bench [--quick]`: every measurement in one run, one table, bench/results.json.

The order matters only for fairness and for the clock: the sinks are measured first, the
baselines and the pipeline run against the same sinks while the database is still small,
and the dashboard's million rows are generated last so they weigh on nothing else.
A measurement that fails is reported as failed and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import environment
from .sinks import SinkFleet

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Sizes:
    mode: str
    pipeline: tuple[int, ...]
    sink_messages: int
    naive_messages: int
    peer_recipients: int
    api_calls: int
    import_rows: int
    dashboard_messages: int
    pick_calls: int
    quota_seconds: float
    dashboard_requests: int
    creation_recipients: int


QUICK = Sizes(
    mode="quick", pipeline=(20_000,), sink_messages=5_000, naive_messages=1_000, peer_recipients=2_000,
    api_calls=1_000, import_rows=100_000, dashboard_messages=100_000, pick_calls=100_000, quota_seconds=2.0,
    dashboard_requests=20, creation_recipients=100_000,
)
FULL = Sizes(
    mode="full", pipeline=(20_000, 200_000), sink_messages=20_000, naive_messages=5_000, peer_recipients=20_000,
    api_calls=1_000, import_rows=1_000_000, dashboard_messages=1_000_000, pick_calls=300_000, quota_seconds=5.0,
    dashboard_requests=50, creation_recipients=1_000_000,
)


def _log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; finishes in under 2 minutes")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "4")),
                        help="Celery worker processes (prefork concurrency) for the pipeline")
    parser.add_argument("--dispatch-interval", type=float, default=2.0,
                        help="seconds between dispatcher runs (the beat schedule's value)")
    parser.add_argument("--only", default="", help="comma-separated measurements to run (default: all)")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the JSON results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.time()
    _log(f"{sizes.mode} mode; starting 5 sinks")
    fleet = SinkFleet().start()
    try:
        env = environment.prepare(sink_ports=fleet.ports, alert_port=fleet.ports[0])
        _log(f"configuration: {env.label}; preparing the bench database")
        _setup_django()
        from . import machine

        description = machine.describe(redis_url=env.redis_url)
        results = run_all(args=args, sizes=sizes, env=env, fleet=fleet)
    finally:
        fleet.stop()
    from . import report

    document = {
        "mode": sizes.mode,
        "configuration": env.label,
        "started_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.time() - started, 1),
        "sizes": asdict(sizes),
        "machine": description,
        "results": results,
    }
    document["targets"] = report.targets(document)
    print(report.render(document))
    Path(args.output).write_text(json.dumps(document, indent=2, default=str) + "\n")
    _log(f"wrote {args.output} in {document['duration_s']}s")


def _setup_django() -> None:
    import warnings

    import django

    # whitenoise notes that collectstatic never ran; the bench serves no static files.
    warnings.filterwarnings("ignore", message="No directory at")
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)


def run_all(*, args: argparse.Namespace, sizes: Sizes, env: environment.BenchEnv, fleet: SinkFleet) -> dict[str, Any]:
    from . import api_latency, baselines, creation, dashboard, fixtures, imports, pipeline, pool, raw, sinks

    only = {name.strip() for name in args.only.split(",") if name.strip()}
    results: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], Any]) -> None:
        if only and name not in only:
            return
        _log(f"{name}…")
        begun = time.monotonic()
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc(file=sys.stderr)
        _log(f"{name} done in {time.monotonic() - begun:.1f}s: {_short(results[name])}")

    fixtures.configure_pool()
    from django.conf import settings

    batch = int(settings.MAILOPS["BATCH_SIZE"])
    step("sinks", lambda: sinks.measure_ceiling(fleet, per_sink=sizes.sink_messages))
    step("raw", lambda: raw.measure(ports=fleet.ports, messages=sizes.pipeline[0], processes=args.workers,
                                    batch=batch, message=fixtures.sample_message()))
    step("naive", lambda: _counted(fleet, lambda: baselines.measure(env, "naive", sizes.naive_messages)))
    step("peer", lambda: _counted(fleet, lambda: baselines.measure(env, "peer", sizes.peer_recipients, 2)))
    offset = 0
    for n in sizes.pipeline:
        step(f"pipeline_{n}", lambda n=n, offset=offset: pipeline.run(
            env=env, fleet=fleet, recipients=n, concurrency=args.workers,
            dispatch_interval=args.dispatch_interval, offset=offset, label=f"pipeline-{n}",
        ))
        offset += n
    step("creation", lambda: creation.measure(recipients=sizes.creation_recipients))
    step("api_send", lambda: _counted(fleet, lambda: api_latency.measure(env, calls=sizes.api_calls)))
    step("import", lambda: imports.measure(env, rows=sizes.import_rows))
    step("pick", lambda: pool.measure_pick(calls=sizes.pick_calls))
    step("reserve", lambda: pool.measure_reserve(env, seconds=sizes.quota_seconds, own_rows=sizes.mode == "full"))
    # Last: a million rows of history would weigh on everything measured after them.
    step("dashboard", lambda: dashboard.measure(messages=sizes.dashboard_messages, requests=sizes.dashboard_requests))
    return results


def _counted(fleet: SinkFleet, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a measurement and add how many messages the sinks received meanwhile."""
    before = fleet.total()
    result = fn()
    result["received_by_sinks"] = fleet.total() - before
    return result


def _short(result: Any) -> str:
    if isinstance(result, dict):
        keys = ("error", "msgs_per_s", "rows_per_s", "median_ms", "p99_ms")
        shown = {k: result[k] for k in keys if k in result}
        return json.dumps(shown or result, default=str)[:300]
    return str(result)[:300]
