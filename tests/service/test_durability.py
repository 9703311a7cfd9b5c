"""Real `execbench serve` processes: nothing is lost across a kill or a clean shutdown."""

import signal

import httpx
import orjson
import pytest

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_killed_process_finishes_its_queued_orders_after_restart(running_service, request, backend):
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    env = {"EXECBENCH_PROVIDER_DELAY_MS": "1500", "EXECBENCH_PROVIDER_REJECT_RATIO": "0.3",
           "EXECBENCH_WORKER_LEASE_S": "1"}
    first = running_service(database_url=url, extra_env=env, name="first")
    accepted = []
    with httpx.Client(base_url=first.url, timeout=10) as client:
        for i in range(20):
            response = client.post("/api/orders/instant/execute", json={
                "user_id": 1 + i % 10, "user_type": "live", "symbol": "GBPUSD", "side": "sell", "volume": 0.02})
            assert response.status_code == 200
            accepted.append(response.json()["order_id"])
        assert client.get("/admin/ledger", headers=first.admin_headers).json()["orders_nonterminal"] > 0
    first.stop(signal.SIGKILL)

    second = running_service(database_url=first.database_url, seed_users=None, extra_env=env, name="second")
    ledger = second.drained_ledger()
    assert ledger["orders_nonterminal"] == 0
    assert ledger["reserved_vs_open_residual_usd"] == 0
    assert ledger["double_releases"] == 0
    assert ledger["orders_total"] == 2 * 20 * 5 + len(accepted)  # seeded positions + accepted, once each


def test_a_clean_shutdown_loses_no_timing_record(running_service):
    svc = running_service(profile="none")
    ids = []
    with httpx.Client(base_url=svc.url, timeout=10) as client:
        for i in range(200):
            response = client.post("/api/orders/instant/execute", json={
                "user_id": 1 + i % 20, "user_type": "demo", "symbol": "EURUSD", "side": "buy", "volume": 0.01})
            ids.append(response.json()["order_id"])
    # A graceful shutdown (lifespan included) is a clean exit, not death by SIGTERM.
    assert svc.stop() == 0
    assert "Traceback" not in svc.log_path.read_text()
    logged = [orjson.loads(line)["order_id"] for line in svc.timing_log.read_bytes().splitlines()]
    assert logged == ids
