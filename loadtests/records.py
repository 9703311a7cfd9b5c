"""The run directory: `timeline.jsonl`, `requests.jsonl` and the small files around them.

Record shapes are DESIGN's "Run directory records", their names execbench/rundir.py's (the
one module writer and readers share). Times inside the load generator are
epoch floats (cheap); they become ISO-8601 UTC with microseconds only when written.
No Locust import here.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

import execbench.rundir as fmt
from execbench.rundir import iso, parse_iso, read_jsonl
from loadtests import columnar as columnar_mod

__all__ = ["SKIPPED", "SKIP_REASONS", "RunWriter", "copy_timings", "encode_into", "encode_requests",
           "iso", "iso_us", "micros", "parse_iso", "read_jsonl", "request_line", "transpose",
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


# --- encoding ------------------------------------------------------------------------------
# The hot path of the generator: every record passes here once. `iso()` (a datetime and a
# strftime per time, two a record) was a fifth of the record path's CPU; `micros` + `iso_us`
# give the same text from a per-second cached prefix (tests/loadtests/test_records_hotpath.py
# checks them against iso() character for character).

_PREFIX: dict[int, str] = {}
# encode_requests writes these keys literally (no lookups in the loop): they are rundir's names
assert (fmt.R_INTENDED_TS, fmt.R_SENT_TS, fmt.R_LATENCY_MS, fmt.R_LATENCY_FROM_INTENDED_MS,
        fmt.R_STATUS, fmt.R_OUTCOME, fmt.R_FLOW, fmt.R_NAME, fmt.R_PHASE, fmt.R_LATE,
        fmt.R_SERVED_MODE) == columnar_mod.COLUMN_NAMES[:11]


def micros(ts: float) -> int:
    """Epoch seconds -> integer microseconds, rounded exactly as datetime.fromtimestamp rounds
    (the fraction to the nearest microsecond, half to even), so iso_us(micros(t)) == iso(t)."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    if us >= 1_000_000:
        return (int(whole) + 1) * 1_000_000 + us - 1_000_000
    if us < 0:
        return (int(whole) - 1) * 1_000_000 + us + 1_000_000
    return int(whole) * 1_000_000 + us


def iso_us(us: int) -> str:
    """Integer epoch microseconds -> ISO-8601 UTC with microseconds and `Z` (iso()'s text)."""
    sec, frac = divmod(us, 1_000_000)
    return f"{_PREFIX.get(sec) or _prefix(sec)}{frac:06d}Z"


def _prefix(sec: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.` of an epoch second, cached."""
    if len(_PREFIX) > 4096:
        _PREFIX.clear()
    prefix = _PREFIX[sec] = dt.datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
    return prefix


def encode_requests(records: list[dict[str, Any]], columns: bool = False
                    ) -> tuple[bytes, list[list[Any]] | None]:
    """requests.jsonl lines for in-memory records (epoch floats), and with `columns` the same
    values as columns (loadtests/columnar.py COLUMNS order; a key a line lacks is None). Values
    are computed once (rounded once) for both."""
    parts: list[bytes] = []
    rows: list[tuple] | None = [] if columns else None
    encode_into(records, parts, rows)
    return b"".join(parts), (transpose(rows) if rows is not None else None)


def transpose(rows: list[tuple]) -> list[list[Any]]:
    """Row tuples of encode_into -> one list per column (COLUMNS order)."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(20)]


def encode_into(records: list[dict[str, Any]], parts: list[bytes], rows: list[tuple] | None
                ) -> None:
    """encode_requests' loop: each record's line appended to `parts` and, unless `rows` is
    None, its columns' values as one tuple to `rows`."""
    dumps, rnd = orjson.dumps, round
    newline = orjson.OPT_APPEND_NEWLINE
    modf, prefixes, prefix_of = math.modf, _PREFIX, _prefix
    for rec in records:
        # micros() and iso_us() inlined (four calls a record): the same arithmetic
        intended, sent = rec["intended"], rec["sent"]
        frac, whole = modf(intended)
        us = round(frac * 1e6)
        intended_us = int(whole) * 1_000_000 + us if 0 <= us < 1_000_000 else micros(intended)
        frac, whole = modf(sent)
        us = round(frac * 1e6)
        sent_us = int(whole) * 1_000_000 + us if 0 <= us < 1_000_000 else micros(sent)
        sec, frac_us = divmod(intended_us, 1_000_000)
        intended_ts = f"{prefixes.get(sec) or prefix_of(sec)}{frac_us:06d}Z"
        sec, frac_us = divmod(sent_us, 1_000_000)
        sent_ts = f"{prefixes.get(sec) or prefix_of(sec)}{frac_us:06d}Z"
        latency = rec["latency_ms"]  # null on a skipped arrival that spent no time
        if latency is None:
            lat = from_intended = None
        else:
            lat = rnd(latency, 3)
            from_intended = rnd(latency + (sent - intended) * 1000, 3)
        status, outcome, flow, name = rec["status"], rec["outcome"], rec["flow"], rec["name"]
        phase, late, served = rec["phase"], rec["late"], rec.get("served_mode")
        out = {
            "intended_ts": intended_ts, "sent_ts": sent_ts, "latency_ms": lat,
            "latency_from_intended_ms": from_intended, "status": status, "outcome": outcome,
            "flow": flow, "name": name, "phase": phase, "late": late, "served_mode": served,
        }
        reason = rec.get("reason") or None
        if reason:
            out["reason"] = reason
        censored = True if rec.get("censored") else None
        if censored:
            out["censored"] = True  # no response: latency_ms is the elapsed time, a lower bound
        prep = rec.get("prep_ms")
        if prep is not None:
            prep = out["prep_ms"] = rnd(prep, 3)
        burst = rec.get("burst")
        if burst is not None:
            out["burst"] = burst
        worker = rec.get("worker")
        if worker is not None:
            out["worker"] = worker
        order_id = rec.get("client_order_id")
        if order_id is not None:
            out["client_order_id"] = order_id
        attempts = rec.get("attempts", 1)
        if attempts > 1:
            out["attempts"] = attempts
        else:
            attempts = None
        replayed = True if rec.get("replayed") else None
        if replayed:
            out["replayed"] = True
        server = rec.get("server_metrics") or None
        if server:
            server = out[fmt.R_SERVER_METRICS] = {k: rnd(v, 3) for k, v in server.items()}
        parts.append(dumps(out, option=newline))
        if rows is not None:  # one tuple a record, turned into columns once per batch
            rows.append((intended_us, sent_us, lat, from_intended, status, outcome, flow, name,
                         phase, late, served, reason, censored, prep, burst, worker, order_id,
                         attempts, replayed, None if server is None else list(server.items())))


def request_line(rec: dict[str, Any]) -> bytes:
    """One requests.jsonl line from an in-memory record (epoch floats)."""
    return encode_requests([rec])[0]


class RunWriter:
    """Appends records to the run directory; one instance, on the master or the local runner.

    Request records are encoded as they come, `SLICE_RECORDS` at a time, and written in batches
    (`BATCH_RECORDS` records or `BATCH_S` seconds, whichever comes first, and at flush/close):
    one write a batch, and each batch is in the OS when add_requests returns, so a killed
    generator loses at most the open batch. The same batches go to requests.parquet
    (loadtests/columnar.py) unless EXECBENCH_PARQUET=0.

    The slices are for the arrivals: add_requests runs on the event loop, in the greenlet of
    the arrival whose record it is, and encoding 256 records in one go (with their Arrow
    conversion) held the loop ~2 ms every 128 ms at 2,000 req/s, so every arrival due then
    was sent up to 2 ms late. A slice of 32 takes ~0.2 ms; the Arrow conversion stays one per
    batch (per record it is ~4x dearer in chunks of 32), in its own call."""

    BATCH_RECORDS = 256
    BATCH_S = 0.25
    SLICE_RECORDS = 32

    def __init__(self, run_dir: Path, *, columnar: bool | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Open for the whole run, closed by close(): records are appended as they arrive.
        self._timeline = open(self.run_dir / fmt.TIMELINE, "ab")  # noqa: SIM115
        self._requests = open(self.run_dir / fmt.REQUESTS, "ab")  # noqa: SIM115
        # A lock no greenlet switch can happen under (encoding and a file write do not yield):
        # the OS lock, not gevent's patched one, which cost more than the encoding it guarded.
        self._lock = _native_lock()
        self.listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        self.timeline_events: list[dict[str, Any]] = []
        self.request_count = 0
        self._pending: list[dict[str, Any]] = []  # not yet encoded (< SLICE_RECORDS)
        self._lines: list[bytes] = []  # encoded, not yet written
        self._encoded = 0  # records in _lines
        self._rows: list[tuple] | None = None  # their columns, one tuple a record
        self._pending_since = 0.0
        self.columnar = None
        if columnar is None:
            columnar = columnar_mod.enabled()
        if columnar:
            self.columnar = columnar_mod.ColumnarWriter(self.run_dir / columnar_mod.REQUESTS_PARQUET)
            self._rows = []

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
            pending = self._pending
            if not pending and not self._encoded:
                self._pending_since = time.monotonic()
            pending.extend(records)
            self.request_count += len(records)
            if len(pending) >= self.SLICE_RECORDS:
                self._encode_pending()
            cols = None
            if self._encoded + len(self._pending) >= self.BATCH_RECORDS or \
                    time.monotonic() - self._pending_since >= self.BATCH_S:
                cols = self._write_pending()
        if cols is not None:
            self.columnar.add(cols)  # may hand a batch to the writer thread: not under the lock
        for listener in self.listeners:
            listener(records)

    def _encode_pending(self) -> None:  # under the lock
        batch, self._pending = self._pending, []
        encode_into(batch, self._lines, self._rows)
        self._encoded += len(batch)

    def _write_pending(self) -> list[list[Any]] | None:  # under the lock
        """Encode what is left and write the batch; its columns for requests.parquet."""
        if self._pending:
            self._encode_pending()
        if not self._encoded:
            return None
        lines, self._lines, self._encoded = self._lines, [], 0
        self._requests.write(b"".join(lines))
        self._requests.flush()
        if self._rows is None:
            return None
        rows, self._rows = self._rows, []
        return transpose(rows)

    def flush(self) -> None:
        """Everything added so far into requests.jsonl and a closed requests.parquet part."""
        with self._lock:
            cols = self._write_pending()
            self._requests.flush()
            self._timeline.flush()
        if self.columnar is not None:
            if cols is not None:
                self.columnar.add(cols)
            self.columnar.close()  # the open batch as a part, on disk when flush returns

    def write_json(self, name: str, data: Any) -> Path:
        path = self.run_dir / name
        path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return path

    def close(self) -> None:
        with self._lock:
            cols = self._write_pending()
            self._requests.close()
            self._timeline.close()
        if self.columnar is not None:
            if cols is not None:
                self.columnar.add(cols)
            self.columnar.close()  # waits for the writer thread: outside the lock


def _native_lock():
    try:
        from gevent import monkey

        return monkey.get_original("_thread", "allocate_lock")()
    except ImportError:
        return threading.Lock()


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
