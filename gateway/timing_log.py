"""The gateway's timing log: one JSON line per order in the seed's format, `component: "gateway"`.

The line goes to a sink that stands for the note's log shipper: each write waits
`sink_latency_ms` (its round trip) before the line is appended to the file. The `async_logging`
switch decides who waits for it:

* off — the request awaits the write (the note's "before"): `log_ms` is the sink's latency.
* on — fire-and-forget: the request puts the line in a bounded queue and goes on; one writer
  task empties it. A full queue drops the line, and never silently: every drop is counted in
  `gateway_log_lines_total{outcome="dropped"}` and in the log itself, by a
  `{"event": "log_lines_dropped", "count": n}` line written with the next write (and at close),
  so lines written + lines dropped = orders answered, from the log alone.

The record is completed just before it is serialized: in the awaited mode `log_ms` and `total_ms`
are taken after the sink's wait (the serialization and append, microseconds, come after them);
in the queued mode after the enqueue (the writer runs only once the request path yields).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from time import perf_counter_ns

import orjson

from gateway.metrics import GatewayMetrics
from service.timing_log import iso_utc


class Sink:
    """A log destination with a latency: the wait, then the append (the file is optional)."""

    def __init__(self, path: Path | None, latency_ms: float):
        self.path = path
        self.latency_s = latency_ms / 1000
        self._file = None

    def open(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 -- closed in close()

    async def wait(self) -> None:
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)

    def append(self, lines: list[bytes]) -> None:
        if self._file is not None:
            self._file.write(b"".join(lines))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _line(record: dict) -> bytes:
    return orjson.dumps(record) + b"\n"


class GatewayLog:
    def __init__(self, sink: Sink, metrics: GatewayMetrics, queue_size: int, replica: str,
                 clock=time.time):
        self._sink = sink
        self._metrics = metrics
        self._queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=queue_size)
        self._replica = replica
        self.clock = clock
        self._writer: asyncio.Task | None = None
        self._inflight: dict | None = None  # taken from the queue, waiting for the sink
        self.written = 0  # order lines appended (drop notices not counted)
        self.dropped = 0
        self._unreported = 0  # drops not yet written as a notice

    def start(self) -> None:
        self._sink.open()
        self._writer = asyncio.create_task(self._run(), name="gateway-log-writer")

    async def write(self, record: dict, started_ns: int, *, queued: bool) -> None:
        """Log one order; fills `log_ms` and `total_ms` of its durations (see the module)."""
        durations = record["durations_ms"]
        t = perf_counter_ns()
        if queued:
            try:
                self._queue.put_nowait(record)
            except asyncio.QueueFull:
                self.dropped += 1
                self._unreported += 1
                self._metrics.dropped.inc()
            self._metrics.log_queue_depth.set(self._queue.qsize())
            self._complete(durations, t, started_ns)
            return
        await self._sink.wait()
        self._complete(durations, t, started_ns)
        self._append([record])

    @staticmethod
    def _complete(durations: dict, t: int, started_ns: int) -> None:
        now = perf_counter_ns()
        durations["log_ms"] = round((now - t) / 1e6, 3)
        durations["total_ms"] = round((now - started_ns) / 1e6, 3)
        durations["gateway_ms"] = round(
            durations["total_ms"] - durations["upstream_ms"] - durations["log_ms"], 3)

    def _append(self, records: list[dict]) -> None:
        lines = [_line(r) for r in records]
        if self._unreported:
            lines.append(_line({"ts": iso_utc(self.clock()), "component": "gateway",
                                "event": "log_lines_dropped", "count": self._unreported,
                                "replica": self._replica}))
            self._unreported = 0
        self._sink.append(lines)
        self.written += len(records)
        self._metrics.written.inc(len(records))

    async def _run(self) -> None:
        while True:
            record = await self._queue.get()
            self._inflight = record
            await self._sink.wait()  # one sink write a line, as a shipper call per log call
            self._inflight = None
            self._append([record])
            self._metrics.log_queue_depth.set(self._queue.qsize())

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let the writer empty the queue (each line still paying the sink's wait) for at most
        `timeout_s`, then append whatever is left at once, and the last drop notice."""
        if self._writer is None:
            return
        deadline = time.monotonic() + timeout_s
        while (not self._queue.empty() or self._inflight is not None) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        rest = [] if self._inflight is None else [self._inflight]
        self._inflight = None
        while not self._queue.empty():
            rest.append(self._queue.get_nowait())
        if rest or self._unreported:
            self._append(rest)
        self._sink.close()
        self._writer = None
