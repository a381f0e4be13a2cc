"""Real Celery worker processes and the dispatcher loop, started and stopped by the bench.

The worker is `celery -A mailops worker --pool=prefork -c N`, exactly what production runs;
the dispatcher is `manage.py dispatch --loop` at the beat interval (beat itself would also
start the health and blocklist sweeps, which have no place in a throughput figure).
Each process's peak resident memory is read from /proc (VmHWM) just before it is stopped,
so a short spike between two samples cannot be missed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .environment import ROOT, BenchEnv

READY_TIMEOUT = 60.0


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Workers:
    env: BenchEnv
    concurrency: int
    dispatch_interval: float
    log_dir: Path
    worker: subprocess.Popen[bytes] | None = None
    dispatcher: subprocess.Popen[bytes] | None = None
    name: str = "bench"
    peaks: dict[str, float] = field(default_factory=dict)

    def start(self) -> Workers:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        celery = str(Path(sys.executable).with_name("celery"))
        log = open(self.log_dir / f"{self.name}-worker.log", "wb")
        self.worker = subprocess.Popen(
            [
                *self._profiled("worker"),
                celery, "-A", "mailops", "worker", "--pool=prefork", "-c", str(self.concurrency), "-Q", "celery",
                "--loglevel=INFO", "-n", f"{self.name}-{os.getpid()}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT, env=self.env.subprocess_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self._wait_ready()
        dlog = open(self.log_dir / f"{self.name}-dispatcher.log", "wb")
        self.dispatcher = subprocess.Popen(
            [*self._profiled("dispatcher"), sys.executable, "manage.py", "dispatch", "--loop", "--interval",
             str(self.dispatch_interval)],
            cwd=ROOT, env=self.env.subprocess_env(), stdout=dlog, stderr=subprocess.STDOUT, start_new_session=True,
        )
        dlog.close()
        return self

    def _profiled(self, role: str) -> list[str]:
        """With BENCH_PYSPY=<dir>, run the process under py-spy (collapsed stacks, children included)."""
        folder = os.environ.get("BENCH_PYSPY")
        if not folder:
            return []
        spy = str(Path(sys.executable).with_name("py-spy"))
        out = Path(folder) / f"{self.name}-{role}.txt"
        return [spy, "record", "-r", "200", "-f", "raw", "--subprocesses", "-o", str(out), "--"]

    def _wait_ready(self) -> None:
        assert self.worker is not None
        path = self.log_dir / f"{self.name}-worker.log"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{path.read_text(errors='replace')[-3000:]}")
            if b" ready." in path.read_bytes():
                # The pool's children exist once the worker says ready.
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Celery worker was not ready after {READY_TIMEOUT}s")

    def pool_pids(self) -> list[int]:
        if self.worker is None:
            return []
        try:
            return [p.pid for p in psutil.Process(self.worker.pid).children(recursive=False)]
        except psutil.NoSuchProcess:
            return []

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.worker, self.dispatcher))

    def record_peaks(self) -> dict[str, float]:
        if self.worker is not None:
            self.peaks["worker_main"] = peak_rss_mb(self.worker.pid)
            for k, pid in enumerate(self.pool_pids(), start=1):
                self.peaks[f"worker_{k}"] = peak_rss_mb(pid)
        if self.dispatcher is not None:
            self.peaks["dispatcher"] = peak_rss_mb(self.dispatcher.pid)
        return self.peaks

    def cpu_seconds(self) -> float:
        """User + system CPU the worker processes and the dispatcher have used so far."""
        pids = [p.pid for p in (self.worker, self.dispatcher) if p is not None] + self.pool_pids()
        total = 0.0
        for pid in pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        for proc in (self.dispatcher, self.worker):
            if proc is None or proc.poll() is not None:
                continue
            try:
                if os.environ.get("BENCH_PYSPY"):
                    # Stop what py-spy watches; py-spy then writes its file and exits by itself.
                    for child in psutil.Process(proc.pid).children():
                        child.send_signal(signal.SIGTERM)
                else:
                    os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
