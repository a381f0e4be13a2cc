"""The one table the harness prints, and the targets of issue 8 judged against the figures."""

from __future__ import annotations

from typing import Any

# Flat memory: the larger campaign's worker peak may exceed the smaller one's by this much at most.
FLAT_TOLERANCE = 1.10
FLAT_SLACK_MB = 10.0


def _ok(result: Any) -> bool:
    return isinstance(result, dict) and "error" not in result


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def _pipelines(results: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    runs = [(int(k.split("_")[1]), v) for k, v in results.items() if k.startswith("pipeline_")]
    return sorted(runs)


def _reference(results: dict[str, Any]) -> dict[str, Any] | None:
    """The pipeline run the ratios use: the 20,000-recipient one (same size as the raw ceiling)."""
    runs = _pipelines(results)
    return runs[0][1] if runs and _ok(runs[0][1]) else None


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    results = document["results"]
    postgres = "PostgreSQL" in document["configuration"]
    pipe = _reference(results)
    rate = pipe["msgs_per_s"] if pipe else None
    out: list[dict[str, Any]] = []

    def add(name: str, goal: str, value: Any, met: bool | None, note: str = "") -> None:
        out.append({"target": name, "goal": goal, "value": value, "met": met, "note": note})

    def ratio(key: str, field: str = "msgs_per_s") -> float | None:
        other = results.get(key)
        if rate is None or not _ok(other) or not other.get(field):
            return None
        return round(rate / other[field], 2)

    r = ratio("raw")
    add("pipeline vs raw ceiling", "≥ 0.5×", r, None if r is None else r >= 0.5)
    r = ratio("naive")
    add("pipeline vs naive send_mail", "≥ 2×", r, None if r is None else r >= 2)
    r = ratio("peer")
    add("pipeline vs django-post_office", "≥ 1.5×", r, None if r is None else r >= 1.5)
    if postgres:
        add("pipeline on PostgreSQL", "≥ 750 msg/s", rate, None if rate is None else rate >= 750)
    else:
        add("pipeline on PostgreSQL", "≥ 750 msg/s", rate, None, "the target is for PostgreSQL; this run is SQLite")
    made = results.get("creation")
    seconds = made.get("seconds") if _ok(made) else None
    full_size = _ok(made) and made.get("recipients") == 1_000_000
    if postgres and full_size:
        add("campaign creation, 1,000,000 recipients", "< 60 s", seconds, None if seconds is None else seconds < 60)
    else:
        add("campaign creation, 1,000,000 recipients", "< 60 s", seconds, None,
            "the target is for 1,000,000 recipients on PostgreSQL; this run is "
            + ("quick mode" if not full_size else "SQLite"))
    api = results.get("api_send")
    p99 = api.get("p99_ms") if _ok(api) else None
    add("single send p99", "≤ 50 ms", p99, None if p99 is None else p99 <= 50)
    imp = results.get("import")
    rows = imp.get("rows_per_s") if _ok(imp) else None
    add("import rows/s", "≥ 25,000", rows, None if rows is None else rows >= 25_000)
    rss = imp.get("peak_rss_mb") if _ok(imp) else None
    add("import peak RSS", "≤ 150 MB", rss, None if rss is None else rss <= 150)
    pick = results.get("pick")
    worst = pick.get("worst_us_per_pick") if _ok(pick) else None
    add("pick among 1,000 servers (worst strategy)", "≤ 20 µs", worst, None if worst is None else worst <= 20)
    res = results.get("reserve")
    per_s = res.get("reservations_per_s") if _ok(res) else None
    add("quota reservations, 4 processes on one row", "≥ 2,000/s", per_s, None if per_s is None else per_s >= 2000)
    dash = results.get("dashboard")
    for page in ("overview", "server_detail"):
        median = dash.get(page, {}).get("median_ms") if _ok(dash) else None
        add(f"dashboard {page.replace('_', '-')} median", "≤ 100 ms", median, None if median is None else median <= 100)
    runs = [(n, v) for n, v in _pipelines(results) if _ok(v) and v.get("worker_peak_rss_mb")]
    peak = max((v["worker_peak_rss_mb"] for _, v in runs), default=None)
    add("worker peak RSS", "≤ 250 MB", peak, None if peak is None else peak <= 250)
    if len(runs) >= 2:
        small, large = runs[0][1]["worker_peak_rss_mb"], runs[-1][1]["worker_peak_rss_mb"]
        flat = large <= small * FLAT_TOLERANCE or large <= small + FLAT_SLACK_MB
        add("worker RSS flat in campaign size", f"{runs[-1][0]:,} ≈ {runs[0][0]:,}", f"{large} vs {small} MB", flat)
    else:
        add("worker RSS flat in campaign size", "200,000 ≈ 20,000", None, None,
            "quick mode measures 20,000 recipients only; run the full mode for the comparison")
    return out


def render(document: dict[str, Any]) -> str:
    results = document["results"]
    m = document["machine"]
    lines = [
        f"mailops benchmark: {document['mode']} mode, {document['configuration']}, "
        f"{document['started_at']} (took {document['duration_s']:.0f} s)",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; Python {m['python']}, "
        f"Django {m['django']}; {m['database']}; broker {m['broker']}",
        "",
    ]
    pipe = _reference(results)
    rate = pipe["msgs_per_s"] if pipe else None

    def vs(other_rate: Any) -> str:
        if rate is None or not other_rate:
            return ""
        return f"pipeline = {rate / other_rate:.2f}×"

    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, result: Any, messages: str = "", seconds: str = "", per_s: str = "", note: str = "") -> None:
        if not _ok(result):
            error = result.get("error", "not run") if isinstance(result, dict) else "not run"
            rows.append((name, "", "", "FAILED", error.splitlines()[0][:90] if error else ""))
            return
        rows.append((name, messages, seconds, per_s, note))

    s = results.get("sinks")
    if s is not None:
        row("sink ceiling: one sink / all 5 at once", s, _n(s.get("messages")), "",
            f"{_n(s.get('one_sink_msgs_per_s'))} / {_n(s.get('all_sinks_msgs_per_s'))}", f"blast client, {s.get('loop', '')}")
    r = results.get("raw")
    if r is not None:
        row(f"raw ceiling ({r.get('processes', '?')} processes, {r.get('connections', '?')} connections)", r,
            _n(r.get("messages")), _n(r.get("seconds"), 1), _n(r.get("msgs_per_s")), vs(r.get("msgs_per_s")))
    for n, p in _pipelines(results):
        note = ""
        if _ok(p):
            note = (f"{p['worker_processes']} workers (prefetch {p.get('prefetch_multiplier', '?')}), "
                    f"sinks got {_n(p['received_by_sinks'])}, "
                    f"dup {p['duplicates']}, start {p['campaign_start_seconds']} s")
            if p.get("cpu_ms_per_msg"):
                note += f", {p['cpu_ms_per_msg']} ms CPU/msg"
        row(f"pipeline, {n:,} recipients", p, _n(p.get("sent")), _n(p.get("seconds"), 1), _n(p.get("msgs_per_s")), note)
    nv = results.get("naive")
    if nv is not None:
        row("naive send_mail (1 process, 1 connection/msg)", nv, _n(nv.get("messages")), _n(nv.get("seconds"), 1),
            _n(nv.get("msgs_per_s")), vs(nv.get("msgs_per_s")))
    pe = results.get("peer")
    if pe is not None:
        row("django-post_office: queue (send_many)", pe, _n(pe.get("recipients")), _n(pe.get("queue_seconds"), 1),
            _n(pe.get("queue_per_s")), "")
        row(f"django-post_office: send ({pe.get('processes', 2)} processes, 1 sink)", pe, _n(pe.get("sent")),
            _n(pe.get("send_seconds"), 1), _n(pe.get("msgs_per_s")), vs(pe.get("msgs_per_s")))
    width = max(len(r[0]) for r in rows) if rows else 40
    lines.append(f"{'throughput':<{width}}  {'messages':>9}  {'seconds':>8}  {'msg/s':>13}  note")
    for name, messages, seconds, per_s, note in rows:
        lines.append(f"{name:<{width}}  {messages:>9}  {seconds:>8}  {per_s:>13}  {note}")
    lines.append("")

    other: list[str] = []
    a = results.get("api_send")
    if a is not None:
        other.append(
            f"POST /api/send/, {_n(a.get('calls'))} calls: median {a.get('median_ms')} ms, p95 {a.get('p95_ms')} ms, "
            f"p99 {a.get('p99_ms')} ms ({a.get('server', '')})" if _ok(a) else f"POST /api/send/: FAILED {a.get('error', '')[:120]}"
        )
    c = results.get("creation")
    if c is not None:
        other.append(
            f"campaign creation (campaign_start) for {_n(c.get('recipients'))} recipients: {c.get('seconds')} s, "
            f"{_n(c.get('messages_per_s'))} messages/s ({_n(c.get('suppressed'))} suppressed at creation)"
            if _ok(c) else f"campaign creation: FAILED {c.get('error', '')[:120]}"
        )
    i = results.get("import")
    if i is not None:
        other.append(
            f"import {_n(i.get('rows'))} rows ({i.get('file_mb')} MB CSV): {_n(i.get('rows_per_s'))} rows/s, "
            f"{i.get('seconds')} s, peak RSS {i.get('peak_rss_mb')} MB; {_n(i.get('imported'))} imported, "
            f"{_n(i.get('invalid'))} invalid, {_n(i.get('duplicates'))} merged" if _ok(i) else f"import: FAILED {i.get('error', '')[:120]}"
        )
    p = results.get("pick")
    if p is not None and _ok(p):
        picks = ", ".join(f"{k} {v['us_per_pick']} µs" for k, v in p.items() if isinstance(v, dict))
        other.append(f"pick among {p['servers']:,} servers: {picks}")
    q = results.get("reserve")
    if q is not None:
        other.append(
            f"quota reservations, {q.get('processes')} processes: {_n(q.get('reservations_per_s'))}/s on one row, "
            f"{_n(q.get('own_rows_reservations_per_s'))}/s on a row each (rows consistent: {q.get('row_used_matches')})"
            if _ok(q) else f"quota reservations: FAILED {q.get('error', '')[:120]}"
        )
    d = results.get("dashboard")
    if d is not None:
        if _ok(d):
            other.append(
                f"dashboard over {_n(d['messages'])} messages + {_n(d['events'])} events: "
                f"overview median {d['overview']['median_ms']} ms (p95 {d['overview']['p95_ms']}), "
                f"server detail median {d['server_detail']['median_ms']} ms (p95 {d['server_detail']['p95_ms']})"
            )
        else:
            other.append(f"dashboard: FAILED {d.get('error', '')[:120]}")
    runs = [(n, v) for n, v in _pipelines(results) if _ok(v)]
    if runs:
        other.append("worker peak RSS (per prefork process): " + "; ".join(
            f"{n:,} recipients {v['worker_peak_rss_mb']} MB" for n, v in runs
        ) + ("" if len(runs) > 1 else " (quick mode: 20,000 only)"))
    lines += other
    lines.append("")
    lines.append("targets:")
    for t in document.get("targets", []):
        verdict = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
        note = f"  ({t['note']})" if t.get("note") else ""
        lines.append(f"  [{verdict:^7}] {t['target']}: {t['goal']}, measured {_n(t['value'], 2) if isinstance(t['value'], float) else _n(t['value'])}{note}")
    return "\n".join(lines)
