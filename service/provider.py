"""The provider side: a simulated liquidity provider and the workers that take its answers.

The simulator decides, when an order is sent, what the provider will answer and when:
confirm or reject after a lognormal delay, or no answer at all (timeout). The answer
is stored with the order, so it is as durable as the order: workers of any process
claim due orders from the database (a lease, so a killed worker's claims expire and
another process finishes them) and apply the answer:

* confirm — fill the order, recompute the account's final margins (the full
  computation), record the executor's estimate error and any over-commit;
* reject / timeout — the auto-reject cleanup releases the held margin, exactly once
  (a guarded state transition: a duplicate or late answer finds nothing to do).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import time
from collections.abc import Callable

from service.flags import FlagService
from service.locks import UserLocks
from service.margin import compute_user_total_margin, equity_usd
from service.metrics import ExecutorMetrics
from service.prices import PriceFeed
from service.settings import Settings
from service.store import Store

log = logging.getLogger("execbench.provider")


class ProviderSimulator:
    def __init__(self, settings: Settings, flags: FlagService, rng: random.Random | None = None):
        self._settings = settings
        self._flags = flags
        self._rng = rng or random.Random()

    def plan(self, now: float) -> tuple[float, str]:
        """(when the answer is due, what it is) for an order sent now."""
        faults = self._flags.provider
        settings = self._settings
        timeout_s = settings.provider_timeout_s
        if faults.outage:
            return now + timeout_s, "timeout"
        reject = settings.provider_reject_ratio if faults.reject_ratio is None else faults.reject_ratio
        timeout = settings.provider_timeout_ratio if faults.timeout_ratio is None else faults.timeout_ratio
        delay_ms = settings.provider_delay_ms if faults.delay_ms is None else faults.delay_ms
        delay_s = delay_ms / 1000 * math.exp(0.3 * self._rng.gauss(0.0, 1.0))
        draw = self._rng.random()
        if draw < timeout or delay_s >= timeout_s:
            return now + timeout_s, "timeout"
        if draw < timeout + reject:
            return now + delay_s, "reject"
        return now + delay_s, "confirm"


class WorkSignal:
    """In-process news for the workers: when an order this process just sent is due.

    The executor (and a worker that reschedules) says when a queued order's answer is due, so
    the workers of the same process sleep until then instead of claiming 50 times a second to
    find out: the empty claim was a write transaction, ~15 % of a core on an idle service. What
    no one in this process announces (another process's orders, a dead worker's claims once
    their lease expires, an order persisted but never sent) the workers still find by polling,
    every `worker_idle_poll_s`."""

    def __init__(self):
        self._due: list[float] = []  # a heap of announced due times
        self._event = asyncio.Event()

    def notify(self, due_at: float) -> None:
        heapq.heappush(self._due, due_at)
        self._event.set()

    def take_due(self, now: float) -> None:
        """Forget the times a claim at `now` covers (it takes every order due by then)."""
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)

    async def wait(self, now: float, timeout_s: float) -> None:
        """Until the earliest announced due time, a new announcement, or `timeout_s`."""
        self._event.clear()  # before reading the heap: an announcement after this sets it again
        if self._due:
            timeout_s = min(timeout_s, max(0.0, self._due[0] - now))
        if timeout_s <= 0:
            return
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            pass


class ProviderWorker:
    def __init__(self, *, store: Store, locks: UserLocks, prices: PriceFeed, flags: FlagService,
                 metrics: ExecutorMetrics, settings: Settings, name: str,
                 clock: Callable[[], float] = time.time, signal: WorkSignal | None = None):
        self._store = store
        self._locks = locks
        self._prices = prices
        self._flags = flags
        self._metrics = metrics
        self._settings = settings
        self.name = name
        self._clock = clock
        # With a signal (workers beside the executor, `serve`), idle workers wait for its news
        # and poll every worker_idle_poll_s; without (`execbench worker`: every order comes from
        # another process) they poll every worker_poll_s, as they must to answer on time.
        self._signal = signal
        self.processed = 0
        # set at shutdown: the loop ends after the batch in hand, so no confirmation is cut off
        # between its reads and its commit (a cancelled one left its connections closing
        # after the engine was disposed, and the process hung on exit)
        self.stopping = False

    async def run(self) -> None:
        next_gauges = 0.0
        while not self.stopping:
            try:
                now = self._clock()
                if now >= next_gauges:
                    total, waiting, oldest_age = await self._store.queue_depth(now)
                    self._metrics.nonterminal.set(total)
                    self._metrics.provider_inflight.set(waiting)
                    self._metrics.oldest_nonterminal_age.set(oldest_age)
                    next_gauges = now + 0.5
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("provider worker %s: iteration failed; retrying", self.name)
                await asyncio.sleep(self._settings.worker_poll_s)
                continue
            if busy:
                continue
            if self._signal is None:
                await asyncio.sleep(self._settings.worker_poll_s)
            else:
                now = self._clock()
                # never past the gauges' next update: they keep their half-second cadence
                await self._signal.wait(now, min(self._settings.worker_idle_poll_s, next_gauges - now))

    async def run_once(self) -> bool:
        now = self._clock()
        if self._signal is not None:
            self._signal.take_due(now)
        claimed = await self._store.claim_due(
            self.name, now, self._settings.worker_lease_s, self._settings.worker_batch,
            unsent_before=now - self._settings.provider_timeout_s,
        )
        if claimed:
            await asyncio.gather(*(self._process(row) for row in claimed))
        return bool(claimed)

    async def _process(self, row) -> None:
        now = self._clock()
        outcome = row.provider_outcome
        if row.provider_due_at is None:
            outcome = "timeout"  # persisted but never handed to the provider
        elif outcome != "timeout" and self._flags.provider.outage:
            # The provider is down: its answer never arrives. The auto-reject cleanup times the
            # order out once the provider timeout has passed since the order was sent.
            timeout_at = (row.sent_at or now) + self._settings.provider_timeout_s
            if now < timeout_at:
                await self._store.reschedule(row.id, timeout_at, "timeout")
                if self._signal is not None:
                    self._signal.notify(timeout_at)
                return
            outcome = "timeout"
        if outcome == "confirm":
            await self._confirm(row, now)
        else:
            result = await self._store.release(row.id, "rejected" if outcome == "reject" else "timeout",
                                               self.name, now)
            self._count(result, "rejected" if outcome == "reject" else "timeout")
            if result is not None:
                self._metrics.releases.inc()
        self.processed += 1

    async def _confirm(self, row, now: float) -> None:
        config = await self._store.fetch_config(row.user_type, row.user_id)
        prices = self._prices.snapshot(now)

        def compute(positions):
            breakdown = compute_user_total_margin(positions, prices, config.leverage,
                                                  strict=True, include_queued=True)
            equity = equity_usd(config.balance_usd, positions, prices)
            return breakdown.executed_margin, breakdown.total_margin_with_queued, equity

        def truth_at(positions, at: float) -> float:
            return compute_user_total_margin(positions, self._prices.snapshot(at), config.leverage,
                                             strict=True, include_queued=True).total_margin_with_queued

        async with self._locks.hold(row.user_type, row.user_id) as held:
            result = await self._store.confirm(row.id, row.user_type, row.user_id, self.name, now,
                                               prices.__getitem__, compute, truth_at,
                                               self._settings.overcommit_allowance_pct, conn=held)
        self._count(result, "confirmed")
        if result is None:
            return
        mode = result["mode"]
        self._metrics.estimate_error.labels(mode).observe(abs(result["estimate_error_usd"]))
        if result["overcommit_counted"]:
            self._metrics.overcommits.labels(mode).inc()
            self._metrics.overcommit_usd.labels(mode).observe(result["overcommit_usd"])

    def _count(self, result, outcome: str) -> None:
        self._metrics.provider_outcomes.labels(outcome if result is not None else "late_ignored").inc()
