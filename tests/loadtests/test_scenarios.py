"""The scenarios against a real executor: bursts expose over-commit, margin edges are judged."""

from __future__ import annotations

import collections

import pytest

from tests.loadtests.util import cli_env, execbench, phase_windows, requests, write_spec

pytestmark = pytest.mark.slow


def test_burst_and_margin_edge_in_each_mode(running_service, tmp_path):
    svc = running_service(profile="none", seed_users=40, orders_per_user=3)
    spec = write_spec(
        tmp_path / "scen.toml", rate=6.0, users=40, arrival="poisson",
        mix={"same_user_burst": 1.0, "margin_edge": 1.0},
        phases=[{"name": m, "duration_s": 4, "mode": m} for m in ("off", "skip", "skip_reserve")])
    run_dir = tmp_path / "run"
    result = execbench("run", spec, "--target", svc.url, "--run-dir", run_dir,
                       env=cli_env(svc.admin_token), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    recs = requests(run_dir)
    windows = phase_windows(run_dir)

    # Bursts: 4 concurrent orders at 0.4 of free margin each. Away from the flips (flag TTL
    # 1 s), `off` and `skip_reserve` accept at most 2; `skip` accepts more: the over-commit.
    bursts = collections.defaultdict(list)
    for r in recs:
        if r.get("burst") and r["intended"] > windows[r["phase"]][0] + 1.5:
            bursts[(r["phase"], r["burst"])].append(r["status"])
    accepted = collections.defaultdict(list)
    for (phase, _), statuses in bursts.items():
        assert len(statuses) == 4
        assert set(statuses) <= {200, 409}
        accepted[phase].append(statuses.count(200))
    assert accepted["off"] and max(accepted["off"]) <= 2
    assert accepted["skip_reserve"] and max(accepted["skip_reserve"]) <= 2
    assert accepted["skip"] and max(accepted["skip"]) > 2

    # Margin edge: a 409 above the edge is expected, an acceptance would be a failure.
    edge = [r for r in recs if r["name"] == "margin_edge"]
    assert {r["outcome"] for r in edge} == {"ok", "expected_rejection"}
    assert not [r for r in recs if r["outcome"] == "failure"]
    ledger = (run_dir / "ledger.json").read_text()
    assert '"overcommits"' in ledger
