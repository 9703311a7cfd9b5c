"""What a ledger read costs the service it measures: `Store.ledger` with its per-mode detail (the
run's final ledger) against the totals only (`GET /admin/ledger?by_mode=false`, what the runner's
sampler polls every `load.ledger_interval_s`), on a SQLite (or PostgreSQL) database holding
`--orders` finished provider orders spread over the three modes.

    .venv/bin/python benchmarks/ledger_bench.py                    # 40,000 orders, SQLite
    .venv/bin/python benchmarks/ledger_bench.py --database-url postgresql+asyncpg://...

Prints the median and range over `--reps` reads of each, and the share of a core the sampler's
read takes at one read a second.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.db import make_engine, orders
from service.seed import seed_database
from service.settings import Settings
from service.store import Store

MODES = ("off", "skip", "skip_reserve")


def provider_orders(n: int, users: int, seed: int) -> list[dict]:
    """Finished provider orders as the workers leave them: confirmed (a few rejected, released
    once), each with its estimate error; one in 500 over-committed."""
    rng = random.Random(seed)
    now = time.time()
    rows = []
    for i in range(n):
        rejected = rng.random() < 0.05
        rows.append({
            "id": str(uuid.UUID(int=rng.getrandbits(128))), "user_type": "live",
            "user_id": 1 + i % users, "symbol": "EURUSD", "side": "buy", "volume": 0.1,
            "open_price": 1.1, "margin_usd": 110.0, "reserved_cents": 0,
            "status": "rejected" if rejected else "executed", "flow": "provider",
            "mode": MODES[i % 3], "replica": "bench", "created_at": now - n + i,
            "finalized_at": now - n + i + 0.3,
            "final_outcome": "rejected" if rejected else "confirmed",
            "release_count": 1 if rejected else 0,
            "estimate_error_usd": 0.0 if i % 3 == 0 else rng.gauss(0, 5),
            "overcommit_usd": 12.5 if i % 500 == 1 else None,
            "overcommit_counted": 1 if i % 500 == 1 else 0,
        })
    return rows


async def bench(url: str, n: int, reps: int, seed: int) -> dict[str, list[float]]:
    engine = make_engine(url)
    users = 200
    await seed_database(engine, users=users, orders_per_user=0, price_seed=Settings().price_seed)
    rows = provider_orders(n, users, seed)
    async with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            await conn.execute(orders.insert(), rows[start:start + 5000])
    store = Store(engine)
    times: dict[str, list[float]] = {"totals": [], "detail": []}
    try:
        for _ in range(reps):
            for name, detail in (("totals", False), ("detail", True)):
                t = time.perf_counter()
                ledger = await store.ledger(by_mode_detail=detail)
                times[name].append(time.perf_counter() - t)
        assert ledger["orders_total"] >= n, ledger
    finally:
        await engine.dispose()
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=40_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database-url", default=None,
                    help="an empty database to fill (default: a temporary SQLite file)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'ledger.db'}"
        times = asyncio.run(bench(url, args.orders, args.reps, args.seed))
    print(f"{args.orders:,} provider orders, {url.split(':')[0]}, {args.reps} reads each")
    for name, label in (("totals", "totals only (?by_mode=false, the sampler's)"),
                        ("detail", "with per-mode detail (the final ledger)")):
        ms = sorted(t * 1000 for t in times[name])
        print(f"  {label:<46} median {statistics.median(ms):7.1f} ms  range {ms[0]:.1f}-{ms[-1]:.1f}")
    ratio = statistics.median(times["detail"]) / statistics.median(times["totals"])
    print(f"  detail / totals: {ratio:.1f}x; the sampler at 1 read/s: "
          f"{statistics.median(times['totals']) * 100:.1f} % of a core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
