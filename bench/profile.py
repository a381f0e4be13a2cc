"""`python -m bench.profile [N]`: the pipeline's work for N recipients in one process, under pyinstrument.

The dispatcher runs in this process and the send-batch bodies run inline instead of on
Celery workers (their enqueueing is captured), so one profile shows everything a message
costs on our side: claiming, composing, the SMTP conversation and recording outcomes.
The sinks, the bench database and the settings are the harness's own.

    python -m bench.profile 4000            # text profile to stdout, HTML in bench/work/
    BENCH_PROFILE=off python -m bench.profile 4000   # just the timing
"""

from __future__ import annotations

import os
import sys
import time

from . import environment
from .sinks import SinkFleet


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    fleet = SinkFleet().start()
    try:
        environment.prepare(sink_ports=fleet.ports, alert_port=fleet.ports[0])
        from .harness import _setup_django

        _setup_django()
        from campaigns import dispatch
        from campaigns.services import campaign_start

        from .fixtures import configure_pool, make_campaign, make_list

        configure_pool()
        campaign = make_campaign(make_list("profile", count), name="profile")
        queued: list[tuple[int, list[int], str, str]] = []
        dispatch._enqueue_batch = lambda server_id, ids, lease, day: queued.append(  # type: ignore[assignment]
            (server_id, ids, lease.isoformat(), day.isoformat())
        )
        import campaigns.services as services

        services._kick_dispatch = lambda: None  # type: ignore[assignment]

        profiler = None
        if os.environ.get("BENCH_PROFILE", "on") != "off":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        started = time.perf_counter()
        cpu_started = time.process_time()
        campaign_start(campaign=campaign)
        sent = 0
        while sent < count:
            report = dispatch.run_once()
            if not queued and not report.total_claimed:
                break
            while queued:
                server_id, ids, lease, day = queued.pop(0)
                sent += dispatch.run_batch(server_id=server_id, message_ids=ids, lease=lease, day=day).get("sent", 0)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if profiler is not None:
            profiler.stop()
            out = environment.WORK / "profile.html"
            out.write_text(profiler.output_html())
            print(profiler.output_text(unicode=True, color=False, show_all=os.environ.get("BENCH_PROFILE_ALL") == "1"))
            print(f"HTML profile: {out}")
        print(
            f"{sent} sent in {elapsed:.2f}s: {sent / elapsed:.0f} msg/s in one process, "
            f"{cpu * 1000 / max(sent, 1):.2f} ms of this process's CPU per message, received {fleet.total()}"
        )
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
