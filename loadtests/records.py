"""The run directory: `timeline.jsonl`, `requests.jsonl` and the small files around them.

Record shapes are DESIGN's "Run directory records". Times inside the load generator are
epoch floats (cheap); they become ISO-8601 UTC with microseconds only when written.
No Locust import here.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

UTC = dt.UTC


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    """ISO-8601 (with `Z` or an offset, any fraction length) -> epoch seconds."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python < 3.11 rejects fractions that are not 3 or 6 digits; normalise to 6.
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", text)
    if m:
        frac = (m.group(2) or "0")[:6].ljust(6, "0")
        text = f"{m.group(1)}.{frac}{m.group(3)}"
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def utc_stamp(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def request_line(rec: dict[str, Any]) -> bytes:
    """One requests.jsonl line from an in-memory record (epoch floats)."""
    out = {
        "intended_ts": iso(rec["intended"]),
        "sent_ts": iso(rec["sent"]),
        "latency_ms": round(rec["latency_ms"], 3),
        "latency_from_intended_ms": round(rec["latency_ms"] + (rec["sent"] - rec["intended"]) * 1000, 3),
        "status": rec["status"],
        "outcome": rec["outcome"],
        "flow": rec["flow"],
        "name": rec["name"],
        "phase": rec["phase"],
        "late": rec["late"],
        "served_mode": rec.get("served_mode"),
    }
    if rec.get("reason"):
        out["reason"] = rec["reason"]
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
        out["server_metrics"] = {k: round(v, 3) for k, v in rec["server_metrics"].items()}
    return orjson.dumps(out) + b"\n"


class RunWriter:
    """Appends records to the run directory; one instance, on the master or the local runner."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Open for the whole run, closed by close(): records are appended as they arrive.
        self._timeline = open(self.run_dir / "timeline.jsonl", "ab")  # noqa: SIM115
        self._requests = open(self.run_dir / "requests.jsonl", "ab")  # noqa: SIM115
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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    if not Path(path).exists():
        return out
    with open(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue  # a torn last line of a log that was still being written
    return out


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
