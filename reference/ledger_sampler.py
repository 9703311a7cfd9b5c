"""Samples the service's ledger (`GET /admin/ledger`) while an experiment runs.

Each answer becomes one `ledger` event in `timeline.jsonl` (DESIGN "Run directory records"), so
the analysis can draw the non-terminal count over time and measure how long after a provider
fault the backlog drained. The run's end still reads the ledger once more, settled, into
`ledger.json`; these samples are the series before that.

Plain `threading`: in the runner's process Locust has monkey-patched it, so the sampler is a
greenlet there and its HTTP call yields to the load like every other socket; elsewhere (tests,
plain Python) it is an ordinary thread. It has its own HTTP client, so a slow ledger answer never
holds up a flag flip on the conductor's client. A failed request is counted and the sampler goes
on; `stop()` ends it within one request timeout. No Locust import here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from loadtests.spec import LEDGER_INTERVAL_MIN_S as MIN_INTERVAL_S
from reference.admin import AdminClient

log = logging.getLogger("execbench.ledger_sampler")

# The ledger fields copied into each event, under the names the service uses. `by_mode` is
# left out: it is large and only its end state (ledger.json) is analysed.
FIELDS = ("orders_total", "orders_nonterminal", "releases_total", "double_releases",
          "reserved_vs_open_residual_usd", "overcommits")


class LedgerSampler:
    def __init__(
        self,
        admin: AdminClient,
        emit: Callable[..., None],
        *,
        interval_s: float,
        phase: Callable[[], str | None] = lambda: None,
        mode: Callable[[], str | None] = lambda: None,
        ready: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ):
        """`emit(event, ts=, phase=, mode=, **fields)` writes one timeline event (the
        RunWriter's `timeline`); `ready()` gates the first sample (the runner waits for the
        conductor's `run_start`, so the timeline still opens with it)."""
        if not interval_s >= MIN_INTERVAL_S:
            raise ValueError(f"interval_s must be >= {MIN_INTERVAL_S}, got {interval_s}")
        self.admin = admin
        self.emit = emit
        self.interval_s = float(interval_s)
        self.phase = phase
        self.mode = mode
        self.ready = ready
        self.clock = clock
        self.samples = 0
        self.failures = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ledger-sampler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.admin.close()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop sampling; a request in flight finishes (bounded by the client's timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def counts(self) -> dict[str, Any]:
        """For `run_end`: how many samples were written and how many requests failed."""
        out: dict[str, Any] = {"ledger_samples": self.samples,
                               "ledger_sample_failures": self.failures,
                               "ledger_interval_s": self.interval_s}
        if self.last_error:
            out["ledger_sample_last_error"] = self.last_error
        return out

    def _loop(self) -> None:
        while not self.ready():
            if self._stop.wait(0.05):
                return
        # fixed ticks from the first sample: a slow answer skips ticks, it does not shift them
        first = self.clock()
        tick = 0
        while not self._stop.is_set():
            self.sample_once()
            tick = max(tick + 1, int((self.clock() - first) / self.interval_s) + 1)
            if self._stop.wait(max(0.0, first + tick * self.interval_s - self.clock())):
                return

    def sample_once(self) -> bool:
        sent = self.clock()
        try:
            ledger = self.admin.ledger(by_mode=False)  # the totals: a cheap query on the service
            answered = self.clock()
            fields = {k: ledger[k] for k in FIELDS if k in ledger}
            # the state is as of some moment during the request: the midpoint is the best guess
            self.emit("ledger", ts=(sent + answered) / 2, phase=self.phase(), mode=self.mode(),
                      request_ms=round((answered - sent) * 1000, 3), **fields)
        except Exception as exc:  # noqa: BLE001 - counted; the run must go on without it
            self.failures += 1
            self.last_error = (str(exc) or type(exc).__name__)[:300]
            if self.failures == 1:
                log.warning("ledger sample failed (counted; sampling goes on): %s", self.last_error)
            return False
        self.samples += 1
        return True
