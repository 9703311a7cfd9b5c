"""`execbench demo` of a factorial through the gateway tier: the latency plan end to end, small.

Real processes as the bundled `latency-plan` has them (executor, link proxy with TLS, gateway,
Locust runner), 2 blocks of the 16 cells. What is asserted is what a user relies on, not a
latency figure: every phase's switches reach the tier that owns them, every gateway record
names its cell, the summary holds each step's main effect with an interval, and nothing is left
running. (The calibration figures are benchmarks/calibrate.py's, never a test's.)
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.loadtests.util import EXIT_OF_VERDICT, cli_env, popen, timeline

pytestmark = pytest.mark.slow

SPEC = """
name = "plan-small"
profile = "seed"

[gateway]
link = true

[load]
rate = 10.0
provider_share = 1.0
ledger_interval_s = 0

[load.population]
users = 40

[factorial]
factors = ["provider_skip", "keepalive", "parallel_config", "async_logging"]
blocks = 2
cell_s = 0.6
warmup_s = 2
expected = {keepalive = [-40, -20]}

[[checks]]
kind = "no_orders_lost"
"""


def test_demo_runs_the_factorial_through_the_gateway(tmp_path):
    spec = tmp_path / "plan-small.toml"
    spec.write_text(SPEC)
    runs = tmp_path / "runs"
    proc = popen("demo", "--experiment", spec, "--runs-dir", runs, env=cli_env(), cwd=tmp_path)
    out, _ = proc.communicate(timeout=240)
    assert "demo finished" in out, out[-4000:]
    (run_dir,) = [d for d in runs.iterdir() if d.is_dir()]
    for name in ("gateway.jsonl", "timings.jsonl", "requests.jsonl", "gateway.log",
                 "linkproxy.log", "summary.json", "report.html", "plots/waterfall.svg"):
        assert (run_dir / name).exists(), name

    events = timeline(run_dir)
    applied = [e for e in events if e["event"] == "switch_applied"]
    assert not [e for e in events if e["event"] == "switch_failed"], out[-3000:]
    assert {(e["switch"], e["tier"]) for e in applied} == {
        ("keepalive", "gateway"), ("async_logging", "gateway"), ("parallel_config", "executor")}
    starts = [e for e in events if e["event"] == "phase_start"]
    assert len(starts) == 1 + 2 * 16 and {e.get("block") for e in starts[1:]} == {1, 2}

    # every order went through the gateway, and its record names the cell it ran in
    gateway = [json.loads(line) for line in (run_dir / "gateway.jsonl").read_text().splitlines()]
    orders = [r for r in gateway if r.get("component") == "gateway"]
    sent = sum(1 for line in (run_dir / "requests.jsonl").read_text().splitlines()
               if json.loads(line)["status"])
    assert len(orders) == sent
    cells = Counter((r["mode"], r["flags"]["keepalive"], r["flags"]["parallel_config"],
                     r["flags"]["async_logging"]) for r in orders if r["status"] == "success")
    assert len(cells) == 16, cells
    # the executor's own records carry the parallel_config the gateway saw in its answer
    executor = {json.loads(line)["order_id"]: json.loads(line)
                for line in (run_dir / "timings.jsonl").read_text().splitlines()}
    for r in orders[:50]:
        if r.get("order_id") in executor:
            assert executor[r["order_id"]]["flags"]["parallel_config"] == \
                r["flags"]["parallel_config"]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert proc.returncode == EXIT_OF_VERDICT[summary["verdict"]]
    lp = summary["latency_plan"]
    assert lp["factors"] == ["provider_skip", "keepalive", "parallel_config", "async_logging"]
    for metric in ("total_ms", "executor_ms"):
        for q in ("p50", "p95"):
            effects = lp["metrics"][metric][q]["effects"]
            assert len(effects) == 4 + 6 + 4  # main effects, two-way interactions, each alone
            for e in effects.values():
                assert e["ci_low"] <= e["value"] <= e["ci_high"]
    main = lp["metrics"]["total_ms"]["p50"]["effects"]["keepalive"]
    assert main["expected"] == [-40, -20] and main["finding"] in ("inside", "outside", "overlaps")
    # the provider_skip factor really switched the executor's path: skip's cells skip the lock,
    # the orders fetch and the total margin (a mechanism, not a latency figure)
    skipped = ("user_lock_ms", "orders_fetch_ms", "total_margin_ms")
    by_mode = {m: [r for r in executor.values() if r.get("mode") == m and r["status"] == "success"]
               for m in ("off", "skip")}
    assert by_mode["off"] and by_mode["skip"]
    assert all(r["durations_ms"][s] == 0 for r in by_mode["skip"] for s in skipped)
    assert all(r["durations_ms"][s] > 0 for r in by_mode["off"] for s in skipped)
    assert "latency plan" in out and "waterfall" in (run_dir / "report.html").read_text()
