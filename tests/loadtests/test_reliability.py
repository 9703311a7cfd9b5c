"""Issue 6 through `execbench demo`: a SIGKILL of the service mid-run (SQLite and PostgreSQL),
and a storm of 50 flag flips under load. Short phases (`--duration-scale`); real processes."""

from __future__ import annotations

import json

import psutil
import pytest

from loadtests import spec as specs
from tests.loadtests.util import assert_verdict_followed, cli_env, popen, requests, timeline
from tests.support import create_postgres_database, drop_postgres_database, free_port


def _demo(tmp_path, experiment: str, scale: float, *extra) -> tuple[object, str, object]:
    runs = tmp_path / "runs"
    proc = popen("demo", "--experiment", experiment, "--duration-scale", scale, "--runs-dir", runs,
                 "--port", free_port(), *extra, env=cli_env(), cwd=tmp_path)
    out, _ = proc.communicate(timeout=300)
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    assert len(dirs) == 1, out[-4000:]
    return proc, out, dirs[0]


def _assert_recovered(tmp_path, *extra) -> None:
    proc, out, run_dir = _demo(tmp_path, "crash-recovery", 0.12, *extra)
    events = timeline(run_dir)
    kill = next(e for e in events if e["event"] == "fault_injected")
    back = next(e for e in events if e["event"] == "service_restarted")
    assert kill["phase"] == "crash" and back["pid"] != kill["pid"], (kill, back)
    assert not psutil.pid_exists(kill["pid"]) or psutil.Process(kill["pid"]).status() == "zombie"
    recovery = json.loads((run_dir / "recovery.json").read_text())
    ledger = json.loads((run_dir / "ledger.json").read_text())
    print(json.dumps({k: v for k, v in recovery.items() if k != "faults"}, indent=1))
    assert ledger["orders_nonterminal"] == 0
    assert ledger["reserved_vs_open_residual_usd"] == 0
    assert ledger["double_releases"] == 0
    assert recovery["accepted_client_order_ids_distinct"] > 100
    assert recovery["client_order_ids_created_twice"] == 0
    assert recovery["client_order_ids_accepted_twice"] == 0
    assert recovery["accepted_missing_in_database"] == 0
    assert recovery["accepted_nonterminal"] == 0
    assert recovery["database_ids_never_sent"] == 0
    assert recovery["provider_orders_queued_at_kill"] > 0  # the crash left work to take over
    assert recovery["provider_orders_queued_at_kill_still_queued"] == 0
    # Every order in the database that carries an id was sent by this run, and (no retry left
    # unanswered) each was accepted: one order per accepted id, none twice.
    assert recovery["database_orders_with_client_order_id"] == (
        recovery["accepted_client_order_ids_distinct"] + recovery["persisted_without_answer"])
    assert_verdict_followed(proc.returncode, run_dir, out)


@pytest.mark.slow
def test_crash_recovery_on_sqlite(tmp_path):
    _assert_recovered(tmp_path)


@pytest.mark.slow
@pytest.mark.postgres
def test_crash_recovery_on_postgres(tmp_path):
    url = create_postgres_database()
    try:
        _assert_recovered(tmp_path, "--database-url", url)
    finally:
        drop_postgres_database(url)


@pytest.mark.slow
def test_flip_storm(tmp_path):
    proc, out, run_dir = _demo(tmp_path, "flip-storm", 0.06)
    events = timeline(run_dir)
    flips = [e for e in events if e["event"] == "flip_applied" and not e.get("initial")]
    assert len(flips) == 50
    assert not [e for e in events if e["event"] == "flip_failed"]
    records = requests(run_dir)
    assert records and all(r["status"] == 200 for r in records)
    assert {r["served_mode"] for r in records} == {"off", "skip"}
    server = [json.loads(line) for line in (run_dir / "timings.jsonl").read_text().splitlines()]
    assert {t["mode"] for t in server} == {"off", "skip"}
    assert {t["status"] for t in server} == {"success"}
    # The analysis ran and its exit status is its verdict; no server error, no order lost, the
    # ledger reconciles. Whether skip's p50 separates from off's, or the local flow stays within
    # 10 %, is measured time: a busy box may leave it undecided (CI did, at 1.069 [1.027, 1.102]).
    summary = assert_verdict_followed(proc.returncode, run_dir, out)
    assert {c["kind"] for c in summary["checks"]} >= {"no_errors", "no_orders_lost"}


def test_repeat_expands_into_cycles_and_faults_are_validated(tmp_path):
    storm = specs.load("flip-storm")
    assert len(storm.phases) == 51
    assert [p.name for p in storm.phases[1:3]] == ["storm-1-skip", "storm-1-off"]
    assert {p.group for p in storm.phases[1:]} == {"storm-skip", "storm-off"}
    assert "repeat" not in specs.dumps(storm)  # experiment.toml lists every phase
    crash = specs.load("crash-recovery")
    assert [p.name for p in crash.phases if p.fault] == ["crash"]
    assert crash.data["service"]["env"]["EXECBENCH_WORKER_LEASE_S"] == "2"

    base = {"name": "x", "load": {"rate": 5}, "phases": [{"name": "a", "duration_s": 1, "mode": "off"}]}
    cases = [
        ({"phases": [{"name": "a", "duration_s": 1, "mode": "off", "fault": "reboot"}]},
         "phases[0].fault: must be one of kill_service"),
        ({"phases": [{"name": "s", "duration_s": 1, "repeat": 0, "modes": ["off"]}]},
         "phases[0].repeat: must be >= 1"),
        ({"phases": [{"name": "s", "duration_s": 1, "repeat": 2, "modes": ["off", "fast"]}]},
         "phases[0].modes[1]: must be one of"),
        ({"phases": [{"name": "s", "duration_s": 1, "repeat": 2, "mode": "off", "modes": ["off"]}]},
         "phases[0].modes: give either mode or modes"),
        ({"service": {"env": {"EXECBENCH_DATABASE_URL": "x"}}},
         "service.env.EXECBENCH_DATABASE_URL: set by execbench demo itself"),
        ({"service": {"env": {"PATH": "x"}}}, "service.env.PATH: must be an EXECBENCH_*"),
        ({"load": {"rate": 5, "retry_s": 3}}, "load.retry_s: needs load.client_order_ids = true"),
    ]
    for change, message in cases:
        with pytest.raises(specs.SpecError) as err:
            specs.validate({**base, **change}, "t.toml")
        assert str(err.value).startswith("t.toml: ") and message in str(err.value), err.value
