"""Attack 2: 50 identical requests at once (same client_order_id, same payload) for an order
that uses 60 % of the account's margin, so a second copy can never fit. The provider answers
after ~20 ms, so the worker confirms the order while the copies are still arriving.

Right answer: one order row, 50 answers that are that order (the first, or a replay of the
stored result), no 409 and no 500. Before the fix 49 were 409 `insufficient_margin`, and on
PostgreSQL in skip / skip_reserve 9-22 were 500 `deadlock detected` (the executor locked the
account row then the order's index entry, the worker the order row then the account).
"""

import httpx
import pytest

from tests.security.attacks import add_accounts, retry_storm, volume_for

pytestmark = pytest.mark.slow
ENV = {"EXECBENCH_PROVIDER_REJECT_RATIO": "0", "EXECBENCH_PROVIDER_DELAY_MS": "20"}


@pytest.mark.parametrize("mode", ["off", "skip", "skip_reserve"])
def test_fifty_identical_requests_get_the_one_order(running_service, database_url, mode):
    svc = running_service(database_url=database_url, mode=mode, seed_users=2, extra_env=ENV)
    add_accounts(database_url, [8001, 8002])
    before = svc.drained_ledger()["orders_total"]
    volume = volume_for(0.6)
    answers = retry_storm(svc.url, user_id=8001, volume=volume, n=50, client_order_id="storm-a")
    print(f"\n{mode}: {dict(answers)}")
    assert len(answers) == 1, answers  # one kind of answer: 200 with one order id
    (status, order_id), count = answers.most_common(1)[0]
    assert status == 200 and count == 50
    # the stored order answers a retry sent after it was confirmed, whatever the margin is now
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        late = client.post("/api/orders/instant/execute", json={
            "user_id": 8001, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": volume,
            "client_order_id": "storm-a"})
        assert late.status_code == 200 and late.json()["order_id"] == order_id
        assert late.headers["idempotent-replay"] == "true"
        # the same id with another payload is still refused
        other = client.post("/api/orders/instant/execute", json={
            "user_id": 8001, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": 0.01,
            "client_order_id": "storm-a"})
        assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    # a second storm on another account while the first one's order is being confirmed
    second = retry_storm(svc.url, user_id=8002, volume=volume, n=50, client_order_id="storm-b")
    assert [k[0] for k in second] == [200] and sum(second.values()) == 50, second
    ledger = svc.drained_ledger()
    assert ledger["orders_total"] == before + 2  # one order row per storm
    assert ledger["orders_nonterminal"] == 0 and ledger["reserved_vs_open_residual_usd"] == 0
    assert ledger["overcommits"][mode] == 0
    log = svc.log_path.read_text()
    assert "Traceback" not in log and "deadlock" not in log
