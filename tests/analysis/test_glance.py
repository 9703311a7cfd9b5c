"""The report at a glance: no empty chart, no section twice, captions that match what is drawn,
lines that stay drawn on sparse data, and recovery printed only where the method resolves it."""

from __future__ import annotations

import numpy as np
import orjson

from analysis.api import analyze_log, analyze_run
from analysis.plots import MIN_BIN_RECORDS, _binned, bin_count
from analysis.synthetic import RunSpec, iso, write_log, write_run
from tests.analysis.util import quiet, section_html, summary_of

OFF_FILL = "#d9e4f5"  # the over-commit bar of mode off (plots.MODE_COLORS)
SKIP_FILL = "#fde2c8"


def test_no_overcommits_draw_no_empty_bar_chart(tmp_path):
    """0 over-commits in every mode: the panel says "none observed" instead of three empty
    bars on a 0-1.2 axis; with some, the bars are drawn."""
    none = write_run(tmp_path / "none", RunSpec(records=3000, ledger="old",
                                                overcommits={"off": 0, "skip": 0,
                                                             "skip_reserve": 0}))
    some = write_run(tmp_path / "some", RunSpec(records=3000, ledger="old"))  # skip: 7
    for run in (none, some):
        analyze_run(run, console=quiet())
    svg_none = (none / "plots" / "safety.svg").read_text()
    svg_some = (some / "plots" / "safety.svg").read_text()
    assert SKIP_FILL in svg_some and OFF_FILL in svg_some
    assert SKIP_FILL not in svg_none and OFF_FILL not in svg_none


def test_the_skip_caption_matches_the_cell(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=3000,
                                            overcommits={"off": 0, "skip": 0, "skip_reserve": 0}))
    analyze_run(run, console=quiet())
    html = section_html(run)
    row = html[html.index("<td>skip</td>"):]
    row = row[:row.index("</tr>")]
    assert "class=warn" not in row  # 0 is not amber ...
    assert "amber when there are any" in html  # ... and the caption says so


def test_each_flip_recovery_is_shown_once(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=4000))
    analyze_run(run, console=quiet())
    html = (run / "report.html").read_text()
    assert html.count("<h2>Flips and recovery</h2>") == 1
    assert "Recovery times" not in html


def test_adaptive_bins_keep_sparse_lines_drawn():
    rng = np.random.default_rng(4)
    ts = np.sort(rng.uniform(0, 3600, 100))  # a quiet hour: 100 records
    v = rng.lognormal(4, 0.2, 100)
    nb = bin_count(len(ts), 3600)
    assert nb == 5
    p50, _ = _binned(ts, v, np.linspace(0, 3600 + 1e-6, nb + 1))
    assert np.isfinite(p50).all()
    # the former fixed bins (one a second, at most 600): almost every bin below the minimum
    p50_fixed, _ = _binned(ts, v, np.linspace(0, 3600 + 1e-6, 601))
    assert np.isfinite(p50_fixed).mean() < 0.05 and MIN_BIN_RECORDS == 3
    assert bin_count(20_000, 240) == 240 and bin_count(10**6, 3600) == 600
    assert bin_count(10, 60) == 1


def test_recovery_on_a_sparse_log_is_not_resolvable(tmp_path):
    """100 records in an hour: windows of ~50 records span most of the phase, so the method
    cannot date a recovery; it says so instead of printing '<= 560 s'."""
    split = 1_795_608_000.0
    log = write_log(tmp_path / "quiet.jsonl", records=100, split=split, span_s=3600)
    out = tmp_path / "o"
    console = quiet()
    analyze_log(log, iso(split), out_dir=out, console=console)
    flows = summary_of(out)["flips"][0]["flows"]
    assert flows and all(r["resolvable"] is False and r["recovery_s"] is None
                         for r in flows.values())
    html = (out / "report.html").read_text()
    assert "not resolvable (too few records)" in html and "&lt;= 5" not in html
    assert "not resolvable" in console.file.getvalue()
    # a dense log keeps its figure
    dense = write_log(tmp_path / "dense.jsonl", records=8000, split=split, span_s=600)
    analyze_log(dense, iso(split), out_dir=tmp_path / "d", console=quiet())
    rec = summary_of(tmp_path / "d")["flips"][0]["flows"]["provider"]
    assert rec.get("resolvable", True) and rec["recovery_s"] is not None


def test_a_reference_run_judges_the_seed_claims_from_the_pack_file(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=8000, seed=9))
    assert analyze_run(run, console=quiet(), plots=False) == 0
    seed = [c for c in summary_of(run)["checks"] if c["source"] == "seed"]
    names = [c["name"] for c in seed]
    assert names == [
        "provider executor_ms p50 in optimized <= 168 ms (seed: 253 -> 88-168 ms)",
        "provider executor_ms reduction baseline -> optimized >= 35%",
        "local executor_ms unchanged baseline -> optimized (+-10%)",
        "provider rollback equals baseline (baseline vs rollback, +-5%)",
        "local rollback equals baseline (baseline vs rollback, +-5%)",
        "latency recovers after the rollback flip (<= 60 s)"]
    assert all(c["passed"] for c in seed)
    # --checks none: the experiment's and the run's checks only
    assert analyze_run(run, console=quiet(), checks="none", plots=False) == 0
    assert not any(c["source"] == "seed" for c in summary_of(run)["checks"])
    # an [analysis] override reaches the pack's checks that name a setting
    spec = (run / "experiment.toml").read_text()
    (run / "experiment.toml").write_text(spec.replace("[load]", "[analysis]\n"
                                                      "rollback_margin_pct = 0.01\n\n[load]"))
    assert analyze_run(run, console=quiet(), plots=False) == 1
    failed = [c["name"] for c in summary_of(run)["checks"] if not c["passed"]]
    assert "provider rollback equals baseline (baseline vs rollback, +-0.01%)" in failed
    assert orjson.loads((run / "summary.json").read_bytes())["pack"] == "reference"
