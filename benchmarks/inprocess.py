"""The real app in-process for the benchmarks: a seeded SQLite database, lifespan, ASGI client."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from service.app import create_app
from service.db import make_engine
from service.seed import seed_database
from service.settings import Settings

TOKEN = "bench"


@asynccontextmanager
async def seeded_client(*, users: int, run_workers: bool, timing_log: bool = False,
                        **settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app on a temporary database with `users` accounts per type.

    With `timing_log` the app writes its timing log into the temporary directory, so its
    cost is part of what a benchmark measures.
    """
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        await seed_database(engine, users=users, orders_per_user=10, price_seed=Settings().price_seed)
        await engine.dispose()
        settings["timing_log"] = Path(tmp) / "timings.jsonl" if timing_log else None
        app = create_app(Settings(database_url=url, admin_token=TOKEN, **settings),
                         registry=CollectorRegistry(), run_workers=run_workers)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                yield client


async def set_mode(client: httpx.AsyncClient, mode: str) -> None:
    response = await client.put("/admin/flags/provider_skip", json={"mode": mode, "reason": "bench"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
    response.raise_for_status()
