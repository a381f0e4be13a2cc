"""Single-send latency: `POST /api/send/` on a real HTTP server, one call after another.

The app runs under waitress (a production WSGI server, 4 threads) in its own process:
`python -m bench.api_latency serve` prints the port it listens on. The client keeps one
HTTP/1.1 connection and times each call from request to parsed response, so the figure
includes the HTTP stack, token authentication, throttling, validation, the Message row,
rotation, one SMTP session with a sink and the outcome recorded.
"""

from __future__ import annotations

import http.client
import json
import math
import statistics
import subprocess
import sys
import time
from typing import Any

from .environment import ROOT, BenchEnv

WARMUP = 20


def serve() -> None:
    import waitress

    from mailops.wsgi import application

    server = waitress.create_server(application, host="127.0.0.1", port=0, threads=4)
    print(f"listening {server.effective_port}", flush=True)
    server.run()


def _token() -> str:
    from rest_framework.authtoken.models import Token

    from .fixtures import operator

    token, _ = Token.objects.get_or_create(user=operator())
    return token.key


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def measure(env: BenchEnv, *, calls: int) -> dict[str, Any]:
    from .fixtures import reset_quota

    reset_quota()
    token = _token()
    (env.work / "logs").mkdir(parents=True, exist_ok=True)
    log = open(env.work / "logs" / "api-server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.api_latency", "serve"],
        cwd=ROOT, env=env.subprocess_env(), stdout=subprocess.PIPE, stderr=log, start_new_session=True,
    )
    log.close()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"the API server did not start: {line!r}")
        port = int(line[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        timings: list[float] = []
        statuses: dict[int, int] = {}
        servers: dict[str, int] = {}
        failures: list[str] = []
        for i in range(WARMUP + calls):
            body = json.dumps({
                "to": f"Traveller {i} <traveller{i}@example.org>",
                "subject": f"Your booking {i:06d} is confirmed",
                "text": f"Hello,\n\nbooking {i:06d} is confirmed for 2 travellers.\n",
                "html": f"<p>Hello,</p><p>booking <b>{i:06d}</b> is confirmed for 2 travellers.</p>",
            })
            started = time.perf_counter()
            conn.request("POST", "/api/send/", body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            try:
                payload = json.loads(raw or b"{}")
            except ValueError:
                payload = {"success": False, "body": raw[:300].decode(errors="replace")}
            elapsed = (time.perf_counter() - started) * 1000
            if i < WARMUP:
                continue
            timings.append(elapsed)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if payload.get("success"):
                servers[payload.get("server", "?")] = servers.get(payload.get("server", "?"), 0) + 1
            elif len(failures) < 3:
                failures.append(f"{response.status}: {str(payload)[:200]}")
        conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    result: dict[str, Any] = {
        "calls": calls,
        "warmup_calls": WARMUP,
        "server": "waitress 4 threads, one keep-alive client connection",
        "median_ms": round(statistics.median(timings), 2),
        "p95_ms": round(percentile(timings, 95), 2),
        "p99_ms": round(percentile(timings, 99), 2),
        "max_ms": round(max(timings), 2),
        "statuses": statuses,
        "by_server": servers,
    }
    if failures:
        result["error"] = "; ".join(failures)
    return result


if __name__ == "__main__":
    import django

    django.setup()
    if sys.argv[1:] == ["serve"]:
        serve()
