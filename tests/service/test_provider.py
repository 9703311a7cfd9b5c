"""Provider answers: confirm, reject, timeout, and duplicate or late answers."""

import time

import anyio
import pytest

from tests.service.conftest import AUTH, serving

pytestmark = pytest.mark.anyio


async def send_orders(svc, n: int) -> list[str]:
    ids = []
    for i in range(n):
        response = await svc.order(user_id=1 + i % 5, volume=0.05)
        assert response.status_code == 200, response.text
        ids.append(response.json()["order_id"])
    return ids


@pytest.mark.parametrize(("overrides", "outcome"), [
    ({"provider_reject_ratio": 1.0}, "rejected"),
    ({"provider_timeout_ratio": 1.0, "provider_timeout_s": 0.3}, "timeout"),
])
async def test_reject_and_timeout_release_the_margin_exactly_once(database_url, overrides, outcome):
    async with serving(database_url, run_workers=True, **overrides) as svc:
        held_before = (await svc.client.get("/api/accounts/live/1")).json()["reserved_margin"]
        await send_orders(svc, 10)
        ledger = await svc.drain()
        assert ledger["orders_nonterminal"] == 0
        assert ledger["releases_total"] == 10
        assert ledger["double_releases"] == 0
        assert ledger["reserved_vs_open_residual_usd"] == 0
        assert (await svc.client.get("/api/accounts/live/1")).json()["reserved_margin"] == held_before == 0
        assert await svc.settled_sample("executor_margin_releases_total", expected=10) == 10
        assert await svc.settled_sample("executor_provider_outcomes_total", {"outcome": outcome},
                                        expected=10) == 10


async def test_confirm_moves_the_hold_into_used_margin(database_url):
    async with serving(database_url, run_workers=True) as svc:
        before = (await svc.client.get("/api/accounts/live/2")).json()
        response = await svc.order(user_id=2, volume=0.5)
        ledger = await svc.drain()
        after = (await svc.client.get("/api/accounts/live/2")).json()
        assert ledger["orders_nonterminal"] == 0 and ledger["releases_total"] == 0
        assert after["open_orders"] == before["open_orders"] + 1
        assert after["reserved_margin"] == 0
        assert after["used_margin"] > before["used_margin"]
        assert await svc.settled_sample("executor_provider_outcomes_total", {"outcome": "confirmed"},
                                        expected=1) == 1
        assert await svc.settled_sample("executor_margin_estimate_error_usd_count", {"mode": "off"},
                                        expected=1) == 1
        assert response.json()["status"] == "queued"


async def test_duplicate_and_out_of_order_answers_change_nothing(database_url):
    async with serving(database_url, run_workers=False) as svc:
        store = svc.services.store
        order_id = (await send_orders(svc, 1))[0]
        now = time.time()
        assert await store.release(order_id, "rejected", "w1", now) is not None
        assert await store.release(order_id, "rejected", "w2", now) is None  # duplicate reject
        confirm_after_reject = await store.confirm(order_id, "live", 1, "w3", now, lambda s: 1.0,
                                                   lambda positions: (0.0, 0.0, 0.0))
        assert confirm_after_reject is None
        ledger = (await svc.client.get("/admin/ledger", headers=AUTH)).json()
        assert (ledger["releases_total"], ledger["double_releases"]) == (1, 0)
        assert ledger["reserved_vs_open_residual_usd"] == 0

        # reject after confirm: the confirmed order stays filled, its margin stays used
        confirmed_id = (await send_orders(svc, 1))[0]
        result = await store.confirm(confirmed_id, "live", 1, "w4", now, lambda s: 1.1,
                                     lambda positions: (100.0, 100.0, 1e6))
        assert result is not None
        assert await store.release(confirmed_id, "rejected", "w5", now) is None
        assert await store.release(confirmed_id, "timeout", "w6", now) is None
        ledger = (await svc.client.get("/admin/ledger", headers=AUTH)).json()
        assert (ledger["releases_total"], ledger["double_releases"], ledger["orders_nonterminal"]) == (1, 0, 0)
        assert ledger["reserved_vs_open_residual_usd"] == 0


async def test_an_outage_times_orders_out_and_releases_them(sqlite_url):
    async with serving(sqlite_url, run_workers=True, provider_timeout_s=0.3) as svc:
        auth = {"Authorization": "Bearer test-admin-token"}
        response = await svc.client.put("/admin/provider", headers=auth,
                                        json={"outage": True, "reason": "drill"})
        assert response.status_code == 200 and response.json()["outage"] is True
        await send_orders(svc, 5)
        ledger = await svc.drain()
        assert ledger["orders_nonterminal"] == 0 and ledger["releases_total"] == 5
        await svc.client.put("/admin/provider", headers=auth, json={"outage": False, "reason": "over"})
        await send_orders(svc, 2)
        await anyio.sleep(0.01)
        ledger = await svc.drain()
        assert ledger["releases_total"] == 5  # the provider confirms again


async def test_queue_depth_reports_the_oldest_waiting_order(database_url):
    async with serving(database_url, run_workers=False) as svc:
        store = svc.services.store
        assert await store.queue_depth(time.time()) == (0, 0, 0.0)
        before = time.time()
        await send_orders(svc, 3)
        after = time.time()
        total, waiting, oldest = await store.queue_depth(after + 60)  # a minute later
        assert (total, waiting) == (3, 0)  # none answered, all overdue
        # the first order was created between `before` and `after`: its age a minute later
        assert 60 <= oldest <= after + 60 - before


async def test_a_provider_seed_fixes_the_providers_answers(sqlite_url, tmp_path):
    """EXECBENCH_PROVIDER_SEED: the same seed, the same answers (what a reproducible test pins)."""
    answers = []
    for run in range(2):
        url = sqlite_url if run == 0 else f"sqlite+aiosqlite:///{tmp_path / 'second.db'}"
        async with serving(url, provider_seed=7, provider_reject_ratio=0.4) as svc:
            provider = svc.services.executor._provider
            answers.append([provider.plan(1000.0) for _ in range(200)])
    assert answers[0] == answers[1]
    outcomes = {outcome for _, outcome in answers[0]}
    assert outcomes == {"confirm", "reject"}
