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


class ProviderWorker:
    def __init__(self, *, store: Store, locks: UserLocks, prices: PriceFeed, flags: FlagService,
                 metrics: ExecutorMetrics, settings: Settings, name: str,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._locks = locks
        self._prices = prices
        self._flags = flags
        self._metrics = metrics
        self._settings = settings
        self.name = name
        self._clock = clock
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
                busy = False
            if not busy:
                await asyncio.sleep(self._settings.worker_poll_s)

    async def run_once(self) -> bool:
        now = self._clock()
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
