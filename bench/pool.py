"""Rotation and quota: the cost of one pick among 1,000 servers, and reservations/s under contention.

* pick: `servers.rotation.Pool.pick` over 1,000 eligible in-memory slots, for each strategy
  (and round-robin with three regions), timed over many calls. No database is involved:
  a Pool is a snapshot built once per dispatch run.
* reserve: 4 processes call `servers.quota.reserve(server, 1)` as fast as they can for a
  few seconds, twice: all on the SAME server row (the worst case: every reservation
  contends for one row lock), then each on a row of its own (as batch workers sending
  through different servers do). Each process is `python -m bench.pool reserve …` so each
  has its own connection. Afterwards `used` must equal the sum granted, or the figure is void.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from typing import Any

from .environment import ROOT, BenchEnv


def _slots(count: int, regions: tuple[str, ...] = ("",)) -> list[Any]:
    from servers.rotation import Slot

    rng = random.Random(7)
    return [
        Slot(id=i, name=f"s{i}", kind="smtp", priority=1, region=regions[i % len(regions)],
             reputation=round(rng.uniform(70, 100), 1), cap=10**9, used=rng.randrange(0, 1000))
        for i in range(1, count + 1)
    ]


def measure_pick(*, servers: int = 1000, calls: int = 100_000) -> dict[str, Any]:
    from servers.models import RotationStrategy
    from servers.rotation import Pool

    cases = [(strategy, ("",), "") for strategy in RotationStrategy.values]
    cases.append((RotationStrategy.ROUND_ROBIN.value, ("US", "EU", "LATAM"), "EU"))
    out: dict[str, Any] = {"servers": servers, "calls": calls}
    for strategy, regions, region in cases:
        built = time.perf_counter()
        pool = Pool(_slots(servers, regions), strategy=strategy, rng=random.Random(1))
        build_us = (time.perf_counter() - built) * 1e6
        pick = pool.pick
        started = time.perf_counter()
        for _ in range(calls):
            pick(region)
        per_pick = (time.perf_counter() - started) / calls * 1e6
        key = strategy if len(regions) == 1 else f"{strategy} ({len(regions)} regions, routed)"
        out[key] = {"us_per_pick": round(per_pick, 2), "build_us": round(build_us)}
    out["worst_us_per_pick"] = max(v["us_per_pick"] for v in out.values() if isinstance(v, dict))
    return out


def _reserve_loop(server_id: int, seconds: float) -> dict[str, int]:
    from servers import quota
    from servers.models import Server

    server = Server.objects.get(pk=server_id)  # connected before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()  # "go", sent once every process is ready
    calls = granted = 0
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        granted += quota.reserve(server, 1)
        calls += 1
    return {"calls": calls, "granted": granted}


def measure_reserve(env: BenchEnv, *, processes: int = 4, seconds: float = 3.0, own_rows: bool = True) -> dict[str, Any]:
    from servers.models import Server

    servers = list(Server.objects.filter(in_pool=True, kind="smtp").order_by("slot"))
    shared = _reserve_run(env, [servers[0]] * processes, seconds)
    # Quick mode skips the second run to stay under two minutes.
    own = _reserve_run(env, [servers[k % len(servers)] for k in range(processes)], seconds) if own_rows else None
    out: dict[str, Any] = {
        "processes": processes,
        "seconds": seconds,
        "reservations": shared["granted"],
        "reservations_per_s": round(shared["granted"] / seconds),
        "per_process": shared["per_process"],
        "own_rows_reservations_per_s": round(own["granted"] / seconds) if own else None,
        "row_used_matches": shared["consistent"] and (own is None or own["consistent"]),
    }
    if not out["row_used_matches"]:
        out["error"] = "a quota row's used count does not match the reservations granted"
    return out


def _reserve_run(env: BenchEnv, servers: list[Any], seconds: float) -> dict[str, Any]:
    from servers import quota
    from servers.daytime import sending_day
    from servers.models import Quota

    day = sending_day()
    for server in set(servers):
        quota.sync_cap(server, day)
    Quota.objects.filter(server__in=set(servers), day=day).update(used=0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.pool", "reserve", str(server.pk), str(seconds)],
            cwd=ROOT, env=env.subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for server in servers
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a reserving process did not start: {proc.communicate(timeout=30)[1][-2000:]}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"a reserving process failed:\n{stderr[-2000:]}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    granted = sum(r["granted"] for r in results)
    used = sum(Quota.objects.filter(server__in=set(servers), day=day).values_list("used", flat=True))
    Quota.objects.filter(server__in=set(servers), day=day).update(used=0)
    return {"granted": granted, "per_process": [r["granted"] for r in results], "consistent": used == granted}


if __name__ == "__main__":
    import django

    django.setup()
    if sys.argv[1] == "reserve":
        print(json.dumps(_reserve_loop(int(sys.argv[2]), float(sys.argv[3]))))
