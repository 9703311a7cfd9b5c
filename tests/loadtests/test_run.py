"""`execbench run` against a real uvicorn executor: phases, flips, records, open-model rate."""

from __future__ import annotations

import csv
import itertools
import time

import httpx
import pytest

from loadtests.records import parse_iso, read_jsonl
from tests.loadtests.util import (
    ab_phases,
    cli_env,
    execbench,
    phase_windows,
    popen,
    requests,
    timeline,
    write_spec,
)
from tests.support import free_port

pytestmark = pytest.mark.slow

RATE = 15.0  # orders/s: a service on a shared, busy 2-core box must keep up


def _run(svc, spec, run_dir, *extra, timeout=120):
    result = execbench("run", spec, "--target", svc.url, "--run-dir", run_dir,
                       "--timing-log", svc.timing_log, *extra,
                       env=cli_env(svc.admin_token), timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def ab_run(tmp_path_factory):
    """One short provider-skip-ab run shared by the checks below (it costs ~15 s)."""
    from tests.support import start_service

    tmp = tmp_path_factory.mktemp("ab")
    svc = start_service(tmp, profile="none", seed_users=20, orders_per_user=3)
    try:
        spec = write_spec(tmp / "ab.toml", phases=ab_phases(), rate=RATE)
        run_dir = tmp / "run"
        result = _run(svc, spec, run_dir)
        yield run_dir, result, svc
    finally:
        svc.stop()


def test_run_directory_has_every_record_file(ab_run):
    run_dir, result, _ = ab_run
    for name in ("experiment.toml", "timeline.jsonl", "requests.jsonl", "timings.jsonl",
                 "ledger.json", "locust_stats.csv", "locust_stats_history.csv",
                 "locust_failures.csv"):
        assert (run_dir / name).is_file(), name
    assert "run directory:" in result.stdout
    with open(run_dir / "locust_stats.csv") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    assert int(rows["Aggregated"]["Request Count"]) > 0


def test_every_phase_present_and_flips_timestamped(ab_run):
    run_dir, _, _ = ab_run
    events = timeline(run_dir)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    windows = phase_windows(run_dir)
    assert list(windows) == ["warmup", "baseline", "optimized", "rollback"]
    for (_, end, _), (start, _, _) in zip(list(windows.values()), list(windows.values())[1:]):
        assert start == pytest.approx(end, abs=1e-6)
    for name, (start, end, _) in windows.items():
        assert end - start == pytest.approx(1.5 if name == "warmup" else 3.0, abs=1e-3)
    flips = {}
    for e in events:
        if e["event"] in ("flip_requested", "flip_applied"):
            flips.setdefault(e["phase"], {})[e["event"]] = e
    # The first phase's mode is set before t0; each later change at its boundary.
    assert set(flips) == {"warmup", "optimized", "rollback"}
    for phase in ("optimized", "rollback"):
        req, app = flips[phase]["flip_requested"], flips[phase]["flip_applied"]
        assert req["mode"] == app["mode"] == windows[phase][2]
        # Requested at its phase's boundary, then applied: an order, not a measured lag (how
        # soon a flip applies is a wall-clock figure; the report prints it per run).
        start, end, _ = windows[phase]
        assert start <= req["t"] < end, "flip requested within its phase"
        assert req["t"] <= app["t"], "applied after it was requested"
    assert not any(e["event"] == "flip_failed" for e in events)


def test_server_records_mode_matches_phase_outside_flip_windows(ab_run):
    run_dir, _, _ = ab_run
    windows = phase_windows(run_dir)
    events = timeline(run_dir)
    flip_windows = []
    requested = {}
    for e in events:
        if e["event"] == "flip_requested":
            requested[e["phase"]] = e["t"]
        elif e["event"] == "flip_applied" and e["phase"] in requested:
            # In-flight requests read the mode before the flip; the flag TTL is 1 s.
            flip_windows.append((requested[e["phase"]] - 0.5, e["t"] + 1.5))
    timings = read_jsonl(run_dir / "timings.jsonl")
    # One server record per order the service answered (the client's 200s), however many the
    # machine managed to send.
    answered = [r for r in requests(run_dir) if r["status"] == 200]
    assert answered and len(timings) == len(answered)
    checked = {}
    for rec in timings:
        # `ts` is when the order finished; its mode was read when it started, and on a busy
        # machine an order may take longer than any fixed window
        ts = parse_iso(rec["ts"]) - rec["durations_ms"]["executor_ms"] / 1000
        if any(lo <= ts <= hi for lo, hi in flip_windows):
            continue
        for name, (start, end, mode) in windows.items():
            if start <= ts < end:
                assert rec["mode"] == mode, (rec, mode)
                checked[name] = checked.get(name, 0) + 1
    assert set(checked) >= {"baseline", "optimized", "rollback"}, checked


def test_requests_carry_intended_and_actual_send_times(ab_run):
    run_dir, _, _ = ab_run
    recs = requests(run_dir)
    fields = {"intended_ts", "sent_ts", "latency_ms", "latency_from_intended_ms", "status",
              "outcome", "flow", "name", "phase"}
    for r in recs:
        assert fields <= set(r)
        assert r["sent"] >= r["intended"] - 0.001
        assert r["latency_from_intended_ms"] == pytest.approx(
            r["latency_ms"] + (r["sent"] - r["intended"]) * 1000, abs=0.01)
        assert r["outcome"] in ("ok", "expected_rejection", "failure")
    assert {r["phase"] for r in recs} == {"warmup", "baseline", "optimized", "rollback"}
    assert {r["flow"] for r in recs} == {"provider", "local"}
    assert not [r for r in recs if r["outcome"] == "failure"]
    # The client saw the mode each order was served with, too.
    served = {(r["phase"], r["served_mode"]) for r in recs}
    assert ("optimized", "skip") in served and ("baseline", "off") in served


def test_the_intended_schedule_is_the_specs_rate_and_lateness_is_counted(ab_run):
    """The open model's schedule (intended send times) is the spec's fixed rate exactly; how
    closely the sends kept to it on this machine is a wall-clock figure, printed by
    `python benchmarks/loadgen_bench.py capacity`, and here only counted consistently."""
    run_dir, _, _ = ab_run
    recs = requests(run_dir)
    for name, (start, end, _) in phase_windows(run_dir).items():
        intended = sorted(r["intended"] for r in recs if start <= r["intended"] < end)
        assert intended, name
        # fixed arrivals: one every 1/RATE s (the intended times are arithmetic, not measured)
        gaps = [b - a for a, b in itertools.pairwise(intended)]
        assert all(g == pytest.approx(1 / RATE, abs=1e-3) for g in gaps), (name, gaps[:5])
        assert len(intended) == pytest.approx((end - start) * RATE, abs=1.01), name
    late = [r for r in recs if r["late"]]
    assert all(r["sent"] > r["intended"] for r in late)
    end = next(e for e in timeline(run_dir) if e["event"] == "run_end")
    assert end["late_sends"] == len(late)


def test_late_sends_counted_when_service_is_slow(running_service, tmp_path):
    # Profile seed: ~250 ms per order; 20/s with at most 2 in flight cannot keep up.
    svc = running_service(profile="seed", seed_users=20, orders_per_user=3)
    spec = write_spec(tmp_path / "slow.toml", rate=20.0, extra_load="max_inflight = 2",
                      phases=[{"name": "slow", "duration_s": 3, "mode": "off"}])
    _run(svc, spec, tmp_path / "run")
    recs = requests(tmp_path / "run")
    late = [r for r in recs if r["late"]]
    assert len(late) > len(recs) / 2
    worst = max(r["latency_from_intended_ms"] - r["latency_ms"] for r in recs)
    assert worst > 500  # the wait for a free slot is in latency_from_intended, not hidden
    end = next(e for e in timeline(tmp_path / "run") if e["event"] == "run_end")
    assert end["late_sends"] == len(late)


def test_population_not_seeded_is_refused(running_service, tmp_path):
    svc = running_service(profile="none", seed_users=5, orders_per_user=1)
    spec = write_spec(tmp_path / "big.toml", users=50,
                      phases=[{"name": "a", "duration_s": 1, "mode": "off"}])
    result = execbench("run", spec, "--target", svc.url, "--run-dir", tmp_path / "run",
                       env=cli_env(svc.admin_token), timeout=60)
    assert result.returncode == 2
    assert "load.population" in result.stderr and "execbench seed --users 50" in result.stderr


def test_distributed_master_and_two_workers(running_service, tmp_path):
    svc = running_service(profile="none", seed_users=20, orders_per_user=3)
    spec = write_spec(tmp_path / "ab.toml", phases=ab_phases(seconds=2.5, warmup=1), rate=RATE)
    port, metrics_port = free_port(), free_port()
    run_dir = tmp_path / "run"
    master = popen("run", spec, "--target", svc.url, "--run-dir", run_dir,
                   "--timing-log", svc.timing_log, "--master", "--expect-workers", 2,
                   "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                   "--metrics-port", metrics_port, "--metrics-host", "127.0.0.1",
                   env=cli_env(svc.admin_token))
    workers = [popen("run", "--worker", "--master-host", "127.0.0.1", "--master-port", port)
               for _ in range(2)]
    scraped = ""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and master.poll() is None:
            try:
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1).text
                if 'loadtest_phase{experiment="test-ab",group="optimized",phase="optimized"} 1.0' in text:
                    scraped = text
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        out, _ = master.communicate(timeout=60)
        assert master.returncode == 0, out
        for w in workers:
            wout, _ = w.communicate(timeout=30)
            assert w.returncode == 0, wout
    finally:
        for p in [master, *workers]:
            if p.poll() is None:
                p.kill()
            p.communicate()
    recs = requests(run_dir)
    assert len({r["worker"] for r in recs}) == 2, "both workers' records merged"
    assert {r["phase"] for r in recs} == {"warmup", "baseline", "optimized", "rollback"}
    windows = phase_windows(run_dir)
    for name in ("baseline", "optimized", "rollback"):
        # the two workers share the schedule: together they intend the spec's rate
        start, end, _ = windows[name]
        intended = sum(1 for r in recs if start <= r["intended"] < end)
        assert intended == pytest.approx((end - start) * RATE, abs=2.01), name
    assert sum(1 for e in timeline(run_dir) if e["event"] == "flip_applied") == 3
    assert (run_dir / "timings.jsonl").stat().st_size > 0
    # The master exported the loadtest_ metrics while it ran.
    assert scraped, "loadtest_ metrics not seen with phase optimized"
    assert 'loadtest_requests_total{flow="provider",name="trader_mix",outcome="ok"}' in scraped
    assert 'loadtest_mode{mode="skip"} 1.0' in scraped
    assert "loadtest_request_duration_seconds_bucket" in scraped


def test_wrong_admin_token_is_refused_before_the_run(running_service, tmp_path):
    svc = running_service(profile="none", seed_users=20, orders_per_user=1)
    spec = write_spec(tmp_path / "ab.toml", phases=ab_phases(seconds=1, warmup=1))
    result = execbench("run", spec, "--target", svc.url, "--run-dir", tmp_path / "run",
                       env=cli_env("not-the-token"), timeout=60)
    assert result.returncode == 2
    assert "admin token was refused (HTTP 403)" in result.stderr
    assert not (tmp_path / "run").exists()


def test_sigterm_ends_the_load_but_closes_the_run(running_service, tmp_path):
    import signal

    svc = running_service(profile="none", seed_users=20, orders_per_user=1)
    spec = write_spec(tmp_path / "long.toml", rate=10.0,
                      phases=[{"name": "long", "duration_s": 120, "mode": "off"}])
    run_dir = tmp_path / "run"
    proc = popen("run", spec, "--target", svc.url, "--run-dir", run_dir,
                 env=cli_env(svc.admin_token))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            path = run_dir / "requests.jsonl"
            if path.exists() and path.stat().st_size > 500:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, out
    end = timeline(run_dir)[-1]
    assert end["event"] == "run_end" and end["interrupted"] is True
    assert (run_dir / "ledger.json").exists()
    assert requests(run_dir)
