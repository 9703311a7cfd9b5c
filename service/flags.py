"""The provider_skip flag (and the provider-fault settings): runtime state in the database.

Every replica caches the flag and re-reads it at least every TTL/2, so a change made
through any replica is in force everywhere within the TTL. `applied_at` is when *this*
replica started using the current value; requests read `mode` once and carry it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from service.metrics import ExecutorMetrics
from service.store import Store

log = logging.getLogger("execbench.flags")

FLAG = "provider_skip"
PROVIDER = "provider"


@dataclass(slots=True, frozen=True)
class FlagState:
    mode: str
    version: int
    changed_at: float
    changed_by: str
    applied_at: float


@dataclass(slots=True, frozen=True)
class ProviderFaults:
    outage: bool = False
    reject_ratio: float | None = None
    timeout_ratio: float | None = None
    delay_ms: float | None = None


class FlagService:
    def __init__(self, store: Store, metrics: ExecutorMetrics, ttl_s: float,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._metrics = metrics
        self._ttl_s = ttl_s
        self._clock = clock
        self.state: FlagState | None = None
        self.provider = ProviderFaults()
        self._provider_version = 0

    @property
    def mode(self) -> str:
        return self.state.mode

    async def start(self, initial_mode: str) -> None:
        await self._store.ensure_flag(FLAG, initial_mode, self._clock(), "startup")
        await self._store.ensure_flag(PROVIDER, "{}", self._clock(), "startup")
        await self.refresh()

    async def refresh(self) -> None:
        row = await self._store.get_flag(FLAG)
        # only a newer version: a read that began before this process's own change committed
        # returns the older row, which must not put the old mode back (versions only grow)
        if row is not None and (self.state is None or row["version"] > self.state.version):
            self._apply(row)
        provider = await self._store.get_flag(PROVIDER)
        if provider is not None and provider["version"] > self._provider_version:
            self._provider_version = provider["version"]
            self.provider = ProviderFaults(**orjson.loads(provider["value"]))

    def _apply(self, row) -> None:
        previous = self.state
        self.state = FlagState(row["value"], row["version"], row["changed_at"], row["changed_by"],
                               applied_at=self._clock())
        self._metrics.set_mode(self.state.mode)
        if previous is not None and previous.mode != self.state.mode:
            self._metrics.flag_changes.inc()

    async def run_refresher(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_s / 2)
            try:
                await self.refresh()
            except Exception:  # a database hiccup must not stop propagation for good
                log.warning("flag refresh failed; keeping %s and retrying", self.state.mode, exc_info=True)
                await asyncio.sleep(self._ttl_s)

    async def set_mode(self, mode: str, *, actor: str, reason: str, remote: str | None) -> tuple[str | None, FlagState]:
        old, row = await self._store.set_flag(FLAG, mode, now=self._clock(), actor=actor,
                                              reason=reason, remote=remote)
        self._apply(row)
        return old, self.state

    async def set_provider(self, faults: ProviderFaults, *, actor: str, reason: str, remote: str | None) -> None:
        value = orjson.dumps({k: getattr(faults, k) for k in ProviderFaults.__dataclass_fields__}).decode()
        _old, row = await self._store.set_flag(PROVIDER, value, now=self._clock(), actor=actor,
                                               reason=reason, remote=remote)
        self._provider_version = row["version"]
        self.provider = faults
