"""The order endpoint on a real database (SQLite and PostgreSQL): flows, stages, bad input."""

import math

import anyio
import orjson
import pytest
from sqlalchemy import func, select

from service.db import make_engine, orders
from service.profiles import STAGES
from tests.service.conftest import AUTH, add_account, serving

pytestmark = pytest.mark.anyio


async def count_orders(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(orders))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("mode", ["off", "skip", "skip_reserve"])
async def test_each_flow_times_every_stage_and_logs_it(database_url, tmp_path, mode):
    log = tmp_path / "timings.jsonl"
    async with serving(database_url, mode=mode, timing_log=log) as svc:
        provider = await svc.order(user_type="live")
        local = await svc.order(user_type="demo", symbol="USDJPY", side="sell")
    assert provider.status_code == 200, provider.text
    assert local.status_code == 200, local.text
    p, l = provider.json(), local.json()
    assert (p["flow"], p["status"], p["mode"]) == ("provider", "queued", mode)
    assert (l["flow"], l["status"], l["mode"]) == ("local", "executed", mode)
    for body in (p, l):
        assert set(body["durations_ms"]) == {"executor_ms", *STAGES}
        assert body["margin_usd"] > 0
    skipped = ("user_lock_ms", "orders_fetch_ms", "total_margin_ms")
    if mode == "off":
        assert all(p["durations_ms"][s] > 0 for s in skipped)
    else:
        assert all(p["durations_ms"][s] == 0 for s in skipped)
    assert all(l["durations_ms"][s] > 0 for s in skipped), "local flow never skips"
    assert l["durations_ms"]["provider_send_ms"] == 0
    assert p["durations_ms"]["provider_send_ms"] > 0
    records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [r["order_id"] for r in records] == [p["order_id"], l["order_id"]]
    for record, body in zip(records, (p, l), strict=True):
        assert record["component"] == "python_api"
        assert record["endpoint"] == "orders/instant/execute"
        assert record["status"] == "success"
        assert record["mode"] == mode and record["flow"] == body["flow"]
        assert record["durations_ms"] == body["durations_ms"]
        assert record["ts"].endswith("Z") and len(record["ts"]) == 27


async def test_metrics_observe_orders_by_flow_mode_status(sqlite_url):
    async with serving(sqlite_url, mode="skip") as svc:
        await svc.order(user_type="live")
        await svc.order(user_type="demo")
        labels = {"flow": "provider", "mode": "skip", "status": "success"}
        assert svc.sample("executor_orders_total", labels) == 1
        assert svc.sample("executor_duration_seconds_count", labels) == 1
        assert svc.sample("executor_stage_duration_seconds_count",
                          {"stage": "orders_fetch", "flow": "local", "mode": "skip"}) == 1
        assert svc.sample("executor_optimization_mode", {"mode": "skip"}) == 1
        assert svc.sample("executor_optimization_mode", {"mode": "off"}) == 0
        text = (await svc.client.get("/metrics")).text
    assert 'executor_duration_seconds_bucket{flow="provider",le="0.09",mode="skip",status="success"}' in text \
        or 'le="0.09"' in text
    assert "process_cpu_seconds_total" in text


async def test_insufficient_margin_is_a_409_business_rejection(database_url, tmp_path):
    log = tmp_path / "timings.jsonl"
    async with serving(database_url, timing_log=log) as svc:
        await add_account(database_url, "live", 900, balance=1000.0)
        response = await svc.order(user_id=900, volume=5.0)  # ~5,400 USD margin
        assert response.status_code == 409
        body = response.json()
        assert body["error"] == "insufficient_margin"
        assert body["stage"] == "single_margin"
        assert body["margin_usd"] > body["free_margin_usd"]
        assert "Traceback" not in response.text
    record = orjson.loads(log.read_bytes().splitlines()[-1])
    assert record["status"] == "rejected" and record["reason"] == "insufficient_margin"


BAD_BODIES = [
    ({"volume": -1}, "volume"),
    ({"volume": 0}, "volume"),
    ({"volume": 5e-324}, "volume"),
    ({"volume": "lots"}, "volume"),
    ({"volume": 1e9}, "volume"),
    ({"user_id": "1"}, "user_id"),
    ({"user_id": 0}, "user_id"),
    ({"user_type": "vip"}, "user_type"),
    ({"side": "hold"}, "side"),
    ({"symbol": "eurusd"}, "symbol"),
    ({"symbol": "NOPE"}, "symbol"),
    ({"client_order_id": "x" * 65}, "client_order_id"),
    ({"unexpected": 1}, "unexpected"),
]


async def test_bad_input_gets_field_level_422_and_writes_nothing(database_url):
    async with serving(database_url) as svc:
        before = await count_orders(database_url)
        base = {"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": 0.1}
        for change, field in BAD_BODIES:
            response = await svc.client.post("/api/orders/instant/execute", json={**base, **change})
            assert response.status_code == 422, (change, response.text)
            assert any(field in error["loc"] for error in response.json()["detail"]), response.text
        unknown = await svc.client.post("/api/orders/instant/execute", json={**base, "user_id": 99_999})
        assert unknown.status_code == 404
        assert unknown.json()["detail"][0]["loc"] == ["body", "user_id"]
        for missing in base:
            body = {k: v for k, v in base.items() if k != missing}
            response = await svc.client.post("/api/orders/instant/execute", json=body)
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["body", missing]
        for raw in (b'{"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": NaN}',
                    b'{"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": Infinity}',
                    b"not json", b"[]", b""):
            response = await svc.client.post("/api/orders/instant/execute", content=raw,
                                             headers={"content-type": "application/json"})
            assert response.status_code == 422, (raw, response.text)
            assert "Traceback" not in response.text
        huge = b'{"pad": "' + b"x" * 20_000 + b'"}'
        response = await svc.client.post("/api/orders/instant/execute", content=huge,
                                         headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert await count_orders(database_url) == before


async def test_account_view_reflects_a_fill(database_url):
    async with serving(database_url) as svc:
        before = (await svc.client.get("/api/accounts/demo/2")).json()
        await svc.order(user_id=2, user_type="demo", symbol="BTCUSD", volume=0.5)
        after = (await svc.client.get("/api/accounts/demo/2")).json()
        assert after["open_orders"] == before["open_orders"] + 1
        assert after["used_margin"] > before["used_margin"]
        assert math.isclose(after["free_margin"], after["equity"] - after["used_margin"] - after["reserved_margin"],
                            abs_tol=0.02)
        assert (await svc.client.get("/api/accounts/demo/777")).status_code == 404
        assert (await svc.client.get("/api/accounts/gold/1")).status_code == 422


async def test_idempotent_retry_returns_the_stored_result_and_reserves_once(database_url):
    async with serving(database_url, mode="skip_reserve") as svc:
        first = await svc.order(user_id=3, client_order_id="abc-1")
        again = await svc.order(user_id=3, client_order_id="abc-1")
        assert first.status_code == again.status_code == 200
        assert again.json()["order_id"] == first.json()["order_id"]
        assert again.headers["idempotent-replay"] == "true"
        account = (await svc.client.get("/api/accounts/live/3")).json()
        assert account["queued_orders"] == 1
        # the hold is the margin rounded up to the cent; the response rounds to the nearest cent
        assert account["reserved_margin"] == pytest.approx(first.json()["margin_usd"], abs=0.0101)
        conflict = await svc.order(user_id=3, client_order_id="abc-1", volume=0.2)
        assert conflict.status_code == 409
        assert conflict.json()["error"] == "idempotency_conflict"


@pytest.mark.parametrize("mode", ["off", "skip_reserve"])
async def test_concurrent_duplicates_never_create_two_orders(database_url, mode):
    async with serving(database_url, mode=mode) as svc:
        responses = []

        async def send():
            responses.append(await svc.order(user_id=4, client_order_id="dup-7"))

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(send)
        assert [r.status_code for r in responses] == [200] * 8
        assert len({r.json()["order_id"] for r in responses}) == 1
        account = (await svc.client.get("/api/accounts/live/4")).json()
        assert account["queued_orders"] == 1
        ledger = (await svc.client.get("/admin/ledger", headers=AUTH)).json()
        assert ledger["reserved_vs_open_residual_usd"] == 0


async def test_a_server_fault_is_a_json_500_without_a_stack_trace(sqlite_url, tmp_path):
    log = tmp_path / "timings.jsonl"
    async with serving(sqlite_url, timing_log=log) as svc:
        async with svc.services.store.write_engine.begin() as conn:
            await conn.exec_driver_sql("DROP TABLE orders")  # the database loses a table mid-flight
        response = await svc.order(user_type="demo")
        assert response.status_code == 500
        assert response.json() == {"error": "internal_error",
                                   "detail": "the server failed to handle this request"}
        assert svc.sample("executor_orders_total", {"flow": "local", "mode": "off", "status": "error"}) == 1
    record = orjson.loads(log.read_bytes().splitlines()[-1])
    assert record["status"] == "error" and record["reason"] == "internal_error"
