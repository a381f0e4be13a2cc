"""The two baselines: what people write first, and the peer most Django teams would pick.

* naive: Django's `send_mail` in a loop, one SMTP connection per message, one process.
* peer: django-post_office. `mail.send_many` queues the recipients, then
  `manage.py send_queued_mail --processes 2` sends them to one of the sinks.

Each runs in a subprocess of its own (`python -m bench.baselines naive|peer …`) so its
imports, connections and memory never mix with the harness's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from .environment import ROOT, BenchEnv
from .fixtures import FROM_EMAIL, HTML, SUBJECT, TEXT, recipient


def _merge(template: str, email: str, name: str, company: str) -> str:
    # The same per-recipient personalisation the campaign does, done the plain way.
    return template.replace("{{ name }}", name).replace("{{ company }}", company)


def run_naive(count: int) -> dict[str, Any]:
    from django.core.mail import send_mail

    started = time.perf_counter()
    for i in range(count):
        email, name, company, _ = recipient(i)
        send_mail(
            _merge(SUBJECT, email, name, company),
            _merge(TEXT, email, name, company),
            FROM_EMAIL,
            [email],
            html_message=_merge(HTML, email, name, company),
        )
    elapsed = time.perf_counter() - started
    return {"messages": count, "seconds": round(elapsed, 2), "msgs_per_s": round(count / elapsed), "processes": 1,
            "connections": count}


def run_peer(count: int, processes: int) -> dict[str, Any]:
    from django.conf import settings
    from post_office import mail
    from post_office.models import STATUS, Email

    Email.objects.all().delete()
    kwargs_list = []
    for i in range(count):
        email, name, company, _ = recipient(i)
        kwargs_list.append(
            {
                "sender": FROM_EMAIL,
                "recipients": [email],
                "subject": _merge(SUBJECT, email, name, company),
                "message": _merge(TEXT, email, name, company),
                "html_message": _merge(HTML, email, name, company),
            }
        )
    started = time.perf_counter()
    for start in range(0, count, 5000):
        mail.send_many(kwargs_list[start : start + 5000])
    queued = time.perf_counter() - started
    del kwargs_list
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "send_queued_mail", "--processes", str(processes),
         "--lockfile", settings.POST_OFFICE_LOCKFILE],
        cwd=ROOT, check=True,
    )
    sent_seconds = time.perf_counter() - started
    sent = Email.objects.filter(status=STATUS.sent).count()
    return {
        "recipients": count,
        "queue_seconds": round(queued, 2),
        "queue_per_s": round(count / queued),
        "send_seconds": round(sent_seconds, 2),
        "msgs_per_s": round(sent / sent_seconds),
        "sent": sent,
        "processes": processes,
        "batch_size": settings.POST_OFFICE["BATCH_SIZE"],
        "threads_per_process": settings.POST_OFFICE["THREADS_PER_PROCESS"],
    }


def measure(env: BenchEnv, which: str, *args: int) -> dict[str, Any]:
    """Run one baseline in its own process and return what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.baselines", which, *map(str, args)],
        cwd=ROOT, env=env.subprocess_env(), capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{which} baseline failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    import django

    django.setup()
    which = sys.argv[1]
    if which == "naive":
        result = run_naive(int(sys.argv[2]))
    elif which == "peer":
        result = run_peer(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown baseline {which!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
