"""The run directory: `timeline.jsonl`, `requests.jsonl` and the small files around them.

Record shapes are DESIGN's "Run directory records", their names execbench/rundir.py's (the
one module writer and readers share). Times inside the load generator are
epoch floats (cheap); they become ISO-8601 UTC with microseconds only when written.
No Locust import here.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

import execbench.rundir as fmt
from execbench.rundir import iso, parse_iso, read_jsonl

__all__ = ["SKIPPED", "SKIP_REASONS", "RunWriter", "copy_timings", "iso", "parse_iso", "read_jsonl", "request_line",
           "utc_stamp"]

UTC = dt.UTC

SKIPPED = "skipped"
# Why an arrival sent no measured request (the `reason` of a skipped record):
SKIP_REASONS = {
    "no_account": "every account of the scenario's slice is busy or out of margin",
    "prep_failed": "a preparation request (account read, margin probe) failed",
    "too_small": "the account's free margin is too small for the smallest order",
    "edge_ambiguous": "rounding brought the order too close to the margin edge to judge",
    "no_phase": "the arrival fell outside every phase",
    "error": "the scenario raised before its measured request (the traceback went to user_error)",
    "no_record": "the scenario returned without recording anything",
}


def utc_stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def request_line(rec: dict[str, Any]) -> bytes:
    """One requests.jsonl line from an in-memory record (epoch floats)."""
    latency = rec["latency_ms"]  # null on a skipped arrival that spent no time
    out = {
        fmt.R_INTENDED_TS: iso(rec["intended"]),
        fmt.R_SENT_TS: iso(rec["sent"]),
        fmt.R_LATENCY_MS: None if latency is None else round(latency, 3),
        fmt.R_LATENCY_FROM_INTENDED_MS:
            None if latency is None else round(latency + (rec["sent"] - rec["intended"]) * 1000, 3),
        fmt.R_STATUS: rec["status"],
        fmt.R_OUTCOME: rec["outcome"],
        fmt.R_FLOW: rec["flow"],
        fmt.R_NAME: rec["name"],
        fmt.R_PHASE: rec["phase"],
        fmt.R_LATE: rec["late"],
        fmt.R_SERVED_MODE: rec.get("served_mode"),
    }
    if rec.get("reason"):
        out["reason"] = rec["reason"]
    if rec.get("censored"):
        out["censored"] = True  # no response: latency_ms is the elapsed time, a lower bound
    if rec.get("prep_ms") is not None:
        out["prep_ms"] = round(rec["prep_ms"], 3)
    if rec.get("burst") is not None:
        out["burst"] = rec["burst"]
    if rec.get("worker") is not None:
        out["worker"] = rec["worker"]
    if rec.get("client_order_id") is not None:
        out["client_order_id"] = rec["client_order_id"]
    if rec.get("attempts", 1) > 1:
        out["attempts"] = rec["attempts"]
    if rec.get("replayed"):
        out["replayed"] = True
    if rec.get("server_metrics"):
        out[fmt.R_SERVER_METRICS] = {k: round(v, 3) for k, v in rec["server_metrics"].items()}
    return orjson.dumps(out) + b"\n"


class RunWriter:
    """Appends records to the run directory; one instance, on the master or the local runner."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Open for the whole run, closed by close(): records are appended as they arrive.
        self._timeline = open(self.run_dir / fmt.TIMELINE, "ab")  # noqa: SIM115
        self._requests = open(self.run_dir / fmt.REQUESTS, "ab")  # noqa: SIM115
        self._lock = threading.Lock()
        self.listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self.timeline_events: list[dict[str, Any]] = []
        self.request_count = 0

    def timeline(self, event: str, *, ts: float, phase: str | None, mode: str | None, **extra) -> None:
        rec = {"ts": iso(ts), "event": event, "phase": phase, "mode": mode, **extra}
        with self._lock:
            self._timeline.write(orjson.dumps(rec) + b"\n")
            self._timeline.flush()
            self.timeline_events.append({**rec, "_epoch": ts})

    def add_requests(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with self._lock:
            self._requests.write(b"".join(request_line(r) for r in records))
            self.request_count += len(records)
        for listener in self.listeners:
            listener(records)

    def flush(self) -> None:
        with self._lock:
            self._requests.flush()
            self._timeline.flush()

    def write_json(self, name: str, data: Any) -> Path:
        path = self.run_dir / name
        path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return path

    def close(self) -> None:
        with self._lock:
            self._requests.close()
            self._timeline.close()


def copy_timings(sources: list[Path], dest: Path, start: float, end: float) -> int:
    """Merge the timing records whose `ts` lies in [start, end] (epoch seconds) from one or
    more service timing logs (one per replica), in time order."""
    kept: list[tuple[float, bytes]] = []
    for source in sources:
        with open(source, "rb") as src:
            for line in src:
                try:
                    ts = parse_iso(orjson.loads(line)["ts"])
                except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                    continue
                if start <= ts <= end:
                    kept.append((ts, line if line.endswith(b"\n") else line + b"\n"))
    kept.sort(key=lambda item: item[0])
    with open(dest, "wb") as out:
        out.writelines(line for _, line in kept)
    return len(kept)
