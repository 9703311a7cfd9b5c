"""On/off runtime flags beside provider_skip: the latency plan's later steps (issue 13).

The executor's `parallel_config` and the gateway's `keepalive` and `async_logging` are each a row
of the flags table, like provider_skip: changed through the audited admin API (`PUT
/admin/flags/<name>` with `{"mode": "on" | "off", "reason": …}`), cached by every replica and
re-read at least every TTL/2, so a change made through one replica is in force everywhere within
the TTL. A request reads a switch once (`snapshot()`) and records what it used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.flags import FlagState
from service.store import Store

log = logging.getLogger("execbench.switches")

SWITCH_MODES = ("off", "on")
SwitchMode = Literal["off", "on"]


class SwitchChange(BaseModel):
    """The body of `PUT /admin/flags/<switch>`; the shape of provider_skip's FlagChange."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: SwitchMode
    reason: str = Field(min_length=1, max_length=500)
    actor: str | None = Field(default=None, max_length=128)


class Switches:
    def __init__(self, store: Store, initial: dict[str, str], ttl_s: float,
                 clock: Callable[[], float] = time.time, on_change: Callable[[str, str], None] | None = None):
        self._store = store
        self._initial = dict(initial)
        self._ttl_s = ttl_s
        self._clock = clock
        self._on_change = on_change  # (name, mode): metrics of the owner
        self.state: dict[str, FlagState] = {}

    @property
    def names(self) -> Iterable[str]:
        return self._initial.keys()

    def is_on(self, name: str) -> bool:
        return self.state[name].mode == "on"

    def snapshot(self) -> dict[str, str]:
        """Every switch's mode now: what one request uses throughout and records."""
        return {name: state.mode for name, state in self.state.items()}

    async def start(self) -> None:
        for name, mode in self._initial.items():
            await self._store.ensure_flag(name, mode, self._clock(), "startup")
        await self.refresh()

    async def refresh(self) -> None:
        for name in self._initial:
            row = await self._store.get_flag(name)
            current = self.state.get(name)
            # only a newer version (service/flags.py: a read older than a local change)
            if row is not None and (current is None or row["version"] > current.version):
                self._apply(name, row)

    def _apply(self, name: str, row) -> None:
        self.state[name] = FlagState(row["value"], row["version"], row["changed_at"], row["changed_by"],
                                     applied_at=self._clock())
        if self._on_change is not None:
            self._on_change(name, row["value"])

    async def set(self, name: str, mode: str, *, actor: str, reason: str,
                  remote: str | None) -> tuple[str | None, FlagState]:
        old, row = await self._store.set_flag(name, mode, now=self._clock(), actor=actor,
                                              reason=reason, remote=remote)
        self._apply(name, row)
        return old, self.state[name]

    async def run_refresher(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_s / 2)
            try:
                await self.refresh()
            except Exception:  # a database hiccup must not stop propagation for good
                log.warning("switch refresh failed; keeping %s and retrying", self.snapshot(), exc_info=True)
                await asyncio.sleep(self._ttl_s)
