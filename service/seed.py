"""`execbench seed`: N live and N demo accounts, each with K open orders over several symbols."""

from __future__ import annotations

import random
import time

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import accounts, create_schema, groups, orders, symbols, writer
from service.margin import Position, compute_user_total_margin, order_margin_usd
from service.prices import PriceFeed
from service.symbols import SYMBOLS

GROUPS = (
    {"name": "live", "flow": "provider", "leverage": 100.0},
    {"name": "demo", "flow": "local", "leverage": 100.0},
)


class AlreadySeeded(Exception):
    pass


async def seed_database(engine: AsyncEngine, *, users: int, orders_per_user: int, price_seed: int,
                        rng_seed: int = 7, now: float | None = None) -> dict:
    """Fill an empty database. Refuses a database that already has accounts."""
    await create_schema(engine)
    now = time.time() if now is None else now
    rng = random.Random(rng_seed)
    prices = PriceFeed(price_seed).snapshot(now)
    names = list(SYMBOLS)
    account_rows, order_rows = [], []
    for group in GROUPS:
        for user_id in range(1, users + 1):
            balance = round(rng.uniform(20_000, 100_000), 2)
            target_used = balance * rng.uniform(0.15, 0.45)
            positions = []
            for index in range(orders_per_user):
                symbol = names[(user_id + index) % len(names)]
                per_lot = order_margin_usd(symbol, 1.0, group["leverage"], prices)
                volume = max(0.01, round(target_used / max(orders_per_user, 1) / per_lot, 2))
                side = "buy" if rng.random() < 0.6 else "sell"
                positions.append(Position(symbol, side, volume, prices[symbol], "executed"))
                order_rows.append({
                    "id": f"seed-{group['name']}-{user_id}-{index}", "user_type": group["name"],
                    "user_id": user_id, "symbol": symbol, "side": side, "volume": volume,
                    "open_price": prices[symbol], "margin_usd": per_lot * volume, "reserved_cents": 0,
                    "status": "executed", "flow": group["flow"], "mode": "seed", "created_at": now,
                    "finalized_at": now, "final_outcome": "seeded", "release_count": 0,
                })
            used = compute_user_total_margin(positions, prices, group["leverage"]).executed_margin
            account_rows.append({
                "user_type": group["name"], "user_id": user_id, "group_name": group["name"],
                "balance_usd": balance, "equity_usd": balance, "used_margin_usd": used,
                "reserved_cents": 0, "updated_at": now,
            })
    async with writer(engine).begin() as conn:
        if await conn.scalar(select(func.count()).select_from(accounts)):
            raise AlreadySeeded("the database already has accounts; use a new database or --replace")
        if not await conn.scalar(select(func.count()).select_from(groups)):
            await conn.execute(insert(groups), list(GROUPS))
            await conn.execute(insert(symbols), [
                {"name": s.name, "contract_size": s.contract_size, "quote": s.quote, "enabled": 1}
                for s in SYMBOLS.values()])
        await conn.execute(insert(accounts), account_rows)
        for start in range(0, len(order_rows), 5000):
            await conn.execute(insert(orders), order_rows[start:start + 5000])
    return {"accounts": len(account_rows), "orders": len(order_rows)}


async def clear_database(engine: AsyncEngine) -> None:
    from service.db import metadata

    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
