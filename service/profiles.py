"""Latency profiles: the production round trips the executor pays, injected per stage.

A profile is a TOML file with one table per stage (the ``durations_ms`` keys)::

    [stages.orders_fetch_ms]
    p50 = 33.0      # ms
    p95 = 50.0      # ms; lognormal fitted through p50 and p95 (omit for a fixed delay)
    kind = "io"     # "io": awaited (a remote call); "cpu": burns the event loop

``io`` delays are ``asyncio.sleep`` — the process serves other requests meanwhile, as
it would while waiting on a remote database. ``cpu`` delays spin, holding the event
loop, as pure-Python work would. Built in: ``seed`` (calibrated to the engineering
note, see profiles/seed.toml) and ``none`` (no injected delay: only the real work).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from execbench.contract import STAGES

BUILTIN_DIR = Path(__file__).with_name("profiles")
Z95 = 1.6448536269514722


class ProfileError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StageDelay:
    p50_ms: float
    sigma: float  # of the underlying normal; 0 = fixed delay
    kind: str

    def sample_ms(self, rng: random.Random) -> float:
        if self.p50_ms <= 0:
            return 0.0
        if self.sigma == 0:
            return self.p50_ms
        return self.p50_ms * math.exp(self.sigma * rng.gauss(0.0, 1.0))


class LatencyProfile:
    def __init__(self, name: str, stages: dict[str, StageDelay], seed: int | None = None):
        self.name = name
        self.stages = stages
        self._rng = random.Random(seed)

    async def delay(self, stage: str) -> None:
        spec = self.stages.get(stage)
        if spec is None:
            return
        await self.wait(spec.sample_ms(self._rng), spec.kind)

    def draw(self, stage: str) -> tuple[float, str]:
        """One draw of the stage's delay, not waited: (ms, kind); (0, "io") without one. It takes
        the same draw from the generator as `delay`, so a seeded run draws the same sequence."""
        spec = self.stages.get(stage)
        return (0.0, "io") if spec is None else (spec.sample_ms(self._rng), spec.kind)

    @staticmethod
    async def wait(ms: float, kind: str = "io") -> None:
        if ms <= 0:
            return
        if kind == "cpu":
            deadline = time.perf_counter() + ms / 1000
            while time.perf_counter() < deadline:
                pass
        else:
            await asyncio.sleep(ms / 1000)


def parse_profile(data: dict, source: str, seed: int | None = None) -> LatencyProfile:
    stages: dict[str, StageDelay] = {}
    raw_stages = data.get("stages", {})
    if not isinstance(raw_stages, dict):
        raise ProfileError(f"{source}: [stages] must be a table")
    for stage, spec in raw_stages.items():
        where = f"{source}: stages.{stage}"
        if stage not in STAGES:
            raise ProfileError(f"{where}: unknown stage; expected one of {', '.join(STAGES)}")
        if not isinstance(spec, dict):
            raise ProfileError(f"{where}: must be a table with p50 [p95] [kind]")
        try:
            p50 = float(spec["p50"])
        except (KeyError, TypeError, ValueError):
            raise ProfileError(f"{where}.p50: required, a number of milliseconds") from None
        p95 = spec.get("p95")
        kind = spec.get("kind", "io")
        if kind not in ("io", "cpu"):
            raise ProfileError(f"{where}.kind: must be 'io' or 'cpu', got {kind!r}")
        if not math.isfinite(p50) or p50 < 0:
            raise ProfileError(f"{where}.p50: must be a finite number >= 0")
        sigma = 0.0
        if p95 is not None:
            p95 = float(p95)
            if not math.isfinite(p95) or p95 < p50:
                raise ProfileError(f"{where}.p95: must be a finite number >= p50")
            sigma = math.log(p95 / p50) / Z95 if p50 > 0 else 0.0
        stages[stage] = StageDelay(p50, sigma, kind)
    return LatencyProfile(str(data.get("name", source)), stages, seed)


def load_profile(name_or_path: str, seed: int | None = None) -> LatencyProfile:
    path = BUILTIN_DIR / f"{name_or_path}.toml"
    if not path.exists():
        path = Path(name_or_path)
    if not path.exists():
        builtins = sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))
        raise ProfileError(f"profile {name_or_path!r}: not a built-in ({', '.join(builtins)}) or a file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    return parse_profile(data, str(path), seed)
