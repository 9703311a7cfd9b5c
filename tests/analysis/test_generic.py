"""A generic HTTP target's run: flows `checkout`/`search`, modes `legacy`/`fast`, server metrics
`app_ms`/`handler_ms` in the client records, no timing log and no ledger. The analysis takes its
modes, roles, flows and metrics from the spec and the data, judges every generic check kind
(one passing and one failing case each at least) and draws a report with both flows."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
from scipy.stats import binomtest

from analysis.api import analyze_log, analyze_run
from analysis.ingest import REQUESTS, read_jsonl, read_requests
from analysis.spec import SpecError, spec_from_dict
from analysis.synthetic import GenericSpec, iso, write_generic_run, write_log
from execbench import rundir as rd
from tests.analysis.util import quiet, summary_of

ERROR_RATE = 0.01

CHECKS = '''
[[checks]]
name = "q-below pass"
kind = "quantile_below"
flow = "checkout"
metric = "app_ms"
phase = "treatment"
q = 0.95
max = 120

[[checks]]
name = "q-below fail"
kind = "quantile_below"
flow = "checkout"
metric = "app_ms"
phase = "baseline"
q = 0.95
max = 120

[[checks]]
name = "q-between pass"
kind = "quantile_between"
flow = "search"
metric = "handler_ms"
phase = "baseline"
q = 0.5
low = 25
high = 35

[[checks]]
name = "q-between fail"
kind = "quantile_between"
flow = "search"
metric = "handler_ms"
phase = "rollback"
q = 0.5
low = 40
high = 50

[[checks]]
name = "client latency below (role)"
kind = "quantile_below"
flow = "checkout"
metric = "latency_ms"
phase = "treatment"
q = 0.5
max = 80

[[checks]]
name = "reduction pass"
kind = "reduction_at_least"
flow = "checkout"
metric = "app_ms"
from = "baseline"
to = "treatment"
q = 0.5
pct = 30

[[checks]]
name = "reduction fail"
kind = "reduction_at_least"
flow = "search"
metric = "handler_ms"
from = "baseline"
to = "treatment"
q = 0.5
pct = 10

[[checks]]
name = "reduction hl pass"
kind = "reduction_at_least"
flow = "checkout"
metric = "app_ms"
q = 0.5
pct = 30
method = "hl"

[[checks]]
name = "equivalent pass"
kind = "equivalent"
flow = "search"
metric = "handler_ms"
phases = ["baseline", "treatment"]
q = 0.5
margin_pct = 10

[[checks]]
name = "equivalent fail"
kind = "equivalent"
flow = "checkout"
metric = "app_ms"
phases = ["baseline", "treatment"]
q = 0.5
margin_pct = 5

[[checks]]
name = "rollback equivalent p95 pass"
kind = "equivalent"
flow = "checkout"
metric = "app_ms"
phases = ["baseline", "rollback"]
q = 0.95
margin_pct = 10

[[checks]]
name = "no errors fail"
kind = "no_errors"
phase = "baseline"

[[checks]]
name = "no errors pass"
kind = "no_errors"
flow = "search"
phase = "treatment"
max_failure_ratio = 0.5

[[checks]]
name = "no such phase"
kind = "quantile_below"
flow = "checkout"
metric = "app_ms"
phase = "nowhere"
max = 1

[[checks]]
name = "optional role absent"
kind = "quantile_below"
flow = "checkout"
phase = "mode:turbo"
if_no_phase = "skip"
max = 1

[[checks]]
name = "no such flow"
kind = "quantile_below"
flow = "refund"
metric = "app_ms"
phase = "treatment"
max = 100

[[checks]]
name = "no such flow, a finding"
kind = "quantile_below"
flow = "refund"
metric = "app_ms"
phase = "treatment"
max = 100
if_no_data = "finding"
'''


def _errors(run: Path, phases: set[str], flow: str | None = None) -> tuple[int, int]:
    """(failures, requests) in these client phases, counted from the file itself."""
    recs = [r for r in rd.read_jsonl(run / rd.REQUESTS) if r["phase"] in phases
            and (flow is None or r["flow"] == flow)]
    return sum(r["outcome"] == "failure" for r in recs), len(recs)


def _error_rate_checks(run: Path) -> str:
    """error_rate_below checks whose limits are placed from the run's own counts: below the
    Wilson lower bound (FAIL), between the point estimate and the upper bound, or between the
    lower bound and the point estimate (both INCONCLUSIVE: the interval straddles the limit),
    above the upper bound (PASS)."""
    k, n = _errors(run, {"baseline", "treatment", "rollback"})
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    lo, hi = ci.low, ci.high
    kc, nc = _errors(run, {"treatment"}, "checkout")
    hic = binomtest(kc, nc).proportion_ci(0.95, method="wilson").high
    assert 0 < k < n and 0 < kc < nc
    out = ""
    for name, lim, extra in (("error rate pass", hi * 1.05, ""),
                             ("error rate fail", 0.9 * lo, ""),
                             ("error rate undecided", (k / n + hi) / 2, ""),
                             ("error rate undecided, above", (lo + k / n) / 2, ""),
                             ("checkout error rate pass (role)", hic * 1.05,
                              'flow = "checkout"\nphase = "treatment"\n')):
        out += f'\n[[checks]]\nname = "{name}"\nkind = "error_rate_below"\n{extra}' \
               f"max_ratio = {float(lim)!r}\n"
    return out


@pytest.fixture(scope="module")
def generic_run(tmp_path_factory) -> Path:
    run = write_generic_run(tmp_path_factory.mktemp("generic") / "run",
                            GenericSpec(error_rate=ERROR_RATE, checks=CHECKS))
    spec = run / rd.EXPERIMENT
    spec.write_text(spec.read_text() + _error_rate_checks(run))
    assert not (run / rd.TIMINGS).exists() and not (run / rd.LEDGER).exists()
    assert analyze_run(run, console=quiet()) == 1  # the failing cases fail the verdict
    return run


def _checks(run: Path) -> dict:
    return {c["name"]: c for c in summary_of(run)["checks"]}


def test_modes_roles_flows_and_metrics_come_from_the_spec_and_data(generic_run):
    s = summary_of(generic_run)
    assert s["pack"] == "generic" and s["client_only"] is True
    assert s["primary_metric"] == "latency_ms"
    assert s["flows"] == ["checkout", "search"]  # the spec's order of its requests
    assert set(s["metrics"]) == {"latency_ms", "latency_from_intended_ms", "app_ms", "handler_ms"}
    roles = s["roles"]
    assert (roles["baseline"], roles["treatment"], roles["rollback"]) == \
        ("baseline", ["treatment"], "rollback")
    assert roles["baseline_mode"] == "legacy" and roles["treatment_modes"] == ["fast"]
    for phase in ("baseline", "treatment", "rollback"):
        assert set(s["phases"][phase]["checkout"]) == {"latency_ms", "latency_from_intended_ms",
                                                      "app_ms"}
        assert set(s["phases"][phase]["search"]) == {"latency_ms", "latency_from_intended_ms",
                                                    "handler_ms"}
        assert s["phase_info"][phase]["mode"] == ("fast" if phase == "treatment" else "legacy")
    assert "warmup" not in s["phases"]
    assert s["client"] == {}  # the client records are the primary table: not twice
    assert s["ingest"]["timings"] is None and s["ingest"]["requests"]["records"] > 4000
    assert rd.R_SERVER_METRICS and any("no server timing log" in n for n in s["ingest"]["notes"])
    assert s["safety"]["available"] is False
    assert not any("ledger" in c["name"] for c in s["checks"])  # no ledger expected
    assert not any(c["source"] == "seed" for c in s["checks"])  # not the reference pack


def test_statistics_are_the_records(generic_run):
    """app_ms of checkout in the treatment: count and p50 recomputed from requests.jsonl
    (records sent in the phase after its flip was applied, outcome ok)."""
    import numpy as np

    events = rd.read_jsonl(generic_run / rd.TIMELINE)
    applied = next(rd.parse_iso(e["ts"]) for e in events
                   if e["event"] == "flip_applied" and e["phase"] == "treatment")
    end = next(rd.parse_iso(e["ts"]) for e in events
               if e["event"] == "phase_end" and e["phase"] == "treatment")
    vals = [r["server_metrics"]["app_ms"] for r in rd.read_jsonl(generic_run / rd.REQUESTS)
            if r["flow"] == "checkout" and r["outcome"] == "ok"
            and applied <= rd.parse_iso(r["sent_ts"]) < end]
    m = summary_of(generic_run)["phases"]["treatment"]["checkout"]["app_ms"]
    assert m["count"] == len(vals)
    assert m["p50"]["value"] == pytest.approx(float(np.quantile(vals, 0.5)), abs=1e-9)


def test_the_flip_window_of_records_without_a_mode(generic_run):
    """No served_mode: the records sent between flip_requested and flip_applied are the flip
    window (either mode may have served them), left out of the phase's statistics."""
    s = summary_of(generic_run)
    events = rd.read_jsonl(generic_run / rd.TIMELINE)
    for phase in ("treatment", "rollback"):
        req = next(rd.parse_iso(e["ts"]) for e in events
                   if e["event"] == "flip_requested" and e["phase"] == phase)
        app = next(rd.parse_iso(e["ts"]) for e in events
                   if e["event"] == "flip_applied" and e["phase"] == phase)
        inside = sum(req <= rd.parse_iso(r["sent_ts"]) < app
                     for r in rd.read_jsonl(generic_run / rd.REQUESTS))
        assert inside > 0
        assert s["phase_info"][phase]["flip_window"] == inside


def test_served_mode_is_used_when_the_target_reports_it(tmp_path):
    run = write_generic_run(tmp_path / "r", GenericSpec(served_mode=True, rate=20.0))
    assert analyze_run(run, console=quiet(), plots=False) == 0
    s = summary_of(run)
    recs = rd.read_jsonl(run / rd.REQUESTS)
    wrong = sum(r["phase"] == "treatment" and r["served_mode"] == "legacy" for r in recs)
    assert wrong > 0 and s["phase_info"]["treatment"]["flip_window"] == wrong


@pytest.mark.parametrize(("name", "verdict"), [
    ("q-below pass", True), ("q-below fail", False),
    ("q-between pass", True), ("q-between fail", False),
    ("client latency below (role)", True),
    ("reduction pass", True), ("reduction fail", False), ("reduction hl pass", True),
    ("equivalent pass", True), ("equivalent fail", False),
    ("rollback equivalent p95 pass", True),
    ("no errors fail", False), ("no errors pass", True),
    ("error rate pass", True), ("error rate fail", False),
    ("error rate undecided", None), ("error rate undecided, above", None),
    ("checkout error rate pass (role)", True),
    ("no such phase", False), ("no such flow", None),
])
def test_every_generic_kind_is_judged(generic_run, name, verdict):
    """Every kind, three-valued: True PASS, False FAIL, None INCONCLUSIVE (no data for the
    flow, or an interval across the limit)."""
    c = _checks(generic_run)[name]
    assert c["passed"] is verdict, c
    assert c["verdict"] == {True: "pass", False: "fail", None: "inconclusive"}[verdict]
    assert c["source"] == "experiment"


def test_check_details(generic_run):
    checks = _checks(generic_run)
    assert "unknown phase" in checks["no such phase"]["observed"]
    assert checks["no such flow"]["observed"] == "no refund app_ms records in treatment"
    assert "optional role absent" not in checks  # if_no_phase = "skip"
    assert "no such flow, a finding" not in checks
    findings = {f["name"]: f for f in summary_of(generic_run)["findings"]}
    assert "no such flow, a finding: not tested" in findings
    undecided = checks["error rate undecided"]
    assert undecided["verdict"] == "inconclusive" and "Wilson" in undecided["observed"]
    assert "straddles" in undecided["why"]
    assert "why" not in checks["error rate fail"]
    assert checks["reduction hl pass"]["expected"].endswith("(the HL interval's upper bound)")


def test_comparisons_cover_every_flow_and_metric(generic_run):
    s = summary_of(generic_run)
    comp = {c["name"]: c for c in s["comparisons"]}
    flows = comp["baseline->treatment"]["flows"]
    assert set(flows["checkout"]) == {"latency_ms", "latency_from_intended_ms", "app_ms"}
    assert set(flows["search"]) == {"latency_ms", "latency_from_intended_ms", "handler_ms"}
    assert flows["checkout"]["app_ms"]["shift_pct"]["value"] < -30
    eq = flows["search"]["handler_ms"]["equivalence"]  # search is unaffected by the mode
    assert eq["verdict"] != "different" and 0.95 < eq["ratio"] < 1.05, eq
    assert set(s["flips"][0]["flows"]) == {"checkout", "search"}


def test_report_shows_both_flows_and_says_what_it_rests_on(generic_run):
    html = (generic_run / rd.REPORT).read_text()
    assert "no server timing log: client-side and response-reported metrics only" in html
    for word in ("checkout", "search", "app_ms", "handler_ms", "legacy", "fast"):
        assert f">{word}<" in html, word
    assert "Stage breakdown" not in html  # no stages to draw: no empty chart
    assert "Problems drawing this report" not in html
    assert "no ledger expected" in html
    for plot in ("latency_over_time", "cdf", "recovery"):
        assert (generic_run / rd.PLOTS / f"{plot}.svg").stat().st_size > 1000
    assert not (generic_run / rd.PLOTS / "stages.svg").exists()
    assert not (generic_run / rd.PLOTS / "safety.svg").exists()


def test_terminal_output_names_the_flows(generic_run, capsys):
    import io

    from rich.console import Console

    buf = io.StringIO()
    analyze_run(generic_run, console=Console(file=buf, width=200), plots=False)
    out = buf.getvalue()
    assert "no server timing log" in out and "checkout" in out and "search" in out
    assert "no ledger expected" in out


def test_spec_modes_and_roles():
    base = {"phases": [{"name": "a", "mode": "legacy"}]}
    spec = spec_from_dict({**base, "modes": ["legacy", "fast"]})
    assert spec.modes == ("legacy", "fast") and spec.baseline_mode == "legacy"
    assert spec.treatment_modes == ("fast",)
    spec = spec_from_dict({**base, "modes": ["legacy", "fast", "faster"],
                           "roles": {"baseline": "legacy", "treatment": ["fast", "faster"]}})
    assert spec.treatment_modes == ("fast", "faster")
    ref = spec_from_dict({"phases": [{"name": "a", "mode": "off"}]})
    assert (ref.modes, ref.baseline_mode, ref.treatment_modes, ref.reference) == \
        (("off", "skip", "skip_reserve"), "off", ("skip", "skip_reserve"), True)
    assert spec_from_dict({**base, "modes": ["legacy"], "target": {"requests": []}}).reference \
        is False
    assert spec_from_dict({**base, "modes": ["legacy"],
                           "target": {"pack": "reference"}}).reference is True
    with pytest.raises(SpecError, match="unknown mode 'legacy'"):
        spec_from_dict(base)  # the reference modes: legacy is none of them
    with pytest.raises(SpecError, match="roles.treatment"):
        spec_from_dict({**base, "modes": ["legacy"], "roles": {"treatment": "warp"}})


def test_server_metrics_columns_parallel_equals_serial(tmp_path):
    path = tmp_path / "requests.jsonl"
    lines = []
    for i in range(3000):
        rec = {"outcome": "ok", "flow": "f", "latency_ms": float(i)}
        if i >= 2000:  # a metric that appears only late in the file
            rec["server_metrics"] = {"late_ms": float(i)}
        elif i % 3 == 0:
            rec["server_metrics"] = {"app_ms": i / 2, "odd_ms": "x" if i % 2 else -1.0}
        lines.append(orjson.dumps(rec))
    path.write_bytes(b"\n".join(lines) + b"\n")
    one = read_jsonl(path, REQUESTS, workers=1)
    two = read_jsonl(path, REQUESTS, workers=3)
    assert set(one.floats) == set(two.floats) >= {"app_ms", "late_ms", "odd_ms"}
    for k in one.floats:
        assert one.floats[k].tobytes() == two.floats[k].tobytes(), k
    t = read_requests(path)
    assert int((~_isnan(t.floats["late_ms"])).sum()) == 1000
    assert int((~_isnan(t.floats["app_ms"])).sum()) == 667
    assert _isnan(t.floats["odd_ms"]).all()  # not a non-negative number: unknown, not malformed
    assert t.malformed.count == 0


def _isnan(v):
    import numpy as np

    return np.isnan(v)


def test_analyze_log_checks_option(tmp_path):
    split = 1_795_608_000.0
    log = write_log(tmp_path / "prod.jsonl", records=3000, split=split, span_s=600)
    out = tmp_path / "default"
    assert analyze_log(log, iso(split), out_dir=out, console=quiet(), plots=False) == 0
    seed = [c for c in summary_of(out)["checks"] if c["source"] == "seed"]
    assert {c["kind"] for c in seed} == {"quantile_below", "reduction_at_least", "equivalent"}
    out = tmp_path / "none"
    assert analyze_log(log, iso(split), out_dir=out, console=quiet(), checks="none", plots=False) == 0
    assert [c["source"] for c in summary_of(out)["checks"]] == ["run"]
    mine = tmp_path / "mine.toml"
    mine.write_text('source = "slo"\n[[checks]]\nname = "after p50 under 50 ms"\n'
                    'kind = "quantile_below"\nflow = "provider"\nphase = "treatment"\nmax = 50\n')
    out = tmp_path / "mine"
    assert analyze_log(log, iso(split), out_dir=out, console=quiet(), checks=mine, plots=False) == 1
    c = next(c for c in summary_of(out)["checks"] if c["source"] == "slo")
    assert c["name"] == "after p50 under 50 ms" and not c["passed"]  # p50 ~88 ms
    assert math.isfinite(float(c["observed"].split()[1]))


def test_a_failed_flip_leaves_its_modeless_records_out(tmp_path):
    """flip_failed instead of flip_applied: which mode served the phase is unknown, so its
    records without a served_mode are not counted as the new mode's."""
    run = write_generic_run(tmp_path / "r", GenericSpec(rate=20.0))
    lines = (run / rd.TIMELINE).read_bytes().splitlines()
    events = [orjson.loads(x) for x in lines]
    for e in events:
        if e["event"] == rd.EV_FLIP_APPLIED and e["phase"] == "treatment":
            e["event"] = rd.EV_FLIP_FAILED
    (run / rd.TIMELINE).write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    analyze_run(run, console=quiet(), plots=False)
    s = summary_of(run)
    info = s["phase_info"]["treatment"]
    assert info["records"] > 0 and info["kept"] == 0 and info["flip_window"] == info["records"]
    assert any("the flip into 'treatment' failed" in n for n in s["ingest"]["notes"])
    assert s["phase_info"]["rollback"]["kept"] > 0  # the next flip was confirmed
