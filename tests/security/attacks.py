"""The attacks of issue 12, as functions the tests (and a person at a prompt) can run.

Each one drives real `execbench serve` processes over HTTP and returns plain counts, so a
test asserts invariants (how many over-commits, how many answers of which kind), never a
time. Sizes are parameters: the tests use CI-sized ones, docs/reliability.md the larger runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import httpx

BALANCE = 10_000.0
ORDER = "/api/orders/instant/execute"


def add_accounts(database_url: str, user_ids, balance: float = BALANCE) -> None:
    from tests.service.conftest import add_account

    async def main():
        for user_id in user_ids:
            await add_account(database_url, "live", user_id, balance)

    asyncio.run(main())


def volume_for(fraction: float, balance: float = BALANCE) -> float:
    """Lots of EURUSD whose margin is `fraction` of an empty account's balance."""
    from service.margin import order_margin_usd
    from service.prices import PriceFeed
    from service.settings import Settings

    per_lot = order_margin_usd("EURUSD", 1.0, 100.0, PriceFeed(Settings().price_seed).snapshot())
    return round(fraction * balance / per_lot, 2)


class Flipper(threading.Thread):
    """Flips the flag between `modes` every `period_s` through one replica until stopped."""

    def __init__(self, url: str, headers: dict, modes=("off", "skip_reserve"), period_s: float = 0.5):
        super().__init__(daemon=True)
        self.url, self.headers, self.modes, self.period_s = url, headers, modes, period_s
        self.stop_event = threading.Event()
        self.flips = 0
        self.failures = 0
        self.failed: list[tuple[int, str]] = []  # (status, body) of each refused flip, for the report

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            while not self.stop_event.wait(self.period_s):
                mode = self.modes[self.flips % len(self.modes)]
                response = client.put("/admin/flags/provider_skip",
                                      json={"mode": mode, "reason": f"flip-mix {self.flips}"})
                self.flips += 1
                if response.status_code != 200:
                    self.failures += 1
                    self.failed.append((response.status_code, response.text[:300]))

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


def same_user_bursts(urls: list[str], user_ids, *, burst: int = 4, fraction: float = 0.4,
                     waves: int = 1, spacing_s: float = 0.15) -> dict:
    """For each account, `burst` concurrent orders each sized at `fraction` of its balance (so
    floor(1/fraction) fit), split round-robin over `urls`; accounts start `spacing_s` apart so
    bursts are in flight across every flip. Returns the answers per status and per account."""
    volume = volume_for(fraction)
    statuses: Counter = Counter()
    accepted: Counter = Counter()
    lock = threading.Lock()

    def one(user_id: int, i: int) -> None:
        url = urls[i % len(urls)]
        try:
            response = httpx.post(f"{url}{ORDER}", timeout=60, json={
                "user_id": user_id, "user_type": "live", "symbol": "EURUSD", "side": "buy",
                "volume": volume})
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        with lock:
            statuses[status] += 1
            accepted[user_id] += status == 200

    threads = []
    for k, user_id in enumerate(user_ids):
        for i in range(burst):
            threads.append(threading.Thread(target=one, args=(user_id, i + k)))
            threads[-1].start()
        if k % waves == waves - 1:
            time.sleep(spacing_s)
    for thread in threads:
        thread.join()
    fit = int(1 / fraction + 1e-9)
    return {"statuses": dict(statuses), "accepted_per_account": dict(accepted),
            "accounts_over_limit": sum(n > fit for n in accepted.values()), "fit": fit}


def accounts_over_equity(url: str, user_ids) -> list[int]:
    """Accounts whose used margin (confirmed orders) is above their equity: the over-commit,
    read from the account view after the drain. (A client-side count of 200s can exceed
    floor(1/fraction) legitimately when the provider timed an order out and released it.)"""
    over = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for user_id in user_ids:
            account = client.get(f"/api/accounts/live/{user_id}").json()
            if account["used_margin"] > account["equity"]:
                over.append(user_id)
    return over


def retry_storm(url: str, *, user_id: int, volume: float, n: int = 50,
                client_order_id: str = "storm-1") -> Counter:
    """`n` identical requests (same client_order_id and payload) at once; the answers by kind:
    ('200', order_id) for each order answer, (status, error) otherwise."""
    body = {"user_id": user_id, "user_type": "live", "symbol": "EURUSD", "side": "buy",
            "volume": volume, "client_order_id": client_order_id}
    answers: Counter = Counter()
    barrier = threading.Barrier(n)
    lock = threading.Lock()

    def send() -> None:
        barrier.wait()
        try:
            response = httpx.post(f"{url}{ORDER}", json=body, timeout=60)
            key = ((200, response.json()["order_id"]) if response.status_code == 200
                   else (response.status_code, response.text[:80]))
        except httpx.HTTPError as exc:
            key = (0, type(exc).__name__)
        with lock:
            answers[key] += 1

    threads = [threading.Thread(target=send) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers
