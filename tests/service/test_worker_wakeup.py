"""Idle provider workers: told by their executor when its orders are due, polling for the rest."""

import asyncio
import statistics

import pytest
from sqlalchemy import select

from service.db import orders
from service.provider import WorkSignal
from tests.service.conftest import serving

pytestmark = pytest.mark.anyio


async def test_an_announced_order_is_answered_when_due_not_at_the_next_poll(sqlite_url):
    # a poll this rare would leave each answer up to half a second (the gauges' cadence) late
    async with serving(sqlite_url, run_workers=True, worker_idle_poll_s=30.0, provider_delay_ms=60.0) as svc:
        for i in range(8):
            response = await svc.order(user_id=1 + i % 5, volume=0.05)
            assert response.status_code == 200, response.text
            await asyncio.sleep(0.07)
        ledger = await svc.drain()
        assert ledger["orders_nonterminal"] == 0
        async with svc.services.store.engine.connect() as conn:
            rows = (await conn.execute(select(orders.c.provider_due_at, orders.c.finalized_at)
                                       .where(orders.c.provider_due_at.is_not(None)))).all()
    assert len(rows) == 8
    late = [finalized - due for due, finalized in rows]
    assert min(late) >= 0
    assert statistics.median(late) < 0.1, late


async def test_orders_no_one_announced_are_found_by_the_idle_poll(sqlite_url):
    # another process's orders: accepted by an executor without workers, due after a second
    # app's workers have started (and made their first claim), which never hear of them
    async with serving(sqlite_url, run_workers=False, provider_delay_ms=800.0) as accepting:
        for i in range(5):
            assert (await accepting.order(user_id=1 + i, volume=0.05)).status_code == 200
        assert (await accepting.drain(timeout=0.1))["orders_nonterminal"] == 5
    async with serving(sqlite_url, seed_users=None, run_workers=True, worker_idle_poll_s=0.1) as finishing:
        ledger = await finishing.drain(timeout=5)
    assert ledger["orders_nonterminal"] == 0 and ledger["reserved_vs_open_residual_usd"] == 0


async def test_the_signal_waits_for_the_earliest_announcement_or_the_timeout():
    signal = WorkSignal()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await signal.wait(0.0, 0.05)  # nothing announced: the timeout
    assert loop.time() - start >= 0.04
    signal.notify(0.03)
    signal.notify(10.0)
    start = loop.time()
    await signal.wait(0.0, 5.0)  # the earliest announced due time, not the timeout
    assert loop.time() - start < 1.0
    signal.take_due(0.03)  # a claim at 0.03 covers the first; the second is still ahead
    start = loop.time()
    waiter = asyncio.create_task(signal.wait(0.03, 5.0))
    await asyncio.sleep(0.01)
    signal.notify(0.04)  # a new announcement wakes a waiting worker at once
    await asyncio.wait_for(waiter, 1.0)
    assert loop.time() - start < 1.0
