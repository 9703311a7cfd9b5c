"""The gateway's settings: one pydantic-settings class, read once per process.

`EXECBENCH_GATEWAY_*`, except the admin token and the profile, which the gateway shares with the
executor (`EXECBENCH_ADMIN_TOKEN`, `EXECBENCH_PROFILE`; a `EXECBENCH_GATEWAY_` one wins). The
profile's `[gateway]` and `[link]` tables give the sink latency and the link's RTT when the
settings do not.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.profiles import BUILTIN_DIR, ProfileError
from service.settings import async_database_url

Switch = Literal["off", "on"]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXECBENCH_GATEWAY_", extra="ignore",
                                      populate_by_name=True)

    upstream: str = Field(default="http://127.0.0.1:8000", description="the executor's base URL")
    upstream_ca: Path | None = Field(default=None, description="CA file for an https upstream")
    upstream_timeout_s: float = Field(default=10.0, gt=0)
    pool_size: int = Field(default=100, ge=1, description="connections to the upstream at most")
    admin_token: str | None = Field(default=None, validation_alias=AliasChoices(
        "EXECBENCH_GATEWAY_ADMIN_TOKEN", "EXECBENCH_ADMIN_TOKEN", "admin_token"))
    profile: str = Field(default="seed", validation_alias=AliasChoices(
        "EXECBENCH_GATEWAY_PROFILE", "EXECBENCH_PROFILE", "profile"))
    # The switches' storage (and their audit trail): a database of the gateway's own.
    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{Path('.execbench/gateway.db').absolute()}")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        return async_database_url(url)

    keepalive: Switch = Field(default="off", description="initial value in a new database")
    async_logging: Switch = Field(default="off", description="initial value in a new database")
    flag_ttl_s: float = Field(default=1.0, gt=0, le=60)
    timing_log: Path | None = None
    sink_latency_ms: float | None = Field(default=None, ge=0, description="default: the profile's")
    log_queue_size: int = Field(default=1024, ge=1, description="async_logging's bounded queue")
    replica: str | None = None
    max_body_bytes: int = Field(default=16_384, ge=256)
    admin_refusals_per_s: float = Field(default=5.0, ge=0)
    admin_refusal_burst: int = Field(default=20, ge=1)
    admin_refusal_tarpit_s: float = Field(default=1.0, ge=0, le=10)


def profile_tables(name_or_path: str) -> dict:
    """The profile file's tables (the executor reads its [stages]; the gateway [gateway], [link])."""
    path = BUILTIN_DIR / f"{name_or_path}.toml"
    if not path.exists():
        path = Path(name_or_path)
    if not path.exists():
        raise ProfileError(f"profile {name_or_path!r}: not a built-in or a file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from None


def sink_latency_ms(settings: GatewaySettings) -> float:
    if settings.sink_latency_ms is not None:
        return settings.sink_latency_ms
    return float(profile_tables(settings.profile).get("gateway", {}).get("sink_latency_ms", 0.0))


def link_defaults(profile: str) -> dict:
    """The profile's [link]: rtt_ms (0 without one) and tls (false)."""
    link = profile_tables(profile).get("link", {})
    return {"rtt_ms": float(link.get("rtt_ms", 0.0)), "tls": bool(link.get("tls", False))}


@lru_cache
def get_settings() -> GatewaySettings:
    return GatewaySettings()
