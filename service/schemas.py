"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from service.settings import Mode
from service.symbols import SYMBOLS

SymbolName = Literal[tuple(SYMBOLS)]  # the schema lists the tradable symbols (execbench.contract)


def _no_text_or_bool(value):
    """JSON Schema's integer admits 17.0; a string or a boolean is a wrong type, not an id."""
    if isinstance(value, (str, bool)):
        raise ValueError("must be a JSON integer")  # noqa: TRY004 -- pydantic reports ValueError as a 422
    return value


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user_id: Annotated[int, Field(ge=1, le=2_000_000_000), BeforeValidator(_no_text_or_bool)]
    user_type: Literal["live", "demo"]
    symbol: SymbolName
    side: Literal["buy", "sell"]
    # Strict: a JSON number only (`true` was a 1-lot order and "2" two lots)
    volume: Annotated[float, Strict()] = Field(
        ge=0.01, le=1000, description="lots: a finite JSON number from 0.01 (one micro lot) to 1000")
    client_order_id: str | None = Field(default=None, min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9._:-]+$")


class OrderResponse(BaseModel):
    order_id: str
    status: Literal["queued", "executed"]
    flow: Literal["local", "provider"]
    mode: Mode
    margin_usd: float
    durations_ms: dict[str, float]


class Rejection(BaseModel):
    error: str
    detail: str
    flow: str | None = None
    mode: str | None = None
    stage: str | None = None
    margin_usd: float | None = None
    free_margin_usd: float | None = None


class FlagChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Mode
    reason: str = Field(min_length=1, max_length=500)
    actor: str | None = Field(default=None, max_length=128)


class FlagView(BaseModel):
    mode: Mode
    changed_at: str
    changed_by: str
    applied_at: str
    previous_mode: Mode | None = None


class ProviderChange(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)  # no "true" or "0.1" strings

    outage: bool = False
    reject_ratio: float | None = Field(default=None, ge=0, le=1)
    timeout_ratio: float | None = Field(default=None, ge=0, le=1)
    delay_ms: float | None = Field(default=None, ge=0, le=60_000)
    reason: str = Field(min_length=1, max_length=500)
    actor: str | None = Field(default=None, max_length=128)


class AccountView(BaseModel):
    user_type: str
    user_id: int
    balance: float
    equity: float
    used_margin: float
    reserved_margin: float
    free_margin: float
    open_orders: int
    queued_orders: int
