"""The latency-plan dashboard: its panels are complete, and every query of it runs against a real
Prometheus scraping a real executor behind a real gateway (`python -m gateway`), with orders sent
through the gateway in each of the 16 cells of the four flags (provider_skip off/skip, keepalive,
parallel_config, async_logging), each set through its tier's audited admin API.

Processes are started here and stopped by their own handles (PIDs) at teardown.
"""

from __future__ import annotations

import itertools
import time

import httpx
import pytest

from dashboards import build, latency_plan
from tests.dashboards.panel_queries import all_panels, dashboard_targets

UID = latency_plan.UID
LOADGROUP = "live-prometheus"  # one worker runs it with test_live_prometheus.py (conftest.py)


def test_the_dashboard_is_registered_with_its_pinned_uid():
    assert UID == "execbench-latency-plan"
    assert UID in build.builders()
    assert build.load_all()[UID]["uid"] == UID


def test_the_required_panels_exist_and_split_total_latency_by_all_four_flags():
    model = build.load_all()[UID]
    panels = {p["title"]: p for p in all_panels(model) if p["type"] != "row"}
    titles = " | ".join(panels)
    for needle in ("Total order latency p50 by flag combination", "p95 by flag combination",
                   "p50 over time by flags", "gateway_ms / upstream_ms / log_ms",
                   "written vs dropped", "Gateway switches", "provider_skip", "saving vs all flags off"):
        assert needle in titles, needle
    whole = panels["Total order latency p50 by flag combination (whole range)"]
    assert whole["type"] == "bargauge"
    expr = whole["targets"][0]["expr"]
    for flag in ("mode", "keepalive", "parallel_config", "async_logging"):
        assert flag in expr.split("sum by (")[1].split(")")[0], flag
        assert f"{{{{{flag}}}}}" in whole["targets"][0]["legendFormat"], flag
    assert "$__range" in expr and whole["targets"][0]["instant"]
    over_time = panels["Total order latency p50 over time by flags"]
    assert over_time["targets"][0]["expr"].startswith("flags:gateway_duration_seconds:p50_1m")
    variables = {v["name"] for v in model["templating"]["list"]}
    assert variables == {"mode", "keepalive", "parallel_config", "async_logging"}


# --- against a real Prometheus ------------------------------------------------------------------

ORDER = {"user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": 0.01}
CELLS = list(itertools.product(("off", "skip"), ("off", "on"), ("off", "on"), ("off", "on")))


def _put(url: str, name: str, mode: str, headers: dict) -> None:
    answer = httpx.put(f"{url}/admin/flags/{name}", headers=headers, timeout=10,
                       json={"mode": mode, "reason": "latency-plan dashboard test"})
    assert answer.status_code == 200, answer.text


def _drive_every_cell(executor, gateway, orders_per_cell: int = 6) -> set[tuple[str, ...]]:
    """Orders through the gateway in every cell; returns the cells the answers reported."""
    from tests.gateway.support import AUTH

    seen = set()
    user = 0
    with httpx.Client(timeout=30) as client:
        for mode, keepalive, parallel, async_logging in CELLS:
            _put(executor.url, "provider_skip", mode, executor.admin_headers)
            _put(executor.url, "parallel_config", parallel, executor.admin_headers)
            _put(gateway.url, "keepalive", keepalive, AUTH)
            _put(gateway.url, "async_logging", async_logging, AUTH)
            deadline, sent = time.monotonic() + 10, 0
            while sent < orders_per_cell and time.monotonic() < deadline:
                user = user % 20 + 1
                body = gateway.order(client, user_id=user, **ORDER).json()
                if (body.get("mode"), body.get("flags", {}).get("parallel_config")) == (mode, parallel):
                    sent += 1  # the executor's cache may lag a flip by its TTL: count what it used
                    seen.add((mode, keepalive, parallel, async_logging))
    return seen


def drive_cells_after_the_live_run(stack) -> dict:
    """The live stack's `after_run` (tests/dashboards/conftest.py): once its Locust run is over,
    orders through its gateway in every cell; what the latency-plan test reads."""
    prom = stack.prom
    deadline = time.monotonic() + 30  # scraped before the first order: rates start from the zeros
    while not prom.query('count(gateway_requests_total{job="gateway"}) > 0') and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    start = time.time()
    return {"start": start, "seen": _drive_every_cell(stack.service, stack.gateway)}


@pytest.fixture
def gateway_stack(live):
    """The live-Prometheus stack (tests/dashboards/conftest.py): its executor behind a gateway,
    scraped by a real Prometheus, driven through the 16 cells after the Locust run. One stack for
    this module and test_live_prometheus.py: a second Prometheus, executor and gateway for this
    module alone cost the suite ~15 s."""
    cells = live.after_run_result
    return {"prom": live.prom, "start": cells["start"], "seen": cells["seen"], "gateway": live.gateway}


@pytest.mark.prometheus
@pytest.mark.slow
def test_every_latency_plan_query_returns_data_and_every_cell_shows(gateway_stack):
    from tests.dashboards.test_live_prometheus import has_numbers

    prom, start, end = gateway_stack["prom"], gateway_stack["start"], time.time()
    assert gateway_stack["seen"] == set(CELLS)
    ups = prom.query_range("up", start, end)
    assert {s["metric"]["job"] for s in ups if any(v == "1" for _t, v in s["values"])} >= {
        "executor", "gateway", "prometheus"}  # and the live run's worker and Locust
    broken, checked = [], 0
    model = build.load_all()[UID]
    for panel, target, expr in dashboard_targets(model):
        checked += 1
        result = prom.query(expr, at=end) if target.get("instant") else prom.query_range(expr, start, end)
        if not has_numbers(result):
            broken.append(f"{panel['title']} / {target['refId']}: {expr}")
    assert checked >= 10
    assert not broken, "queries that returned no data:\n" + "\n".join(broken)
    # the whole-range panel shows one bar per cell, labelled by the flags the orders ran with
    whole = next(p for p in all_panels(model) if p["title"].startswith("Total order latency p50 by"))
    _panel, _target, expr = next(t for t in dashboard_targets(model) if t[0] is whole)
    bars = {(s["metric"]["mode"], s["metric"]["keepalive"], s["metric"]["parallel_config"],
             s["metric"]["async_logging"]) for s in prom.query(expr, at=end)}
    assert bars == set(CELLS)
