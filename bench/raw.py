"""The raw ceiling: pre-rendered bytes over reused connections, no database, no queue.

As many processes as the pipeline has workers each hold one connection to every sink and
send their share in batches of the pipeline's batch size, rotating over the sinks, with
RFC 2920 pipelining (one round trip per message). That is the most any design could push
through these sinks on this machine at this concurrency.
"""

from __future__ import annotations

import time
from multiprocessing import get_context
from typing import Any

from .wire import Connection, stuff

HOST = "127.0.0.1"


def _worker(args: tuple[list[int], int, int, int, bytes, float]) -> tuple[int, float]:
    ports, first, count, batch, payload, start_at = args
    connections = [Connection(HOST, port) for port in ports]
    pause = start_at - time.time()
    if pause > 0:
        time.sleep(pause)
    sent = 0
    turn = 0
    while sent < count:
        n = min(batch, count - sent)
        recipients = (f"r{first + sent + i}@example.com".encode() for i in range(n))
        sent += connections[turn % len(connections)].send_grouped(b"bounce@bench.localhost", recipients, payload)
        turn += 1
    ended = time.time()
    for conn in connections:
        conn.close()
    return sent, ended


def measure(*, ports: list[int], messages: int, processes: int, batch: int, message: bytes) -> dict[str, Any]:
    payload = stuff(message)
    share = -(-messages // processes)
    start_at = time.time() + 0.5 + 0.05 * processes
    jobs = [
        (ports, k * share, min(share, messages - k * share), batch, payload, start_at)
        for k in range(processes)
        if messages - k * share > 0
    ]
    with get_context("fork").Pool(len(jobs)) as pool:
        results = pool.map(_worker, jobs)
    sent = sum(r[0] for r in results)
    elapsed = max(r[1] for r in results) - start_at
    return {
        "messages": sent,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(sent / elapsed),
        "processes": len(jobs),
        "connections": len(jobs) * len(ports),
        "message_bytes": len(message),
        "batch": batch,
    }
