"""A deterministic price feed: a seeded random walk per symbol and UTC day.

Every process (executor replicas, workers, tests) computes the same price for the
same symbol at the same second without talking to each other: the walk for a day
is generated from (seed, symbol, day) and restarts at the reference price at
00:00 UTC. Prices move once a second, so margins drift slowly under load, as in
a real market, and the estimate-error figures have something real to measure.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import numpy as np

from service.symbols import SYMBOLS, Symbol

SECONDS_PER_DAY = 86_400


class PriceFeed:
    def __init__(self, seed: int, clock: Callable[[], float] = time.time):
        self._seed = seed
        self._clock = clock
        self._walks: dict[tuple[str, int], np.ndarray] = {}

    def _walk(self, symbol: Symbol, day: int) -> np.ndarray:
        key = (symbol.name, day)
        walk = self._walks.get(key)
        if walk is None:
            digest = hashlib.sha256(f"{self._seed}:{symbol.name}:{day}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            steps = rng.standard_normal(SECONDS_PER_DAY) * symbol.tick_volatility
            walk = symbol.reference_price * np.exp(np.cumsum(steps))
            self._walks = {k: v for k, v in self._walks.items() if k[1] >= day - 1}
            self._walks[key] = walk
        return walk

    def price(self, symbol_name: str, at: float | None = None) -> float:
        symbol = SYMBOLS[symbol_name]
        now = self._clock() if at is None else at
        day, second = divmod(int(now), SECONDS_PER_DAY)
        return float(self._walk(symbol, day)[second])

    def snapshot(self, at: float | None = None) -> dict[str, float]:
        now = self._clock() if at is None else at
        return {name: self.price(name, now) for name in SYMBOLS}
