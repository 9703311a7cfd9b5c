"""Calibration check of a latency profile: sequential, unloaded orders through the real app.

    python benchmarks/calibrate.py --profile seed --orders 60

Prints executor_ms p50/p95 per flow and mode (in-process ASGI, SQLite in a temp dir).
The seed profile's targets: provider off p50 = 253 ms, provider skip p50 = 88 ms (±5 %).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from inprocess import seeded_client, set_mode  # benchmarks/inprocess.py


async def measure(profile: str, orders: int, latency_seed: int | None = None) -> dict[tuple[str, str], list[float]]:
    results: dict[tuple[str, str], list[float]] = {}
    async with seeded_client(users=orders, run_workers=False, profile=profile,
                             latency_seed=latency_seed) as client:
        for mode in ("off", "skip", "skip_reserve"):
            await set_mode(client, mode)
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
