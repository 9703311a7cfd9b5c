"""Columnar run records: `requests.parquet/part-NNNNN.parquet` beside `requests.jsonl`.

The same records as the JSON lines, the same values (the writer in loadtests/records.py rounds
once and hands both formats the one result), in Parquet batches written during the run, so a
day of records is read by DuckDB, polars or Spark without parsing JSON:

    SELECT phase, flow, quantile_cont(latency_ms, 0.99)
    FROM read_parquet('RUN/requests.parquet/*.parquet') GROUP BY ALL

Crash-safe by construction: one file per closed batch, written to `part-NNNNN.parquet.tmp` and
renamed when complete, so a run killed at any moment (SIGKILL included) keeps every batch it
closed, each a whole Parquet file; the open batch (at most `batch_s` seconds or `batch_rows`
records, defaults 10 s / 50,000) is what a kill loses. Readers glob `*.parquet` (never the
`.tmp`). The files are not fsync'd: they survive the process, not a power cut.

Cost in the generator: the records are turned into Arrow arrays one JSON batch at a time (256
records, ~0.36 ms on the 2-core box, in a call of its own: RunWriter encodes the lines 32 at a
time before it, so no single call holds the event loop long), and each
closed batch is encoded and written by a native thread (gevent's thread pool under Locust, where
`threading` is monkey-patched), which releases the GIL while Arrow compresses and writes.
`benchmarks/loadgen_bench.py capacity` measures the generator with and without it in one run.

Columns (DESIGN "Run directory records"): the keys of a JSON line, a column each; a key a line
lacks (`reason`, `censored`, `prep_ms`, ... are written only when set) is null in its column.
Times are `timestamp[us, UTC]` (the JSON lines' ISO strings, to the microsecond); `server_metrics`
is a `map<string, double>`.

Environment: EXECBENCH_PARQUET=0 turns it off; EXECBENCH_PARQUET_BATCH_S and
EXECBENCH_PARQUET_BATCH_ROWS set the batch size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("execbench.columnar")

REQUESTS_PARQUET = "requests.parquet"  # a directory: one part-NNNNN.parquet per closed batch
BATCH_S = 10.0
BATCH_ROWS = 50_000

# (column, arrow type name), in JSON-line key order
COLUMNS: tuple[tuple[str, str], ...] = (
    ("intended_ts", "ts"), ("sent_ts", "ts"), ("latency_ms", "f64"),
    ("latency_from_intended_ms", "f64"), ("status", "i64"), ("outcome", "str"),
    ("flow", "str"), ("name", "str"), ("phase", "str"), ("late", "bool"),
    ("served_mode", "str"), ("reason", "str"), ("censored", "bool"), ("prep_ms", "f64"),
    ("burst", "str"), ("worker", "str"), ("client_order_id", "str"), ("attempts", "i64"),
    ("replayed", "bool"), ("server_metrics", "map"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


def enabled() -> bool:
    if os.environ.get("EXECBENCH_PARQUET", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        log.warning("pyarrow is not installed: no requests.parquet (requests.jsonl only)")
        return False
    return True


def schema():
    import pyarrow as pa

    types = {"ts": pa.timestamp("us", tz="UTC"), "f64": pa.float64(), "i64": pa.int64(),
             "str": pa.string(), "bool": pa.bool_(), "map": pa.map_(pa.string(), pa.float64())}
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


def _background() -> tuple[Callable[..., Any], Callable[[Any], Any]]:
    """(submit, wait) for work on a native thread: gevent's thread pool where `threading` is
    monkey-patched (a patched Thread is a greenlet: it would hold the event loop), else a
    one-thread executor."""
    try:
        from gevent import monkey

        patched = monkey.is_module_patched("threading")
    except ImportError:
        patched = False
    if patched:
        import gevent

        pool = gevent.get_hub().threadpool
        return pool.spawn, lambda handle: handle.get()
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="execbench-parquet")
    return executor.submit, lambda handle: handle.result()


class ColumnarWriter:
    """Appends chunks of columns (lists in COLUMNS order, from records.encode_requests) and
    writes a Parquet part each `batch_s` seconds or `batch_rows` rows, and at close()."""

    def __init__(self, directory: Path, *, batch_s: float | None = None,
                 batch_rows: int | None = None, clock: Callable[[], float] | None = None):
        import time

        import pyarrow as pa

        self._pa = pa
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        env_s = os.environ.get("EXECBENCH_PARQUET_BATCH_S")
        env_rows = os.environ.get("EXECBENCH_PARQUET_BATCH_ROWS")
        self.batch_s = float(batch_s if batch_s is not None else env_s or BATCH_S)
        self.batch_rows = int(batch_rows if batch_rows is not None else env_rows or BATCH_ROWS)
        self._clock = clock or time.monotonic
        self.schema = schema()
        self._types = [field.type for field in self.schema]
        self._chunks: list[Any] = []  # pyarrow RecordBatches of the open batch
        self._rows = 0
        self._opened = self._clock()
        self._parts = 0
        self._submit, self._wait = _background()
        self._writes: list[Any] = []
        self.errors: list[str] = []
        self.rows_written = 0
        # The first conversion pays pyarrow's lazy imports (pandas among them: ~0.25 s on a busy
        # box, a stall of the event loop that made every arrival behind it late): pay it here,
        # before the run starts, and start the writer thread too.
        empty = [[] for _ in self._types]
        pa.RecordBatch.from_arrays([pa.array(v, type=t) for v, t in zip(empty, self._types,
                                                                        strict=True)],
                                   schema=self.schema)
        self._wait(self._submit(_warm))

    def add(self, columns: list[list[Any]]) -> None:
        """One chunk: a list per column, every list the same length."""
        n = len(columns[0])
        if not n:
            return
        pa = self._pa
        arrays = [pa.array(values, type=t) for values, t in zip(columns, self._types, strict=True)]
        self._chunks.append(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self._rows += n
        if self._rows >= self.batch_rows or self._clock() - self._opened >= self.batch_s:
            self.close_batch()

    def due(self) -> bool:
        """The open batch holds rows and is older than batch_s (for a caller with no new rows)."""
        return bool(self._rows) and self._clock() - self._opened >= self.batch_s

    def close_batch(self) -> None:
        """Hand the open batch to the writer thread (a no-op when it holds no rows)."""
        self._opened = self._clock()
        if not self._rows:
            return
        chunks, self._chunks, rows, self._rows = self._chunks, [], self._rows, 0
        self._parts += 1
        path = self.directory / f"part-{self._parts:05d}.parquet"
        self._writes = [w for w in self._writes if not _done(w)]
        self._writes.append(self._submit(_write_part, chunks, self.schema, path))
        self.rows_written += rows

    def close(self) -> None:
        """Close the open batch and wait for every part to be on disk (the writer stays usable:
        RunWriter.flush() calls this mid-run)."""
        self.close_batch()
        for handle in self._writes:
            try:
                self._wait(handle)
            except Exception as exc:  # noqa: BLE001 - the JSON lines still hold every record
                self.errors.append(f"requests.parquet: {exc!r}")
                log.error("requests.parquet: a part was not written: %r", exc)
        self._writes = []


def _warm() -> None:
    import pyarrow.parquet  # noqa: F401 - imported once, on the writer thread's side too


def _done(handle: Any) -> bool:
    ready = getattr(handle, "ready", None)  # gevent AsyncResult
    return ready() if ready is not None else handle.done()


def _write_part(chunks: list[Any], schema: Any, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_batches(chunks, schema=schema)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)  # atomic: a reader sees the whole part or none of it


def read_parquet(run_dir: Path):
    """Every closed part of a run's requests.parquet as one pyarrow Table (parts in order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted((Path(run_dir) / REQUESTS_PARQUET).glob("part-*.parquet"))
    if not parts:
        return schema().empty_table()
    return pa.concat_tables([pq.read_table(p) for p in parts])
