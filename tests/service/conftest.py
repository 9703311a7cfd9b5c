"""Fixtures for the service tests: a real app (lifespan and all) on a real database."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import insert

from service.app import create_app
from service.container import Services
from service.db import accounts, make_engine, writer
from service.seed import seed_database
from service.settings import Settings

ADMIN_TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    registry: CollectorRegistry

    @property
    def services(self) -> Services:
        return self.app.state.services

    def sample(self, name: str, labels: dict | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    async def settled_sample(self, name: str, labels: dict | None = None, *, expected: float,
                             timeout: float = 5.0) -> float:
        """The sample once it equals `expected` (or its value at the timeout).

        A provider worker moves its counters just after its commit, so a drained ledger can be
        read a moment before the metrics catch up with it.
        """
        import anyio

        deadline = time.monotonic() + timeout
        while (value := self.sample(name, labels)) != expected and time.monotonic() < deadline:
            await anyio.sleep(0.02)
        return value

    async def order(self, user_id=1, user_type="live", symbol="EURUSD", side="buy", volume=0.1, **extra):
        body = {"user_id": user_id, "user_type": user_type, "symbol": symbol, "side": side,
                "volume": volume, **extra}
        return await self.client.post("/api/orders/instant/execute", json=body)

    async def set_mode(self, mode: str):
        response = await self.client.put("/admin/flags/provider_skip", headers=AUTH,
                                         json={"mode": mode, "reason": "test"})
        assert response.status_code == 200, response.text
        return response

    async def drain(self, timeout: float = 15.0) -> dict:
        """Wait until every queued order is terminal; return the ledger."""
        deadline = time.monotonic() + timeout
        while True:
            ledger = (await self.client.get("/admin/ledger", headers=AUTH)).json()
            if ledger["orders_nonterminal"] == 0 or time.monotonic() > deadline:
                return ledger
            import anyio

            await anyio.sleep(0.05)


async def seed(url: str, users: int = 5, orders_per_user: int = 3) -> None:
    engine = make_engine(url)
    try:
        # The same price walk the app will use: seeded positions open at the app's prices.
        price_seed = Settings.model_fields["price_seed"].default
        await seed_database(engine, users=users, orders_per_user=orders_per_user, price_seed=price_seed)
    finally:
        await engine.dispose()


async def add_account(url: str, user_type: str, user_id: int, balance: float) -> None:
    """An account with no positions: its whole balance is free margin."""
    engine = make_engine(url)
    try:
        async with writer(engine).begin() as conn:
            await conn.execute(insert(accounts).values(
                user_type=user_type, user_id=user_id, group_name=user_type, balance_usd=balance,
                equity_usd=balance, used_margin_usd=0.0, reserved_cents=0, updated_at=time.time()))
    finally:
        await engine.dispose()


@asynccontextmanager
async def serving(database_url: str, *, seed_users: int | None = 5, run_workers: bool = False, **overrides):
    if seed_users is not None:
        await seed(database_url, users=seed_users)
    settings = Settings(**{"database_url": database_url, "profile": "none", "admin_token": ADMIN_TOKEN,
                           "timing_log": None, "provider_delay_ms": 20.0, "provider_reject_ratio": 0.0,
                           "flag_ttl_s": 0.2, **overrides})
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, run_workers=run_workers)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://executor") as client:
            yield Harness(app, client, registry)
