"""The ledger sampled during a run: `ledger` events in timeline.jsonl from a real `execbench run`
against a real service with a provider outage, the sampler surviving a service that does not
answer, and the spec / CLI setting with named errors."""

from __future__ import annotations

import io
import itertools
import json
import time

import pytest

from loadtests import spec as specs
from reference.admin import AdminClient
from reference.ledger_sampler import LedgerSampler
from tests.loadtests.util import (
    EXIT_OF_VERDICT,
    cli_env,
    execbench,
    requests,
    timeline,
    write_spec,
)
from tests.support import free_port


class Events:
    """Collects what the sampler emits (the RunWriter's `timeline` signature)."""

    def __init__(self):
        self.items: list[dict] = []

    def __call__(self, event, *, ts, phase, mode, **extra):
        self.items.append({"event": event, "ts": ts, "phase": phase, "mode": mode, **extra})


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_sampler_writes_the_ledger_fields_of_a_real_service(running_service):
    svc = running_service(profile="none", seed_users=3, orders_per_user=2)
    events = Events()
    sampler = LedgerSampler(AdminClient(svc.url, svc.admin_token, timeout=5), events,
                            interval_s=0.1, phase=lambda: "p", mode=lambda: "off")
    sampler.start()
    try:
        assert wait_for(lambda: sampler.samples >= 5, timeout=20)
    finally:
        sampler.stop(timeout=10)
        sampler.admin.close()
    assert sampler.stopped and sampler.failures == 0
    assert len(events.items) == sampler.samples
    first = events.items[0]
    assert (first["event"], first["phase"], first["mode"]) == ("ledger", "p", "off")
    assert first["orders_total"] == 12 and first["orders_nonterminal"] == 0
    assert {"releases_total", "double_releases", "reserved_vs_open_residual_usd",
            "overcommits", "request_ms"} <= set(first)
    assert "by_mode" not in first
    # On the interval's ticks, not a busy loop: at most one send per 0.1 s slot from the first
    # (the send time is ts - request_ms / 2, ts being the request's midpoint). However slow the
    # machine, so no bound on time is assumed; the exact schedule is the next test's.
    sent = [e["ts"] - e["request_ms"] / 2000 for e in events.items]
    slots = [int((t - sent[0]) / 0.1 + 0.01) for t in sent]
    assert all(a < b for a, b in itertools.pairwise(slots)), slots
    assert sampler.counts() == {"ledger_samples": sampler.samples, "ledger_sample_failures": 0,
                                "ledger_interval_s": 0.1}


class FakeTime:
    """The sampler's clock and its stop event's wait, on one fake timeline: nothing sleeps."""

    def __init__(self, stop_after: int):
        self.now = 1000.0
        self.waits: list[float] = []
        self.stop_after = stop_after

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float) -> bool:  # threading.Event.wait: True once stopped
        self.waits.append(round(timeout, 9))
        self.now += timeout
        return len(self.waits) >= self.stop_after

    def is_set(self) -> bool:
        return False


def test_sampler_keeps_its_ticks_and_skips_the_ones_a_slow_answer_covered():
    """Fixed ticks from the first sample: a 0.25 s answer skips ticks 2 and 3 (0.2, 0.3 s), and
    the next sends are on the grid again, not shifted by the slow one."""
    fake = FakeTime(stop_after=5)
    answer_s = iter([0.01, 0.01, 0.25, 0.01, 0.01, 0.01])
    sent: list[float] = []

    class Admin:
        def ledger(self, *, by_mode):
            assert by_mode is False  # the light ledger
            sent.append(round(fake.now - 1000.0, 9))
            fake.now += next(answer_s)
            return {"orders_total": 1, "orders_nonterminal": 0, "by_mode": {}}

    events = Events()
    sampler = LedgerSampler(Admin(), events, interval_s=0.1, clock=fake.clock)
    sampler._stop = fake  # the loop's waits advance the fake clock
    sampler._loop()
    assert sent == [0.0, 0.1, 0.2, 0.5, 0.6]
    assert sampler.samples == 5 and sampler.failures == 0
    assert [round(e["ts"] - 1000.0, 9) for e in events.items] == [0.005, 0.105, 0.325, 0.505, 0.605]
    assert [e["request_ms"] for e in events.items] == [10.0, 10.0, 250.0, 10.0, 10.0]
    assert all("by_mode" not in e for e in events.items)


def test_sampler_counts_failed_requests_and_goes_on():
    # nothing listens on this port: every request fails at once
    admin = AdminClient(f"http://127.0.0.1:{free_port()}", None, timeout=1)
    events = Events()
    ready = []
    sampler = LedgerSampler(admin, events, interval_s=0.1, ready=lambda: bool(ready))
    sampler.start()
    try:
        time.sleep(0.3)
        assert sampler.failures == 0  # not ready: no request yet
        ready.append(True)
        assert wait_for(lambda: sampler.failures >= 3, timeout=20)
    finally:
        sampler.stop(timeout=10)  # a deadline: stop() ends it within one (1 s) request timeout
        admin.close()
    assert sampler.stopped
    assert events.items == [] and sampler.samples == 0
    counts = sampler.counts()
    assert counts["ledger_sample_failures"] == sampler.failures >= 3
    assert counts["ledger_sample_last_error"]


def test_sampler_stops_while_waiting_for_the_run_to_start():
    sampler = LedgerSampler(AdminClient("http://127.0.0.1:9", None), Events(), interval_s=1,
                            ready=lambda: False)
    sampler.start()
    sampler.stop(timeout=5)
    sampler.admin.close()
    assert sampler.stopped and sampler.failures == sampler.samples == 0


def _doc(**load):
    return {"name": "x", "load": {"rate": 5, **load},
            "phases": [{"name": "a", "duration_s": 1, "mode": "off"}]}


def test_spec_interval_default_zero_and_named_errors():
    assert specs.validate(_doc(), "x.toml").load["ledger_interval_s"] == 1.0
    assert specs.validate(_doc(ledger_interval_s=0), "x.toml").load["ledger_interval_s"] == 0
    exp = specs.validate(_doc(ledger_interval_s=0.25), "x.toml")
    assert "ledger_interval_s = 0.25" in specs.dumps(exp)
    for value, problem in ((0.05, "must be 0 (no sampling) or >= 0.1"), (-1, "must be >= 0"),
                           ("1s", "must be a finite number")):
        with pytest.raises(specs.SpecError) as info:
            specs.validate(_doc(ledger_interval_s=value), "runs/x.toml")
        assert str(info.value).startswith("runs/x.toml: load.ledger_interval_s: ")
        assert problem in str(info.value)


def test_cli_refuses_a_too_short_interval(tmp_path):
    spec = write_spec(tmp_path / "s.toml", phases=[{"name": "a", "duration_s": 1, "mode": "off"}])
    result = execbench("run", spec, "--target", "http://127.0.0.1:9", "--ledger-interval", "0.01",
                       timeout=60)
    assert result.returncode == 2
    assert "--ledger-interval: must be 0 (no sampling) or >= 0.1, got 0.01" in result.stderr


@pytest.mark.slow
def test_a_real_run_samples_the_ledger_through_a_provider_outage(running_service, tmp_path):
    """3 s normal, 3 s outage (orders queue until the 2 s provider timeout), 5 s normal again,
    every order a provider order; the spec asks for a sample every 5 s, the CLI for 0.25 s."""
    import orjson
    from rich.console import Console

    from analysis.api import analyze_run
    from analysis.safety import part

    svc = running_service(profile="none", seed_users=20, orders_per_user=3,
                          extra_env={"EXECBENCH_PROVIDER_REJECT_RATIO": "0"})
    spec = tmp_path / "outage.toml"
    spec.write_text("""name = "ledger-outage"
profile = "none"
[load]
arrival = "fixed"
rate = 20.0
provider_share = 1.0
drain_s = 1
ledger_interval_s = 5
[load.population]
users = 20
[[phases]]
name = "before"
duration_s = 3
mode = "skip"
[[phases]]
name = "outage"
duration_s = 3
mode = "skip"
[phases.provider]
outage = true
[[phases]]
name = "after"
duration_s = 5
mode = "skip"
[phases.provider]
outage = false
""")
    run_dir = tmp_path / "run"
    result = execbench("run", spec, "--target", svc.url, "--run-dir", run_dir,
                       "--timing-log", svc.timing_log, "--ledger-interval", "0.25",
                       env=cli_env(svc.admin_token), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

    events = timeline(run_dir)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    run_start = events[0]["t"]
    run_end = next(e for e in events if e["event"] == "run_end")
    samples = [e for e in events if e["event"] == "ledger"]
    assert run_end["ledger_samples"] == len(samples) and run_end["ledger_sample_failures"] == 0
    assert run_end["ledger_interval_s"] == 0.25
    # The CLI's 0.25 s, not the spec's 5 s: more samples than 5 s ticks could give over the run,
    # at most one per 0.25 s tick (counts against the run's own span, not against a clock).
    span = run_end["t"] - run_start
    assert span / 5 + 1 < len(samples) <= span / 0.25 + 1
    assert all(run_start <= s["t"] <= run_end["t"] for s in samples)
    assert {s["phase"] for s in samples} >= {"before", "outage", "after"}
    starts = {e["phase"]: e["t"] for e in events if e["event"] == "phase_start"}
    # During the outage nothing is answered until the 2 s provider timeout, so a sample counts at
    # least the outage orders accepted before its request and sent less than 2 s before it
    # ended: whatever rate this machine managed, those cannot have been answered yet.
    accepted = [r for r in requests(run_dir)
                if r["phase"] == "outage" and r["status"] == 200 and r["flow"] == "provider"]
    assert accepted
    during = [s for s in samples if starts["outage"] <= s["t"] < starts["after"]]
    assert during
    queued_floor = []
    for s in during:
        s_sent, s_answered = s["t"] - s["request_ms"] / 2000, s["t"] + s["request_ms"] / 2000
        floor = sum(1 for r in accepted
                    if r["sent"] + r["latency_ms"] / 1000 < s_sent and r["sent"] > s_answered - 2.0)
        assert s["orders_nonterminal"] >= floor, (s, floor)
        queued_floor.append(floor)
    assert max(queued_floor) > 0, "no outage order was ever seen queued"
    # and once the provider answers again the backlog drains: how fast is the machine's
    # business (a busy box drains slower than any fixed window), that it does is the run's
    # settled ledger, read after the provider answered every order
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert ledger["orders_nonterminal"] == 0, ledger
    assert all(s["orders_total"] >= 60 for s in samples)
    assert "ledger_interval_s = 0.25" in (run_dir / "experiment.toml").read_text()  # as run

    console = Console(file=io.StringIO(), width=200)
    # the verdict is the run's business (an outage phase and a busy box can make it anything);
    # that the analysis returns the exit status of the verdict it wrote is the behaviour here
    status = analyze_run(run_dir, console=console)
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert status == EXIT_OF_VERDICT[summary["verdict"]]
    saf = summary["safety"]
    (ep,) = part(saf, "provider_faults")
    nt = ep["nonterminal"]
    # how long the drain took is this run's wall-clock figure (the report prints it); that there
    # was a peak and a recovery is the behaviour
    assert nt["peak"] >= max(queued_floor)
    assert nt["recovery_s"] is not None and nt["recovery_s"] > 0
    assert (run_dir / "plots" / "nonterminal.svg").exists()
    assert "provider outage: non-terminal peak" in console.file.getvalue()
