"""Plain Locust stays first-class: `locust -f reference/locustfile.py` with the scenarios and shapes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.loadtests.util import ROOT, cli_env, requests, timeline

pytestmark = pytest.mark.slow


def _locust(*args, env, timeout=90):
    return subprocess.run([sys.executable, "-m", "locust", "-f", "reference/locustfile.py",
                           *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False,
                          timeout=timeout)


def test_locustfile_lists_scenarios_and_experiment_shapes():
    result = _locust("--list", env=cli_env())
    assert result.returncode == 0, result.stderr
    for name in ("TraderMix", "SameUserBurst", "MarginEdge"):
        assert name in result.stdout


def test_headless_manual_load(running_service, tmp_path):
    svc = running_service(profile="none", seed_users=200, orders_per_user=1)
    run_dir = tmp_path / "manual"
    # long enough for a starved machine to start its users and send (nothing asserts a rate)
    result = _locust("--headless", "-u", 2, "-r", 2, "-t", "8s", "--host", svc.url,
                     "TraderMix", env=cli_env(EXECBENCH_RUN_DIR=str(run_dir),
                                              EXECBENCH_RATE_PER_USER="5"))
    assert result.returncode == 0, result.stderr[-3000:]
    recs = requests(run_dir)
    assert recs and {r["phase"] for r in recs} == {"manual"}
    assert not [r for r in recs if r["outcome"] == "failure"]


def test_headless_experiment_shape_flips_the_flag(running_service, tmp_path):
    svc = running_service(profile="none", seed_users=200, orders_per_user=1)
    run_dir = tmp_path / "shape"
    # The default experiment, every phase shortened (a shape ignores -t): ~6 s in all.
    result = _locust("--headless", "--host", svc.url,
                     env=cli_env(svc.admin_token, EXECBENCH_EXPERIMENT="provider-skip-ab",
                                 EXECBENCH_DURATION_SCALE="0.03", EXECBENCH_RUN_DIR=str(run_dir)))
    assert result.returncode == 0, result.stderr[-3000:]
    events = timeline(run_dir)
    assert [e["event"] for e in events[:3]] == ["run_start", "flip_requested", "flip_applied"]
    applied = [(e["phase"], e["mode"]) for e in events if e["event"] == "flip_applied"]
    assert applied == [("warmup", "off"), ("optimized", "skip"), ("rollback", "off")]
    phases = {r["phase"] for r in requests(run_dir)}
    assert {"baseline", "optimized", "rollback"} <= phases
    assert events[-1]["event"] == "run_end" and events[-1]["interrupted"] is False
    assert (run_dir / "ledger.json").exists()
    assert 'name = "provider-skip-ab"' in (run_dir / "experiment.toml").read_text()
