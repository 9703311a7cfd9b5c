"""The gateway tier against a real executor: real uvicorn processes, real sockets, the link proxy
in this process (so its connection count is read directly). Behaviour only, no clock: what the
client gets, what the gateway logs, how many connections it opens, that no log line is lost
without being counted, and that its switches are guarded and audited."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.linkproxy import ThreadedLinkProxy
from tests.gateway.support import AUTH, start_gateway
from tests.support import start_service

DURATIONS = {"total_ms", "gateway_ms", "upstream_ms", "log_ms"}


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    handle = start_service(tmp_path_factory.mktemp("executor"), profile="none", workers=False,
                           seed_users=20)
    yield handle
    handle.stop()


@pytest.fixture
def gateways(tmp_path):
    started = []

    def start(upstream, **kwargs):
        handle = start_gateway(tmp_path, upstream, name=f"gateway{len(started)}", **kwargs)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def link(executor):
    proxies = []

    def start(**kwargs):
        proxy = ThreadedLinkProxy(executor.url, **{"rtt_ms": 2.0, **kwargs}).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_the_answer_is_the_executors_status_and_body(executor, gateways):
    gw = gateways(executor.url)
    ok = gw.order(user_id=2)
    rejected = gw.order(user_id=3, volume=900.0)
    invalid = gw.order(volume=-1)
    unknown = gw.order(user_id=99_999)
    assert [r.status_code for r in (ok, rejected, invalid, unknown)] == [200, 409, 422, 404]
    assert rejected.json()["error"] == "insufficient_margin"
    assert invalid.json()["detail"][0]["loc"] == ["body", "volume"]
    gw.stop()  # the gateway's log is complete after a clean stop
    # the executor's own record of the same order holds the durations the client got
    served = {r["order_id"]: r for r in lines(executor.timing_log)}
    body = ok.json()
    assert body["durations_ms"] == served[body["order_id"]]["durations_ms"]
    assert (body["flow"], body["mode"], body["status"]) == ("provider", "off", "queued")


def test_the_gateway_writes_one_line_an_order_in_the_seeds_format(executor, gateways):
    gw = gateways(executor.url)
    ok = gw.order(user_id=4)
    gw.order(user_id=5, volume=900.0)
    gw.order(volume=0)
    gw.stop()
    records = lines(gw.timing_log)
    assert [(r["component"], r["endpoint"], r["status"], r["http_status"]) for r in records] == [
        ("gateway", "orders/instant/execute", "success", 200),
        ("gateway", "orders/instant/execute", "rejected", 409),
        ("gateway", "orders/instant/execute", "rejected", 422)]
    first = records[0]
    assert first["order_id"] == ok.json()["order_id"]
    assert (first["flow"], first["mode"]) == ("provider", "off")
    assert first["ts"].endswith("Z") and first["replica"]
    assert first["flags"] == {"keepalive": "off", "async_logging": "off", "parallel_config": "off"}
    assert records[1]["reason"] == "insufficient_margin"
    for record in records:
        durations = record["durations_ms"]
        assert DURATIONS <= set(durations), durations
        assert all(v >= 0 for v in durations.values())
        parts = durations["gateway_ms"] + durations["upstream_ms"] + durations["log_ms"]
        assert parts == pytest.approx(durations["total_ms"], abs=0.01)
    assert first["durations_ms"]["executor_ms"] == ok.json()["durations_ms"]["executor_ms"]


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_keepalive_on_reuses_one_connection_and_off_opens_one_a_request(executor, gateways, link, tls):
    proxy = link(tls=tls)
    args = ["--upstream-ca", str(proxy.proxy.ca.ca_file)] if tls else []
    gw = gateways(proxy.url, args=args)
    assert proxy.stats.connections == 0  # the gateway connects on the first order, not before
    for user_id in range(1, 6):
        assert gw.order(user_id=user_id).status_code == 200
    assert proxy.stats.connections == 5
    assert gw.flip("keepalive", "on").status_code == 200
    for user_id in range(6, 12):
        assert gw.order(user_id=user_id).status_code == 200
    assert proxy.stats.connections == 5 + 1
    assert gw.flip("keepalive", "off").status_code == 200
    gw.order(user_id=12)
    assert proxy.stats.connections == 7
    gw.stop()
    flags = [r["flags"]["keepalive"] for r in lines(gw.timing_log)]
    assert flags == ["off"] * 5 + ["on"] * 6 + ["off"]


def test_async_logging_drops_only_what_it_counts(executor, gateways):
    """A slow sink and a queue of two: most lines are dropped, and every drop is counted, in the
    metric and in the log, so written + dropped = orders."""
    gw = gateways(executor.url, args=["--async-logging", "on", "--sink-latency-ms", "2000",
                                      "--log-queue", "2"])
    orders = 10
    with httpx.Client() as client:
        answers = [gw.order(client, user_id=1 + i % 20) for i in range(orders)]
    assert all(a.status_code == 200 for a in answers)
    dropped = gw.metric("gateway_log_lines_total", {"outcome": "dropped"})
    health = httpx.get(f"{gw.url}/healthz").json()["log"]
    assert health["dropped"] == dropped
    assert dropped >= orders - 3  # one with the writer, two queued: the rest cannot have fitted
    gw.stop()
    records = lines(gw.timing_log)
    written = [r for r in records if r.get("event") is None]
    notices = [r for r in records if r.get("event") == "log_lines_dropped"]
    assert len(written) + sum(n["count"] for n in notices) == orders
    assert sum(n["count"] for n in notices) == dropped
    assert {r["order_id"] for r in written} <= {a.json()["order_id"] for a in answers}
    assert all(r["flags"]["async_logging"] == "on" for r in written)


def test_awaited_logging_writes_every_line(executor, gateways):
    gw = gateways(executor.url, args=["--sink-latency-ms", "20", "--log-queue", "1"])
    answers = [gw.order(user_id=1 + i) for i in range(5)]
    assert gw.metric("gateway_log_lines_total", {"outcome": "written"}) == 5
    gw.stop()
    assert [r["order_id"] for r in lines(gw.timing_log)] == [a.json()["order_id"] for a in answers]


def test_switches_refuse_without_the_token_and_every_change_is_audited(executor, gateways):
    gw = gateways(executor.url)
    assert gw.flip("keepalive", "on", headers={}).status_code == 401
    assert gw.flip("async_logging", "on", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert gw.flip("keepalive", "sometimes").status_code == 422
    assert httpx.get(f"{gw.url}/admin/flags").json()["keepalive"]["mode"] == "off"
    changed = gw.flip("async_logging", "on")
    assert changed.status_code == 200
    state = changed.json()["async_logging"]
    assert (state["mode"], state["previous_mode"], state["changed_by"]) == ("on", "off", "tester")
    flags = httpx.get(f"{gw.url}/admin/flags").json()
    assert {k: v["mode"] for k, v in flags.items()} == {"keepalive": "off", "async_logging": "on"}
    assert httpx.get(f"{gw.url}/admin/flags/audit").status_code == 401
    audit = httpx.get(f"{gw.url}/admin/flags/audit", headers=AUTH).json()["entries"]
    changes = [(e["flag"], e["old_value"], e["new_value"], e["actor"]) for e in audit
               if e["action"] == "changed"]
    assert changes == [("async_logging", "off", "on", "tester")]
    refused = {e["http_status"] for e in audit if e["action"] == "refused"}
    assert {401, 403, 422} <= refused
    assert gw.metric("gateway_switch_mode", {"flag": "async_logging", "mode": "on"}) == 1
    assert gw.metric("gateway_switch_changes_total") == 1


def test_the_executors_switch_flips_through_the_same_shape(executor):
    """parallel_config lives on the executor; the gateway's lines carry what the executor used."""
    put = httpx.put(f"{executor.url}/admin/flags/parallel_config", headers=executor.admin_headers,
                    json={"mode": "on", "reason": "step 3"})
    try:
        assert put.status_code == 200
        body = httpx.post(f"{executor.url}/api/orders/instant/execute", json={
            "user_id": 7, "user_type": "demo", "symbol": "EURUSD", "side": "buy", "volume": 0.01}).json()
        assert body["flags"] == {"parallel_config": "on"}
    finally:
        httpx.put(f"{executor.url}/admin/flags/parallel_config", headers=executor.admin_headers,
                  json={"mode": "off", "reason": "test over"})


def test_the_gateways_metrics_carry_the_executors_flags_from_its_answer(executor, gateways):
    """Total latency by all four flags: the gateway's switches and what the executor's answer said."""
    gw = gateways(executor.url)
    assert gw.order(user_id=13).status_code == 200
    assert gw.order(user_id=14, volume=900.0).status_code == 409  # a rejection names its mode only
    base = {"async_logging": "off", "keepalive": "off"}  # /metrics names labels in sorted order
    ok = {**base, "mode": "off", "parallel_config": "off", "status": "success"}
    assert gw.metric("gateway_requests_total", ok) == 1
    assert gw.metric("gateway_duration_seconds_count", ok) == 1
    rejected = {**base, "mode": "off", "parallel_config": "unknown", "status": "rejected"}
    assert gw.metric("gateway_requests_total", rejected) == 1
    down = gateways("http://127.0.0.1:9")  # nothing listens: the gateway's own 502
    assert down.order().status_code == 502
    error = {**base, "mode": "unknown", "parallel_config": "unknown", "status": "error"}
    assert down.metric("gateway_requests_total", error) == 1
