"""Calibration check of a latency profile: sequential, unloaded orders through the real app.

    python benchmarks/calibrate.py --profile seed --orders 60

Prints executor_ms p50/p95 per flow and mode (in-process ASGI, SQLite in a temp dir).
The seed profile's targets: provider off p50 = 253 ms, provider skip p50 = 88 ms (±5 %).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from service.app import create_app
from service.db import make_engine
from service.seed import seed_database
from service.settings import Settings


async def measure(profile: str, orders: int, latency_seed: int | None = None) -> dict[tuple[str, str], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'calibrate.db'}"
        engine = make_engine(url)
        await seed_database(engine, users=orders, orders_per_user=10, price_seed=Settings().price_seed)
        await engine.dispose()
        settings = Settings(database_url=url, profile=profile, admin_token="calibrate", latency_seed=latency_seed)
        app = create_app(settings, registry=CollectorRegistry(), run_workers=False)
        results: dict[tuple[str, str], list[float]] = {}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://calibrate") as client:
                for mode in ("off", "skip", "skip_reserve"):
                    await client.put("/admin/flags/provider_skip", json={"mode": mode, "reason": "calibrate"},
                                     headers={"Authorization": "Bearer calibrate"})
                    for user_type, flow in (("live", "provider"), ("demo", "local")):
                        for i in range(orders):
                            response = await client.post("/api/orders/instant/execute", json={
                                "user_id": i + 1, "user_type": user_type, "symbol": "EURUSD",
                                "side": "buy", "volume": 0.01})
                            response.raise_for_status()
                            results.setdefault((flow, mode), []).append(
                                response.json()["durations_ms"]["executor_ms"])
        return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="seed")
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--latency-seed", type=int, default=None, help="fix the injected delays' draws")
    args = parser.parse_args()
    results = asyncio.run(measure(args.profile, args.orders, args.latency_seed))
    for (flow, mode), values in sorted(results.items()):
        q = statistics.quantiles(values, n=20)
        print(f"{flow:8} {mode:12} n={len(values):4} p50={statistics.median(values):7.1f} ms  p95={q[18]:7.1f} ms")


if __name__ == "__main__":
    main()
