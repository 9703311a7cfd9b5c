"""A per-phase table from the raw records, for when the analysis package is not there.

Exact quantiles (numpy over every record), never Locust's rounded buckets. No Locust import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loadtests.records import parse_iso, read_jsonl


def phase_windows(run_dir: Path) -> list[tuple[str, float, float, str]]:
    """(phase, start, end, mode) from timeline.jsonl."""
    starts: dict[str, tuple[float, str]] = {}
    out = []
    for ev in read_jsonl(Path(run_dir) / "timeline.jsonl"):
        if ev.get("event") == "phase_start":
            starts[ev["phase"]] = (parse_iso(ev["ts"]), ev.get("mode"))
        elif ev.get("event") == "phase_end" and ev.get("phase") in starts:
            start, mode = starts.pop(ev["phase"])
            out.append((ev["phase"], start, parse_iso(ev["ts"]), mode))
    return out


def per_phase(run_dir: Path) -> list[dict[str, Any]]:
    """One row per phase and flow (the flows the records hold, in order of appearance). The
    server column is the timing log's `executor_ms` where there is one, else the first
    server metric the responses reported for that flow (`server_metrics`)."""
    run_dir = Path(run_dir)
    windows = phase_windows(run_dir)
    requests = [r for r in read_jsonl(run_dir / "requests.jsonl") if r.get("name") != "margin_probe"]
    timings = read_jsonl(run_dir / "timings.jsonl")
    flows = list(dict.fromkeys(str(r.get("flow")) for r in requests))
    server: dict[tuple[str, str], list[float]] = {}
    metric_of: dict[str, str] = {}
    for rec in timings:
        try:
            ts = parse_iso(rec["ts"])
            value = float(rec["durations_ms"]["executor_ms"])
        except (KeyError, TypeError, ValueError):
            continue
        if rec.get("status", "success") != "success":
            continue
        metric_of[str(rec.get("flow"))] = "executor_ms"
        for name, start, end, _ in windows:
            if start <= ts < end:
                server.setdefault((name, str(rec.get("flow"))), []).append(value)
                break
    if not timings:
        for r in requests:
            metrics = r.get("server_metrics") or {}
            flow = str(r.get("flow"))
            if metrics and r.get("outcome") == "ok":
                key = metric_of.setdefault(flow, next(iter(metrics)))
                if key in metrics:
                    server.setdefault((r.get("phase"), flow), []).append(float(metrics[key]))
    rows = []
    for name, start, end, mode in windows:
        for flow in flows:
            recs = [r for r in requests if r.get("phase") == name and str(r.get("flow")) == flow
                    and r.get("outcome") != "skipped"]
            lat = np.array([r["latency_ms"] for r in recs if r["outcome"] != "failure"], dtype=float)
            srv = np.array(server.get((name, flow), []), dtype=float)
            rows.append({
                "phase": name, "mode": mode, "flow": flow, "requests": len(recs),
                "rate": len(recs) / (end - start) if end > start else 0.0,
                "failures": sum(1 for r in recs if r["outcome"] == "failure"),
                "rejections": sum(1 for r in recs if r["outcome"] == "expected_rejection"),
                "late": sum(1 for r in recs if r.get("late")),
                "client_p50": _q(lat, 0.5), "client_p99": _q(lat, 0.99),
                "server_metric": metric_of.get(flow),
                "server_n": len(srv), "server_p50": _q(srv, 0.5), "server_p99": _q(srv, 0.99),
            })
    return rows


def _q(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def print_table(run_dir: Path, console=None) -> None:
    from rich.table import Table

    from execbench.console import make_console

    console = console or make_console()
    table = Table(title=f"Per phase, from the raw records ({run_dir})")
    for col in ("phase", "mode", "flow", "n", "req/s", "fail", "rejected", "late",
                "client p50/p99 ms", "server p50/p99 ms"):
        table.add_column(col, justify="left" if col in ("phase", "mode", "flow") else "right")
    for r in per_phase(run_dir):
        server = _pair(r["server_p50"], r["server_p99"])
        table.add_row(
            r["phase"], r["mode"] or "", r["flow"], str(r["requests"]), f"{r['rate']:.1f}",
            str(r["failures"]), str(r["rejections"]), str(r["late"]),
            _pair(r["client_p50"], r["client_p99"]),
            server if server == "-" else f"{server} ({r['server_metric']})",
        )
    console.print(table)


def _pair(a: float | None, b: float | None) -> str:
    return "-" if a is None else f"{a:.1f} / {b:.1f}"
