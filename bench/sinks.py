"""The five sink relays, one process each, and their ceiling measured with a fast client.

The ceiling is measured two ways so the table can show the sinks are never the limit:
one sink alone with one client process, and all five at once with one client each
(those ten processes then share the machine's cores, as the pipeline does).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from . import sink
from .wire import Connection, stuff

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = b"From: bench@example.com\r\nTo: someone@example.com\r\nSubject: ceiling\r\n\r\n" + b"x" * 2000 + b"\r\n"


@dataclass
class SinkFleet:
    count: int = 5
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def start(self, *, timeout: float = 20.0) -> SinkFleet:
        for _ in range(self.count):
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.sink", "--host", HOST, "--port", "0"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            self.processes.append(proc)
        deadline = time.monotonic() + timeout
        for proc in self.processes:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().split()
            if len(line) != 2 or line[0] != "listening" or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"a sink did not start: {line!r}")
            self.ports.append(int(line[1]))
        return self

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def counts(self) -> list[int]:
        """Messages each sink has taken so far."""
        return [sink.query(HOST, port)[0] for port in self.ports]

    def total(self) -> int:
        return sum(self.counts())

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


def _blast_worker(args: tuple[int, int]) -> tuple[float, float]:
    port, count = args
    conn = Connection(HOST, port)
    started = time.time()
    conn.blast(b"bench@example.com", b"sink@example.com", stuff(SAMPLE), count)
    ended = time.time()
    conn.close()
    return started, ended


def measure_ceiling(fleet: SinkFleet, *, per_sink: int) -> dict[str, float | int]:
    """Messages/s one sink takes alone, and all five together, from pipelining blast clients."""
    ctx = get_context("fork")
    with ctx.Pool(1) as pool:
        started, ended = pool.map(_blast_worker, [(fleet.ports[0], per_sink)])[0]
    single = per_sink / (ended - started)
    with ctx.Pool(len(fleet.ports)) as pool:
        spans = pool.map(_blast_worker, [(port, per_sink) for port in fleet.ports])
    together = per_sink * len(fleet.ports) / (max(e for _, e in spans) - min(s for s, _ in spans))
    return {
        "one_sink_msgs_per_s": round(single),
        "all_sinks_msgs_per_s": round(together),
        "messages": per_sink * (len(fleet.ports) + 1),
        "message_bytes": len(SAMPLE),
        "loop": "uvloop" if _has_uvloop() else "asyncio",
    }


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    """`python -m bench.sinks`: start five sinks, print their ceiling, stop them."""
    fleet = SinkFleet().start()
    try:
        print(measure_ceiling(fleet, per_sink=int(os.environ.get("BENCH_SINK_MESSAGES", "20000"))))
        print("received", fleet.counts())
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
