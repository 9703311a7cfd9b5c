"""The scenarios against a real executor: bursts expose over-commit, margin edges are judged."""

from __future__ import annotations

import collections
import json

import pytest

from tests.loadtests.util import cli_env, execbench, phase_windows, requests, write_spec

pytestmark = pytest.mark.slow


def test_burst_and_margin_edge_in_each_mode(running_service, tmp_path):
    # Seeded arrivals and account picks (load.seed; seed 3 puts 6-9 bursts of each phase after its
    # flip window), and enough accounts that `skip`, which exhausts an account with every burst,
    # still has fresh ones after the flip window. Unseeded, with 40 users (about 6 burst accounts
    # a phase), a run could be left with no skip burst to judge.
    svc = running_service(profile="none", seed_users=80, orders_per_user=3)
    spec = write_spec(
        tmp_path / "scen.toml", rate=6.0, users=80, arrival="poisson", extra_load="seed = 3",
        mix={"same_user_burst": 1.0, "margin_edge": 1.0},
        phases=[{"name": m, "duration_s": 4, "mode": m} for m in ("off", "skip", "skip_reserve")])
    run_dir = tmp_path / "run"
    result = execbench("run", spec, "--target", svc.url, "--run-dir", run_dir,
                       env=cli_env(svc.admin_token), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    recs = requests(run_dir)
    windows = phase_windows(run_dir)

    # Bursts: 4 concurrent orders at 0.4 of free margin each. Serialised (`off`) or reserved
    # (`skip_reserve`) about 2 fit (a third may, where it hedges an open sell); `skip` checks
    # each against a stale free margin and accepts them all. Flip windows (TTL 1 s) excluded.
    bursts = collections.defaultdict(list)
    for r in recs:
        if r.get("burst") and r["intended"] > windows[r["phase"]][0] + 1.5:
            bursts[(r["phase"], r["burst"])].append(r["status"])
    accepted = collections.defaultdict(list)
    for (phase, _), statuses in bursts.items():
        assert len(statuses) == 4
        assert set(statuses) <= {200, 409}
        accepted[phase].append(statuses.count(200))
    mean = {phase: sum(v) / len(v) for phase, v in accepted.items()}
    print("accepted per burst:", dict(accepted))
    assert set(mean) == {"off", "skip", "skip_reserve"}, accepted
    assert mean["off"] < 3 and mean["skip_reserve"] < 3, accepted
    assert mean["skip"] > max(mean["off"], mean["skip_reserve"]), accepted
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert ledger["overcommits"]["off"] == 0, ledger
    assert ledger["overcommits"]["skip"] > 0, ledger

    # Margin edge: a 409 above the edge is expected, an acceptance would be a failure.
    edge = [r for r in recs if r["name"] == "margin_edge" and r["outcome"] != "skipped"]
    assert {r["outcome"] for r in edge} == {"ok", "expected_rejection"}, edge
    assert not [r for r in recs if r["outcome"] == "failure"], [
        r for r in recs if r["outcome"] == "failure"]


@pytest.mark.postgres
def test_burst_on_postgres_two_replicas(running_service, postgres_url, tmp_path):
    """PostgreSQL, a second replica sharing the database (its provider workers claim orders
    too): bursts under `off` never over-commit, and every order ends terminal."""
    svc = running_service(database_url=postgres_url, profile="none", seed_users=40,
                          orders_per_user=2, name="a")
    running_service(database_url=postgres_url, profile="none", seed_users=None, name="b")
    spec = write_spec(tmp_path / "pg.toml", rate=6.0, users=40, arrival="poisson",
                      extra_load="seed = 3", mix={"same_user_burst": 1.0},
                      phases=[{"name": "off", "duration_s": 3, "mode": "off"}])
    run_dir = tmp_path / "run"
    result = execbench("run", spec, "--target", svc.url, "--run-dir", run_dir,
                       env=cli_env(svc.admin_token), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(r.get("burst") for r in requests(run_dir))
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert ledger["overcommits"]["off"] == 0, ledger
    assert ledger["orders_nonterminal"] == 0, ledger
