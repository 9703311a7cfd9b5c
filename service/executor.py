"""The order executor: `POST /api/orders/instant/execute`, stage by stage.

It mirrors the seed's `order_execution_service`. Every stage is timed (its real work
plus the profile's injected round trip) under the `durations_ms` key of DESIGN.md.
The mode of the provider_skip flag is read once per request and used throughout:

* ``off``  — both flows: per-user lock, fetch the user's orders, full
  ``compute_user_total_margin(strict=True, include_queued=True)``, check, persist (a provider
  order's hold through the same conditional UPDATE as ``skip_reserve``, so the two safe modes
  stay safe in any mix: docs/DESIGN.md).
* ``skip`` — the seed's Step 1: the provider flow skips lock, fetch and total margin
  and *estimates* ``total_margin_with_queued = current_used_margin_all + margin_usd``.
  ``current_used_margin_all`` holds executed positions only, so orders still queued at
  the provider are invisible to the check: that is the risk this tool measures.
* ``skip_reserve`` — skip the heavy work, but hold the order's margin with one atomic
  conditional UPDATE (used + held + this ≤ equity); no lock, no over-commit.

The local flow does the full computation in every mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns

import orjson

from execbench.contract import STAGES
from service.flags import FlagService
from service.locks import UserLocks
from service.margin import Position, compute_user_total_margin, equity_usd, order_margin_usd
from service.metrics import ExecutorMetrics
from service.prices import PriceFeed
from service.profiles import LatencyProfile
from service.provider import ProviderSimulator, WorkSignal
from service.schemas import OrderRequest
from service.store import DuplicateClientOrderId, ReservationRefused, Store, to_cents
from service.switches import Switches
from service.symbols import SYMBOLS
from service.timing_log import TimingLog, iso_utc


class InvalidOrder(Exception):
    """Input that passed the schema but names something that does not exist or is disabled."""

    def __init__(self, field: str, message: str, kind: str, status: int = 422):
        super().__init__(message)
        self.field, self.message, self.kind, self.status = field, message, kind, status


class IdempotencyConflict(Exception):
    """The client_order_id was used before with a different payload (→ 409)."""


class MarginRejection(Exception):
    """A business rejection: not enough margin (→ 409, a machine-readable reason)."""

    def __init__(self, stage: str, detail: str, margin_usd: float, free_margin_usd: float):
        super().__init__(detail)
        self.stage, self.detail = stage, detail
        self.margin_usd, self.free_margin_usd = margin_usd, free_margin_usd
        self.flow = self.mode = None


@dataclass(slots=True)
class Executed:
    body: dict
    replayed: bool = False


class _Stopwatch:
    """Accumulates each stage's wall time into durations_ms, in milliseconds; `spans` are the
    config reads' [start, end] from the executor's start, so their overlap is observable."""

    __slots__ = ("_start", "durations", "spans")

    def __init__(self):
        self.durations = dict.fromkeys(STAGES, 0.0)
        self.spans: dict[str, list[float]] = {}
        self._start = perf_counter_ns()

    def lap(self, stage: str, started_ns: int) -> None:
        self.durations[stage] += (perf_counter_ns() - started_ns) / 1e6

    def span(self, name: str, started_ns: int) -> None:
        self.spans[name] = [round((started_ns - self._start) / 1e6, 3),
                            round((perf_counter_ns() - self._start) / 1e6, 3)]

    def finish(self) -> dict[str, float]:
        result = {"executor_ms": round((perf_counter_ns() - self._start) / 1e6, 3)}
        result.update((k, round(v, 3)) for k, v in self.durations.items())
        return result


def request_hash(order: OrderRequest) -> str:
    payload = orjson.dumps([order.user_id, order.user_type, order.symbol, order.side, order.volume])
    return hashlib.sha256(payload).hexdigest()


class OrderExecutor:
    def __init__(self, *, store: Store, locks: UserLocks, prices: PriceFeed, profile: LatencyProfile,
                 flags: FlagService, metrics: ExecutorMetrics, timing_log: TimingLog,
                 provider: ProviderSimulator, replica: str, switches: Switches,
                 clock: Callable[[], float] = time.time, work_signal: WorkSignal | None = None):
        self._store = store
        self._locks = locks
        self._prices = prices
        self._profile = profile
        self._flags = flags
        self._metrics = metrics
        self._timing_log = timing_log
        self._provider = provider
        self._replica = replica
        self._switches = switches
        self._clock = clock
        self._work_signal = work_signal

    async def execute(self, order: OrderRequest) -> Executed:
        mode = self._flags.mode  # read once: the whole request runs in this mode
        switches = self._switches.snapshot()  # the same for the on/off switches
        if order.client_order_id is not None:
            replay = await self._replay(order)
            if replay is not None:
                return replay
        watch = _Stopwatch()
        flow = "provider" if order.user_type == "live" else "local"
        order_id = str(uuid.uuid4())
        try:
            body = await self._run(order, order_id, mode, switches, watch)
        except MarginRejection as rejection:
            if order.client_order_id is not None:
                # A retry racing its own first attempt: the first one's hold is what left too
                # little margin. The stored order is the answer, whatever the margin is now.
                replay = await self._replay(order)
                if replay is not None:
                    return replay
            rejection.flow, rejection.mode = flow, mode
            self._record(order_id, flow, mode, "rejected", watch.finish(), switches, watch.spans,
                         reason="insufficient_margin")
            raise
        except DuplicateClientOrderId:
            replay = await self._replay(order)
            if replay is None:  # the winner was rolled back after all: a real error
                raise
            return replay
        except (InvalidOrder, IdempotencyConflict):
            raise
        except Exception:
            self._record(order_id, flow, mode, "error", watch.finish(), switches, watch.spans,
                         reason="internal_error")
            raise
        return Executed(body)

    async def _replay(self, order: OrderRequest) -> Executed | None:
        stored = await self._store.find_by_client_id(order.user_type, order.user_id, order.client_order_id)
        if stored is None:
            return None
        if stored.request_hash != request_hash(order):
            raise IdempotencyConflict(
                f"client_order_id {order.client_order_id!r} was already used for a different order "
                f"(order {stored.id}); use a new client_order_id")
        return Executed(orjson.loads(stored.response_json), replayed=True)

    async def _run(self, order: OrderRequest, order_id: str, mode: str, switches: dict[str, str],
                   watch: _Stopwatch) -> dict:
        profile = self._profile
        # config_fetch: user, group and symbol configuration.
        t = perf_counter_ns()
        if switches["parallel_config"] == "on":
            account, group, enabled = await self._fetch_config_parallel(order, watch)
        else:
            account, group, enabled = await self._fetch_config_sequential(order, watch)
        config = self._store.account_config(account, group)
        if config is None:
            raise InvalidOrder("user_id", f"no {order.user_type} account with user_id {order.user_id}",
                               "unknown_user", status=404)
        if not enabled:
            raise InvalidOrder("symbol", f"unknown or disabled symbol {order.symbol!r}", "unknown_symbol")
        watch.lap("config_fetch_ms", t)
        flow = config.flow
        now = self._clock()
        prices = self._prices.snapshot(now)

        # single_margin: this order's margin alone against the account's free margin.
        t = perf_counter_ns()
        margin_usd = order_margin_usd(order.symbol, order.volume, config.leverage, prices)
        free_snapshot = config.equity_usd - config.used_margin_usd
        await profile.delay("single_margin_ms")
        watch.lap("single_margin_ms", t)
        if margin_usd > free_snapshot:
            raise MarginRejection("single_margin", "order margin exceeds the account's free margin",
                                  margin_usd, free_snapshot)

        # free_margin: the portfolio check against current_used_margin_all.
        t = perf_counter_ns()
        portfolio = await self._store.fetch_portfolio(order.user_type, order.user_id)
        current_used_margin_all = portfolio.used_margin_usd
        await profile.delay("free_margin_ms")
        watch.lap("free_margin_ms", t)
        if current_used_margin_all + margin_usd > portfolio.equity_usd:
            raise MarginRejection("free_margin", "portfolio free margin is insufficient",
                                  margin_usd, portfolio.equity_usd - current_used_margin_all)

        row = {
            "id": order_id, "user_type": order.user_type, "user_id": order.user_id,
            "symbol": order.symbol, "side": order.side, "volume": order.volume,
            "open_price": prices[order.symbol], "margin_usd": margin_usd, "flow": flow, "mode": mode,
            "replica": self._replica, "client_order_id": order.client_order_id,
            "request_hash": request_hash(order) if order.client_order_id else None,
            "created_at": now, "release_count": 0,
        }

        if flow == "local" or mode == "off":
            await self._full_path(order, row, config, prices, flow, watch)
        else:
            await self._skip_path(row, portfolio, current_used_margin_all, margin_usd, mode, watch)

        if flow == "provider":
            t = perf_counter_ns()
            sent_at = self._clock()
            due_at, outcome = self._provider.plan(sent_at)
            await self._store.mark_sent(order_id, sent_at, due_at, outcome)
            if self._work_signal is not None:
                self._work_signal.notify(due_at)
            await profile.delay("provider_send_ms")
            watch.lap("provider_send_ms", t)

        durations = watch.finish()
        body = {"order_id": order_id, "status": row["status"], "flow": flow, "mode": mode,
                "margin_usd": round(margin_usd, 2), "durations_ms": durations,
                "flags": switches, "config_spans_ms": watch.spans}
        self._record(order_id, flow, mode, "success", durations, switches, watch.spans)
        return body

    def _config_reads(self, order: OrderRequest):
        async def symbol() -> bool:
            return order.symbol in SYMBOLS and await self._store.symbol_enabled(order.symbol)

        return (("user", lambda: self._store.fetch_account(order.user_type, order.user_id)),
                ("group", lambda: self._store.fetch_group_of(order.user_type, order.user_id)),
                ("symbol", symbol))

    async def _fetch_config_sequential(self, order: OrderRequest, watch: _Stopwatch):
        """The seed's way: one read after another; the profile's config_fetch_ms is their three
        round trips together, waited once after them."""
        results = []
        for name, read in self._config_reads(order):
            t = perf_counter_ns()
            results.append(await read())
            watch.span(name, t)
        await self._profile.delay("config_fetch_ms")
        return results

    async def _fetch_config_parallel(self, order: OrderRequest, watch: _Stopwatch):
        """Step 3: the three reads at once (asyncio.gather). The same draw of config_fetch_ms as
        the sequential way (a seeded run draws the same sequence either way), shared equally as
        the three round trips, each waited by its own read: together they take a third of it."""
        ms, kind = self._profile.draw("config_fetch_ms")
        reads = self._config_reads(order)

        async def timed(name, read):
            t = perf_counter_ns()
            result = await read()
            await self._profile.wait(ms / len(reads), kind)
            watch.span(name, t)
            return result

        return await asyncio.gather(*(timed(name, read) for name, read in reads))

    async def _full_path(self, order, row, config, prices, flow, watch: _Stopwatch) -> None:
        profile = self._profile
        t = perf_counter_ns()
        async with self._locks.hold(order.user_type, order.user_id) as held:
            await profile.delay("user_lock_ms")
            watch.lap("user_lock_ms", t)

            t = perf_counter_ns()
            existing = await self._store.fetch_user_orders(order.user_type, order.user_id, held)
            await profile.delay("orders_fetch_ms")
            watch.lap("orders_fetch_ms", t)

            t = perf_counter_ns()
            new = Position(order.symbol, order.side, order.volume, row["open_price"],
                           "executed" if flow == "local" else "queued")
            breakdown = compute_user_total_margin([*existing, new], prices, config.leverage,
                                                  strict=True, include_queued=True)
            equity = equity_usd(config.balance_usd, existing, prices)
            await profile.delay("total_margin_ms")
            watch.lap("total_margin_ms", t)
            if breakdown.total_margin_with_queued > equity:
                raise MarginRejection(
                    "total_margin", "total margin with queued orders would exceed equity",
                    row["margin_usd"], equity - (breakdown.total_margin_with_queued - row["margin_usd"]))

            t = perf_counter_ns()
            row["estimate_total_usd"] = breakdown.total_margin_with_queued
            if flow == "local":
                row["status"] = "executed"
                row["response_json"] = None
                await self._persist(row, lambda: self._store.persist_executed(
                    row, breakdown.executed_margin, equity, conn=held))
            else:
                row["status"] = "queued"
                row["reserved_cents"] = to_cents(row["margin_usd"])
                try:
                    # The same conditional hold as skip_reserve: a skip_reserve order of this
                    # account (another replica, or this one just after a flip) takes no user lock,
                    # so it may have held margin since the orders were fetched above.
                    await self._persist(row, lambda: self._store.persist_queued(
                        row, reserve_limit_usd=equity, equity_usd=equity, conn=held))
                except ReservationRefused:
                    watch.lap("persist_ms", t)
                    raise MarginRejection(
                        "persist", "margin reservation refused: margin held for queued orders "
                        "since the check leaves too little free margin", row["margin_usd"],
                        equity - breakdown.executed_margin) from None
            await profile.delay("persist_ms")
            watch.lap("persist_ms", t)

    async def _skip_path(self, row, portfolio, current_used_margin_all, margin_usd, mode, watch) -> None:
        t = perf_counter_ns()
        row["status"] = "queued"
        row["reserved_cents"] = to_cents(margin_usd)
        if mode == "skip":
            # The seed's estimate: queued orders are not in current_used_margin_all.
            row["estimate_total_usd"] = current_used_margin_all + margin_usd
            await self._persist(row, lambda: self._store.persist_queued(row, reserve_limit_usd=None))
        else:
            row["estimate_total_usd"] = current_used_margin_all + portfolio.reserved_usd + margin_usd
            try:
                await self._persist(row, lambda: self._store.persist_queued(
                    row, reserve_limit_usd=portfolio.equity_usd))
            except ReservationRefused:
                watch.lap("persist_ms", t)
                raise MarginRejection("persist", "margin reservation refused: held margin of queued "
                                      "orders leaves too little free margin", margin_usd,
                                      portfolio.equity_usd - current_used_margin_all - portfolio.reserved_usd
                                      ) from None
        await self._profile.delay("persist_ms")
        watch.lap("persist_ms", t)

    async def _persist(self, row: dict, write) -> None:
        # The stored response makes a retried client_order_id return exactly this result.
        if row.get("client_order_id"):
            row["response_json"] = orjson.dumps(
                {"order_id": row["id"], "status": row["status"], "flow": row["flow"], "mode": row["mode"],
                 "margin_usd": round(row["margin_usd"], 2), "durations_ms": {}}).decode()
        await write()

    def _record(self, order_id: str, flow: str, mode: str, status: str, durations: dict,
                switches: dict[str, str], spans: dict, reason: str | None = None) -> None:
        self._metrics.observe_order(flow, mode, status, durations)
        record = {"ts": iso_utc(self._clock()), "component": "python_api",
                  "endpoint": "orders/instant/execute", "status": status, "order_id": order_id,
                  "flow": flow, "mode": mode, "replica": self._replica, "durations_ms": durations,
                  "flags": switches, "config_spans_ms": spans}
        if reason is not None:
            record["reason"] = reason
        self._timing_log.write(record)
