"""Two executor processes on one PostgreSQL database, like two replicas behind a balancer.

The same-user burst is split across both: with mode `off` the advisory lock serializes
the replicas and `skip_reserve`'s conditional UPDATE needs no lock, so neither
over-commits; `skip` does, and the ledger counts it.
"""

import threading

import httpx
import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
BALANCE = 10_000.0


def add_account(url: str, user_id: int) -> None:
    import asyncio

    from tests.service.conftest import add_account as add

    asyncio.run(add(url, "live", user_id, BALANCE))


def burst(urls: list[str], user_id: int, volume: float, n: int = 10) -> list[int]:
    statuses: list[int] = []
    barrier = threading.Barrier(n)

    def send(i: int) -> None:
        barrier.wait()
        response = httpx.post(f"{urls[i % len(urls)]}/api/orders/instant/execute", timeout=30, json={
            "user_id": user_id, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": volume})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("mode", ["off", "skip_reserve", "skip"])
def test_same_user_burst_across_two_replicas(running_service, postgres_url, mode):
    from service.margin import order_margin_usd
    from service.prices import PriceFeed
    from service.settings import Settings

    env = {"EXECBENCH_PROVIDER_REJECT_RATIO": "0", "EXECBENCH_PROVIDER_DELAY_MS": "100"}
    first = running_service(database_url=postgres_url, mode=mode, profile="seed", extra_env=env, name="r1")
    second = running_service(database_url=postgres_url, mode=mode, profile="seed", seed_users=None,
                             extra_env=env, name="r2")
    volume = round(BALANCE / 3.5 / order_margin_usd("EURUSD", 1.0, 100.0,
                                                    PriceFeed(Settings().price_seed).snapshot()), 2)
    accepted = 0
    for user_id in (901, 902, 903):
        add_account(postgres_url, user_id)
        statuses = burst([first.url, second.url], user_id, volume)
        assert set(statuses) <= {200, 409}, statuses
        accepted += statuses.count(200)
    ledger = first.drained_ledger()
    assert ledger["orders_nonterminal"] == 0
    assert ledger["reserved_vs_open_residual_usd"] == 0
    assert ledger["double_releases"] == 0
    if mode == "skip":
        assert accepted > 9
        assert ledger["overcommits"]["skip"] == accepted - 9
        figures = ledger["by_mode"]["skip"]
        per_10k = figures["overcommits"] / figures["provider_orders"] * 10_000
        print(f"skip: {figures['overcommits']} over-commits in {figures['provider_orders']} provider orders "
              f"({per_10k:.0f} per 10,000), largest {figures['max_overcommit_usd']:.2f} USD")
        assert figures["max_overcommit_usd"] > 0
    else:
        assert accepted <= 9
        assert ledger["overcommits"][mode] == 0
