"""The skip finding must say when a run never exercised skip's risk (0 over-commits, 0 exposure)."""

from __future__ import annotations

import orjson
import pytest

from analysis.api import analyze_run
from analysis.synthetic import RunSpec, write_run
from tests.analysis.util import quiet, summary_of


def _skip_finding(run) -> dict:
    return next(f for f in summary_of(run)["findings"] if f["name"].startswith("over-commits under skip"))


@pytest.mark.parametrize(("exposed", "exercised"), [(0, False), (37, True)])
def test_the_skip_finding_says_whether_the_risk_was_exercised(tmp_path, exposed, exercised):
    run = write_run(tmp_path / "r", RunSpec(records=4000))
    ledger = orjson.loads((run / "ledger.json").read_bytes())
    ledger["overcommits"]["skip"] = 0
    ledger["by_mode"]["skip"].update(overcommits=0, accepted_while_queued=exposed)
    (run / "ledger.json").write_bytes(orjson.dumps(ledger))
    assert analyze_run(run, console=quiet(), plots=False) == 0  # a finding gates nothing
    finding = _skip_finding(run)
    sent = ledger["by_mode"]["skip"]["provider_orders"]
    assert f"{exposed} of {sent} skip orders accepted while another order" in finding["observed"]
    assert ("not exercised" in finding["note"]) is not exercised


def test_an_error_served_during_a_flip_fails_no_errors(tmp_path):
    """Flip-window records are left out of the statistics, not out of the error count."""
    run = write_run(tmp_path / "r", RunSpec(records=6000))
    lines = (run / "timings.jsonl").read_bytes().splitlines()
    # the first record of the optimized phase still served in the previous mode: the flip window
    start = next(e for e in map(orjson.loads, (run / "timeline.jsonl").read_bytes().splitlines())
                 if e["event"] == "phase_start" and e["phase"] == "optimized")["ts"]
    for i, line in enumerate(lines):
        rec = orjson.loads(line)
        if rec["ts"] >= start and rec["mode"] == "off":
            rec["status"] = "error"
            lines[i] = orjson.dumps(rec)
            break
    else:
        raise AssertionError("the synthetic run has no flip-window record")
    (run / "timings.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert analyze_run(run, console=quiet(), plots=False) == 1
    summary = summary_of(run)
    assert summary["phase_info"]["optimized"]["flip_window_errors"] == 1
    failed = [c for c in summary["checks"] if not c["passed"]]
    assert [c["kind"] for c in failed] == ["no_errors"]
    assert failed[0]["observed"].startswith("server errors 1/")
