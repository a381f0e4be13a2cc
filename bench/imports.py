"""Import: a generated CSV through the real ImportJob path, in a process of its own.

The file looks like a real export: a BOM-less UTF-8 CSV with email, name, company,
country and one extra column (a custom merge field), about 0.5% invalid addresses and
0.5% repeated ones. `python -m bench.imports run FILE` creates a list, an ImportJob for
the file and runs it exactly as `manage.py importprospects` does; it prints rows/s and
its own peak resident memory (ru_maxrss: the whole process, Django included).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .environment import ROOT, BenchEnv


def generate(path: Path, rows: int) -> int:
    """Write the CSV; returns its size in bytes."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("email,name,company,country,segment\n")
        for i in range(rows):
            if i % 200 == 7:
                email = f"broken-address-{i}.example"  # no @: a row error
            elif i % 200 == 11:
                email = f"import{i - 5}@agency{(i - 5) % 997}.example"  # a repeat of a row above
            else:
                email = f"import{i}@agency{i % 997}.example"
            out.write(f"{email},Agent {i},\"Agency {i % 997}, S.L.\",ES,{'gold' if i % 3 else 'silver'}\n")
    return path.stat().st_size


def run(path: Path) -> dict[str, Any]:
    from campaigns import importer
    from campaigns.services import list_create

    prospect_list = list_create(name=f"import {path.name}")
    job = importer.job_for_file(prospect_list=prospect_list, path=path)
    started = time.perf_counter()
    job = importer.run_import(job=job)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": job.rows_total,
        "imported": job.rows_imported,
        "invalid": job.rows_invalid,
        "duplicates": job.rows_duplicate,
        "status": job.status,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(job.rows_total / elapsed) if elapsed else 0,
        "peak_rss_mb": round(peak, 1),
    }


def measure(env: BenchEnv, *, rows: int) -> dict[str, Any]:
    path = env.work / f"import-{rows}.csv"
    size = generate(path, rows)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.imports", "run", str(path)],
        cwd=ROOT, env=env.subprocess_env(), capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the import failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["file_mb"] = round(size / 2**20, 1)
    path.unlink()
    return result


if __name__ == "__main__":
    import django

    django.setup()
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        print(json.dumps(run(Path(sys.argv[2]))))
