"""The timing log: one orjson line per order, written off the request path.

The request path only enqueues a dict (a lock-free `SimpleQueue.put`); a thread
serializes and appends in batches. `close()` drains the queue before returning, so
a clean shutdown loses no record.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from queue import SimpleQueue

import orjson

_STOP = object()


_second_cache: tuple[int, str] = (-1, "")


def iso_utc(epoch_s: float) -> str:
    """ISO-8601 UTC with microseconds; the date-time prefix is formatted once per second."""
    global _second_cache
    second = int(epoch_s)
    micros = int((epoch_s - second) * 1_000_000)
    cached_second, prefix = _second_cache
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_cache = (second, prefix)
    return f"{prefix}.{micros:06d}Z"


class TimingLog:
    def __init__(self, path: Path | None):
        self.path = path
        self._queue: SimpleQueue = SimpleQueue()
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        if self.path is None or self._thread is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="timing-log", daemon=True)
        self._thread.start()

    def write(self, record: dict) -> None:
        if self._thread is not None:
            self._queue.put(record)

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        with open(self.path, "ab", buffering=0) as out:
            while True:
                batch = [self._queue.get()]
                while not self._queue.empty() and len(batch) < 1024:
                    batch.append(self._queue.get())
                stop = any(item is _STOP for item in batch)
                lines = [orjson.dumps(item) + b"\n" for item in batch if item is not _STOP]
                if lines:
                    out.write(b"".join(lines))
                    self.written += len(lines)
                if stop:
                    # Records enqueued after the stop marker (a late request) still land.
                    rest = []
                    while not self._queue.empty():
                        item = self._queue.get()
                        if item is not _STOP:
                            rest.append(orjson.dumps(item) + b"\n")
                    if rest:
                        out.write(b"".join(rest))
                        self.written += len(rest)
                    return
