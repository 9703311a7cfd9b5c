"""Non-terminal orders over time: the runner's `ledger` samples in timeline.jsonl, the peak and
the recovery after each provider fault, the plot, the report and the terminal line; runs
without samples analyse exactly as before. Synthetic timelines, fixed seeds."""

from __future__ import annotations

import html

import numpy as np
import orjson
import pytest

from analysis.api import analyze_run
from analysis.ingest import read_ledger_samples
from analysis.safety import NONTERMINAL_NOTE, nonterminal_after_fault, part
from analysis.synthetic import PhaseSpec, RunSpec, write_run
from tests.analysis.util import quiet, section_html, summary_of

FAULT_PHASES = (
    PhaseSpec("warmup", 10, "skip", False),
    PhaseSpec("optimized", 30, "skip"),
    PhaseSpec("fault", 30, "skip", provider={"outage": True}),
    PhaseSpec("rollback-in-fault", 30, "off", provider={"outage": True}),
    PhaseSpec("recovered", 30, "off", provider={"outage": False}),
)
FAULT_START, FAULT_END = 40.0, 100.0  # seconds from the run's start


def fault_run(tmp_path, name="r", **kw):
    spec = RunSpec(records=8000, seed=9, phases=FAULT_PHASES, experiment_name="rollback-under-fault",
                   **{"ledger_interval_s": 0.5, "nonterminal_drain_s": 8.0, **kw})
    return write_run(tmp_path / name, spec), spec


def test_recovery_peak_plot_report_and_terminal_line(tmp_path):
    """A backlog growing 10/s to 40 during a 60 s outage and draining linearly over 8 s after
    it, over 0..3 in flight: peak ~43 about 4 s in, back at the pre-fault level ~8 s after."""
    run, spec = fault_run(tmp_path)
    console = quiet()
    assert analyze_run(run, console=console) in (0, 1)
    saf = summary_of(run)["safety"]
    (ep,) = part(saf, "provider_faults")
    nt = ep["nonterminal"]
    assert nt["at_end"] == 0
    assert nt["level_before"] == 3 and "20 samples in the 10 s before" in nt["level_source"]
    assert nt["recovery_s"] == pytest.approx(8.0, abs=1.0)
    assert nt["recovered_at"] is not None and nt["excursions_after"] == 0
    assert 40 <= nt["peak"] <= 43
    assert 3.5 <= nt["peak_s_into_fault"] <= FAULT_END - FAULT_START
    assert nt["interval_s"] == pytest.approx(0.5, abs=0.02)
    assert nt["samples"] == pytest.approx((spec.start + 130 - spec.start - FAULT_START) / 0.5, abs=2)
    assert nt["note"] is None and "pre-fault level" in nt["method"]
    samples = part(saf, "nonterminal_samples")
    assert samples["count"] == 260 and samples["failed_requests"] == 0
    assert samples["configured_interval_s"] == 0.5 and samples["max"] == nt["peak"]

    section = section_html(run)
    assert "non-terminal recovery s" in section and "peak (into the fault)" in section
    assert "Orders non-terminal over time" in section and "260 samples" in section
    assert "the non-terminal count once" not in section
    svg = (run / "plots" / "nonterminal.svg").read_text()
    assert svg.startswith("<?xml") and len(svg) > 20_000
    out = console.file.getvalue()
    assert f"provider outage: non-terminal peak {nt['peak']}" in out
    assert (f"back to the pre-fault level (3, recovered at <= 5) {nt['recovery_s']:.1f} s after it "
            "ended") in out


def test_a_run_without_samples_analyses_exactly_as_before(tmp_path):
    """The same run with and without `ledger` events: without them the summary is what an older
    runner's run gave (the note, no samples section, no plot), and every other figure is equal."""
    run, _ = fault_run(tmp_path, "with")
    old = write_run(tmp_path / "without", RunSpec(records=8000, seed=9, phases=FAULT_PHASES,
                                                 experiment_name="rollback-under-fault"))
    assert b'"ledger"' not in (old / "timeline.jsonl").read_bytes()
    console = quiet()
    analyze_run(run, console=quiet())
    analyze_run(old, console=console)
    new_s, old_s = summary_of(run), summary_of(old)
    (ep,) = part(old_s["safety"], "provider_faults")
    assert ep["nonterminal"] == {"at_end": 0, "recovery_s": None, "note": NONTERMINAL_NOTE}
    assert part(old_s["safety"], "nonterminal_samples") is None
    assert not (old / "plots" / "nonterminal.svg").exists()
    assert "Orders non-terminal over time" not in section_html(old)
    assert html.escape(NONTERMINAL_NOTE) in section_html(old)
    assert "non-terminal peak" not in console.file.getvalue()
    # the rest of the safety section, the checks and the verdict are the same (not the whole
    # summary: the bootstrap intervals are not reproduced bit for bit between two analyses)
    del new_s["safety"]["nonterminal_samples"]
    for s in (new_s, old_s):
        s["safety"]["provider_faults"][0].pop("nonterminal")
    assert new_s["safety"] == old_s["safety"]
    assert [(c["name"], c["passed"]) for c in new_s["checks"]] == \
        [(c["name"], c["passed"]) for c in old_s["checks"]]
    assert new_s["verdict"] == old_s["verdict"]


def test_a_fault_to_the_end_of_the_run_has_a_peak_and_no_recovery(tmp_path):
    phases = (PhaseSpec("baseline", 20, "off"), PhaseSpec("optimized", 20, "skip"),
              PhaseSpec("fault", 20, "skip", provider={"outage": True}))
    run = write_run(tmp_path / "r", RunSpec(records=4000, phases=phases, ledger_interval_s=1.0))
    assert analyze_run(run, console=quiet()) == 0
    (ep,) = part(summary_of(run)["safety"], "provider_faults")
    nt = ep["nonterminal"]
    assert nt["recovery_s"] is None and "end of the run" in nt["note"]
    assert 40 <= nt["peak"] <= 43
    assert "end of the run" in section_html(run)


def test_a_backlog_still_draining_at_the_last_sample(tmp_path):
    # the outage ends 30 s before the run does, the backlog takes 60 s to drain
    run, _ = fault_run(tmp_path, nonterminal_drain_s=60.0)
    console = quiet()
    analyze_run(run, console=console, plots=False)
    nt = part(summary_of(run)["safety"], "provider_faults")[0]["nonterminal"]
    assert nt["recovery_s"] is None
    assert nt["note"].startswith("still above the threshold (5: the pre-fault level 3 + tolerance) "
                                 "at the last sample, 29.")
    assert "recovery not measured" in console.file.getvalue()


def _series(points: list[tuple[float, int]]) -> dict:
    t, n = zip(*points)
    return {"ts": np.asarray(t, dtype=float), "orders_nonterminal": np.asarray(n)}


def test_recovery_is_the_first_sample_after_which_the_count_stays_at_the_level():
    # level 2 before the fault (t < 10), threshold 4 (2 + the minimum tolerance of 2); the fault
    # ends at 20; a dip to 2 at 22 is followed by 6 and 7 (within the 5 s hold): not recovered;
    # 3 and 4 later are the steady load's noise, within the tolerance; from 26 on it stays <= 4
    pts = [(t, 2 if t % 2 == 0 else 1) for t in range(10)]
    pts += [(t, 10 + t) for t in range(10, 20)]
    pts += [(20, 12), (21, 6), (22, 2), (23, 6), (24, 7), (25, 5), (26, 2), (27, 4)]
    pts += [(t, 3) for t in range(28, 40)] + [(40, 5)]  # 5 at 40: after the hold, counted
    fig = nonterminal_after_fault(_series(pts), 10.0, 20.0, np.inf, baseline_s=5.0, hold_s=5.0)
    assert fig["level_before"] == 2 and fig["level_source"].startswith("max of 5 samples")
    assert fig["threshold"] == 4
    assert fig["recovery_s"] == 6.0 and fig["excursions_after"] == 1
    assert (fig["peak"], fig["peak_s_into_fault"]) == (29, 9.0)
    assert fig["samples"] == 31 and fig["interval_s"] == 1.0


def test_the_level_without_recent_samples_and_without_any():
    pts = [(0.0, 4), (50.0, 9), (60.0, 30), (70.0, 3), (80.0, 4), (90.0, 4)]
    fig = nonterminal_after_fault(_series(pts), 55.0, 65.0, np.inf, baseline_s=3.0, hold_s=10.0)
    assert fig["level_before"] == 9
    assert fig["level_source"] == "the last sample before the fault (5.0 s before)"
    assert fig["recovery_s"] == 5.0 and fig["peak"] == 30
    fig = nonterminal_after_fault(_series(pts), -1.0, 65.0, np.inf, baseline_s=10.0, hold_s=10.0)
    assert fig["level_before"] == 0 and "0 assumed" in fig["level_source"]
    assert fig["recovery_s"] is None
    assert "still above the threshold (2: the pre-fault level 0 + tolerance)" in fig["note"]
    # the next fault's start bounds the observation
    fig = nonterminal_after_fault(_series(pts), 55.0, 65.0, 68.0, baseline_s=10.0, hold_s=10.0)
    assert fig["recovery_s"] is None and fig["note"] == "no ledger sample after the fault ended"


def test_reader_skips_bad_samples_and_reads_run_end(tmp_path):
    path = tmp_path / "timeline.jsonl"
    lines = [
        {"ts": "2026-11-25T12:00:02Z", "event": "ledger", "orders_nonterminal": 5},
        {"ts": "2026-11-25T12:00:01Z", "event": "ledger", "orders_nonterminal": 2},
        {"ts": "2026-11-25T12:00:03Z", "event": "ledger", "orders_nonterminal": -1},
        {"ts": "2026-11-25T12:00:03Z", "event": "ledger", "orders_nonterminal": True},
        {"ts": "not a time", "event": "ledger", "orders_nonterminal": 1},
        {"ts": "2026-11-25T12:00:04Z", "event": "ledger"},
        {"ts": "2026-11-25T12:00:05Z", "event": "phase_start", "phase": "ledger"},
        {"ts": "2026-11-25T12:00:06Z", "event": "run_end", "ledger_samples": 7,
         "ledger_sample_failures": 2, "ledger_interval_s": 1.0},
    ]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + b'{"event": "ledger", \n')
    got = read_ledger_samples(path)
    assert got["orders_nonterminal"].tolist() == [2, 5]
    assert np.diff(got["ts"]).tolist() == [1.0]
    assert (got["skipped"], got["samples"], got["failures"], got["interval_s"]) == (5, 7, 2, 1.0)
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines[6:]))
    assert read_ledger_samples(path) is None
