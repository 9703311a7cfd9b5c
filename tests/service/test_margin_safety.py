"""Ten concurrent provider orders from one user who can afford three.

`off` and `skip_reserve` must accept at most three and record no over-commit; `skip`
lets more through, and the tool must show it: in the ledger and in the metric.
"""

import anyio
import pytest

from service.margin import order_margin_usd
from service.prices import PriceFeed
from tests.service.conftest import AUTH, add_account, serving

pytestmark = pytest.mark.anyio
BALANCE = 10_000.0


def volume_for_a_third(price_seed: int) -> float:
    prices = PriceFeed(price_seed).snapshot()
    per_lot = order_margin_usd("EURUSD", 1.0, 100.0, prices)
    return round(BALANCE / 3.5 / per_lot, 2)  # 3 fit (86 % of equity), 4 do not (114 %)


async def burst(svc, volume: float, n: int = 10) -> list[int]:
    statuses = []

    async def send(i):
        response = await svc.order(user_id=500, volume=volume, side="buy")
        statuses.append(response.status_code)

    async with anyio.create_task_group() as group:
        for i in range(n):
            group.start_soon(send, i)
    return statuses


@pytest.mark.parametrize("mode", ["off", "skip_reserve"])
async def test_safe_modes_accept_at_most_what_the_margin_allows(database_url, mode):
    async with serving(database_url, mode=mode, run_workers=True) as svc:
        await add_account(database_url, "live", 500, BALANCE)
        statuses = await burst(svc, volume_for_a_third(svc.services.settings.price_seed))
        assert statuses.count(200) <= 3 and statuses.count(200) >= 1
        assert statuses.count(409) == 10 - statuses.count(200)
        ledger = await svc.drain()
        assert ledger["orders_nonterminal"] == 0
        assert ledger["overcommits"][mode] == 0
        assert svc.sample("executor_margin_overcommit_total", {"mode": mode}) == 0
        assert ledger["reserved_vs_open_residual_usd"] == 0
        account = (await svc.client.get("/api/accounts/live/500")).json()
        assert account["used_margin"] <= account["equity"]


async def test_skip_over_commits_and_the_tool_shows_it(database_url):
    # The provider answers after ~1.5 s, not 20 ms: every order of the burst is still queued at the
    # provider while the others are checked, which is the window `skip` cannot see. With a quick
    # provider, confirmations landing mid-burst (a slow or busy machine: 300 ms was once too
    # short) could refuse the fourth order. The provider timeout is far past the delay's spread,
    # so every order is confirmed (a timed-out one would release its margin instead).
    async with serving(database_url, mode="skip", run_workers=True, provider_delay_ms=1500.0,
                       provider_timeout_s=30.0) as svc:
        await add_account(database_url, "live", 500, BALANCE)
        statuses = await burst(svc, volume_for_a_third(svc.services.settings.price_seed))
        accepted = statuses.count(200)
        assert accepted > 3, statuses
        ledger = await svc.drain()
        assert ledger["orders_nonterminal"] == 0
        assert ledger["overcommits"]["skip"] == accepted - 3
        assert ledger["by_mode"]["skip"]["max_overcommit_usd"] > 0
        # every accepted order but the first found its elders still queued: skip's blind spot
        assert ledger["by_mode"]["skip"]["accepted_while_queued"] == accepted - 1
        # the burst is one account's: its orders and over-commits fall on one cluster
        # (provider orders counts every order that went to the provider, rejected ones too)
        provider = ledger["by_mode"]["skip"]["provider_orders"]
        assert ledger["by_mode"]["skip"]["accounts"] == [[provider, accepted - 3, 1]]
        # the sampler's light ledger: the same totals without the per-mode detail
        light = await svc.client.get("/admin/ledger", headers=AUTH, params={"by_mode": "false"})
        assert light.json() == {k: v for k, v in ledger.items() if k != "by_mode"}
        assert (await svc.client.get("/admin/ledger", headers=AUTH, params={"by_mode": "maybe"})).status_code == 422
        errors = ledger["by_mode"]["skip"]["abs_estimate_error_quantiles_usd"]
        assert errors["count"] == accepted  # every confirmation records how wrong the estimate was
        assert 0 < errors["p50"] <= errors["p99"]  # skip ignores the queued orders' margin
        assert await svc.settled_sample("executor_margin_overcommit_total", {"mode": "skip"},
                                        expected=accepted - 3) == accepted - 3
        assert await svc.settled_sample("executor_margin_overcommit_usd_count", {"mode": "skip"},
                                        expected=accepted - 3) == accepted - 3
        account = (await svc.client.get("/api/accounts/live/500")).json()
        assert account["used_margin"] > account["equity"]
        assert ledger["reserved_vs_open_residual_usd"] == 0


async def test_the_estimate_error_is_exact_for_off_and_the_queued_margin_for_skip(database_url):
    """off computes the true total at acceptance; skip leaves out exactly the queued orders."""
    import time

    async with serving(database_url, mode="off", run_workers=False) as svc:
        await add_account(database_url, "live", 600, 50_000)
        volume = 1.0
        first = await svc.order(user_id=600, volume=volume)
        await svc.set_mode("skip")
        second = await svc.order(user_id=600, volume=volume)  # first is still queued: unseen by skip
        store = svc.services.store
        ledger_before = (await svc.client.get("/admin/ledger", headers=AUTH)).json()
        assert ledger_before["orders_nonterminal"] == 2
        from service.provider import ProviderWorker

        worker = ProviderWorker(store=store, locks=svc.services.executor._locks, prices=svc.services.prices,
                                flags=svc.services.flags, metrics=svc.services.metrics,
                                settings=svc.services.settings, name="test")
        rows = await store.claim_due("test", time.time() + 10, 5, 10, unsent_before=0)
        for row in sorted(rows, key=lambda r: r.id != first.json()["order_id"]):
            await worker._confirm(row, time.time())
        ledger = (await svc.client.get("/admin/ledger", headers=AUTH)).json()
    off, skip = ledger["by_mode"]["off"], ledger["by_mode"]["skip"]
    assert off["max_abs_estimate_error_usd"] < 0.05
    # skip's estimate misses the first order's margin, still queued when the second was accepted
    assert skip["mean_estimate_error_usd"] == pytest.approx(first.json()["margin_usd"], rel=0.01)
    assert second.json()["mode"] == "skip"
    # the exposure count: the second order was accepted while the first was queued, not the first
    assert skip["accepted_while_queued"] == 1 and off["accepted_while_queued"] == 0
