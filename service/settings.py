"""The service's settings: one pydantic-settings class, read once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from execbench.contract import MODES

__all__ = ["MODES", "Mode", "Settings", "get_settings"]

Mode = Literal["off", "skip", "skip_reserve"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXECBENCH_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{Path('.execbench/execbench.db').absolute()}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///… or postgresql+asyncpg://…",
    )
    profile: str = Field(default="seed", description="seed | none | path to a TOML profile")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        return async_database_url(url)
    mode: Mode = Field(default="off", description="initial provider_skip mode of a new database")
    admin_token: str | None = Field(default=None, description="bearer token of the admin API")
    # The latency plan's Step 3 (issue 13): the three config fetches concurrently (on) or one
    # after another (off); the initial value of a new database, then runtime state.
    parallel_config: Literal["off", "on"] = "off"
    # Refused admin attempts allowed per source address (service/admin_gate.py): a bucket of
    # `admin_refusal_burst`, refilled at `admin_refusals_per_s`; above it 429 with Retry-After.
    admin_refusals_per_s: float = Field(default=5.0, ge=0)
    admin_refusal_burst: int = Field(default=20, ge=1)
    admin_refusal_tarpit_s: float = Field(default=1.0, ge=0, le=10, description="pause before a 429")
    flag_ttl_s: float = Field(default=1.0, gt=0, le=60)
    timing_log: Path | None = None
    replica: str | None = Field(default=None, description="replica name in records; default host:pid")

    # Provider simulator: how the external liquidity provider answers.
    provider_delay_ms: float = Field(default=150.0, ge=0)
    provider_reject_ratio: float = Field(default=0.02, ge=0, le=1)
    provider_timeout_ratio: float = Field(default=0.0, ge=0, le=1)
    provider_timeout_s: float = Field(default=2.0, gt=0)
    worker_poll_s: float = Field(default=0.02, gt=0)
    # Workers in the executor's process are told when its orders are due (provider.WorkSignal);
    # they poll this often for the rest: other processes' orders, expired leases, unsent orders.
    worker_idle_poll_s: float = Field(default=0.25, gt=0)
    worker_batch: int = Field(default=50, ge=1)
    worker_lease_s: float = Field(default=10.0, gt=0)

    # A confirmation that leaves used margin above equity by less than this share of equity is
    # recorded but not counted as an over-commit: prices move between an order's acceptance and
    # its confirmation (equity moves ~leverage times faster than margin), so an account accepted
    # right at its limit can cross it by a hair in any mode. What `skip` lets through is whole
    # orders' margin, far above it.
    overcommit_allowance_pct: float = Field(default=1.0, ge=0, le=100)

    price_seed: int = 20261125
    latency_seed: int | None = None
    # Fixes the provider's draws (delay, reject, timeout) for reproducible tests and runs; unset,
    # each process draws freshly. With a seed, every process draws the same sequence.
    provider_seed: int | None = None
    max_body_bytes: int = Field(default=16_384, ge=256)
    db_pool_size: int = Field(default=20, ge=1)


_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
                  "postgres": "postgresql+asyncpg"}
_SUPPORTED = ("sqlite+aiosqlite", "postgresql+asyncpg")


def async_database_url(url: str) -> str:
    """A plain SQLAlchemy URL (`sqlite:///x.db`, `postgresql://…`, as every SQLAlchemy user
    writes it) mapped to the async driver the service runs on; another driver refused in one
    line instead of SQLAlchemy's "the asyncio extension requires an async driver"."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r} (sqlite:///path.db or postgresql://user@host/db)")
    scheme = _ASYNC_DRIVERS.get(scheme.lower(), scheme.lower())
    if scheme not in _SUPPORTED:
        raise ValueError(f"unsupported database driver {url.partition('://')[0]!r}: use sqlite:// "
                         "(aiosqlite) or postgresql:// (asyncpg)")
    return f"{scheme}://{rest}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
