"""The "Safety and reliability" section: over-commit rates per 10k with exact intervals, the
ledger's reconciliation, recovery after every flip and after provider faults, and runs whose
ledger is older or absent."""

from __future__ import annotations

import re

import orjson
import pytest
from scipy.stats import binom, binomtest

from analysis.api import analyze_log, analyze_run
from analysis.safety import part, rate_interval
from analysis.synthetic import PhaseSpec, RunSpec, iso, write_log, write_run
from tests.analysis.util import quiet, section_html, summary_of

# the ledger of a real `execbench demo --experiment safety --duration-scale 0.5` run
REAL_LEDGER = {
    "orders_total": 2411, "orders_nonterminal": 0,
    "overcommits": {"off": 1, "skip": 69, "skip_reserve": 0},
    "reserved_vs_open_residual_usd": 0.0, "releases_total": 2, "double_releases": 0,
    "by_mode": {
        "off": {"overcommits": 1, "max_overcommit_usd": 34.99, "provider_orders": 149,
                "max_abs_estimate_error_usd": 32070.68, "mean_estimate_error_usd": 5713.48,
                "abs_estimate_error_quantiles_usd": {"count": 148, "p50": 421.94,
                                                     "p90": 20354.32, "p95": 25591.38,
                                                     "p99": 30430.33}},
        "skip": {"overcommits": 69, "max_overcommit_usd": 43578.27, "provider_orders": 140,
                 "max_abs_estimate_error_usd": 90680.59, "mean_estimate_error_usd": 47448.55,
                 "abs_estimate_error_quantiles_usd": {"count": 139, "p50": 44983.1,
                                                      "p90": 74451.24, "p95": 84917.97,
                                                      "p99": 90680.59}},
        "skip_reserve": {"overcommits": 0, "max_overcommit_usd": 0.0, "provider_orders": 122,
                         "max_abs_estimate_error_usd": 62255.0,
                         "mean_estimate_error_usd": 11085.65,
                         "abs_estimate_error_quantiles_usd": {"count": 122, "p50": 9098.72,
                                                              "p90": 24600.97, "p95": 28434.73,
                                                              "p99": 31200.1}}}}


@pytest.mark.parametrize("k,n", [(7, 10_000), (0, 10_000), (1, 149), (69, 140), (0, 122),
                                 (140, 140), (3, 2_500_000)])
def test_rate_per_10k_and_its_exact_interval(k, n):
    r = rate_interval(k, n)
    assert r["value"] == pytest.approx(10_000 * k / n, rel=1e-12)
    # scipy finds the bounds by root finding (to ~1e-6 relative for large n); ours are Beta
    # quantiles, so also check the definitions: P(X >= k | low) = P(X <= k | high) = 2.5%
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert r["ci_low"] == pytest.approx(10_000 * ci.low, rel=2e-6, abs=1e-12)
    assert r["ci_high"] == pytest.approx(10_000 * ci.high, rel=2e-6)
    if k > 0:
        assert binom.sf(k - 1, n, r["ci_low"] / 10_000) == pytest.approx(0.025, abs=1e-8)
    if k < n:
        assert binom.cdf(k, n, r["ci_high"] / 10_000) == pytest.approx(0.025, abs=1e-8)
    assert r["ci_low"] <= r["value"] <= r["ci_high"]


def test_rate_known_values():
    # 0 in 10,000: the exact upper bound is 1 - 0.025^(1/n), about 3.69 per 10k ("rule of three")
    r = rate_interval(0, 10_000)
    assert (r["value"], r["ci_low"]) == (0.0, 0.0)
    assert r["ci_high"] == pytest.approx(10_000 * (1 - 0.025 ** (1 / 10_000)), rel=1e-9)
    assert r["ci_high"] == pytest.approx(3.6882, abs=1e-3)
    # 1 in 149: the lower bound solves 1 - (1 - p)^n = 0.025
    assert rate_interval(1, 149)["ci_low"] == pytest.approx(
        10_000 * (1 - 0.975 ** (1 / 149)), rel=1e-12)
    # 7 in 10,000: 7.0 per 10k, 95% CI 2.81-14.42
    r = rate_interval(7, 10_000)
    assert (round(r["ci_low"], 2), round(r["ci_high"], 2)) == (2.81, 14.42)
    # no orders: no rate; more over-commits than orders: a rate but no interval
    assert rate_interval(0, 0)["value"] is None
    assert rate_interval(5, 3)["ci_low"] is None


def test_section_from_the_real_ledger(tmp_path):
    phases = (PhaseSpec("off", 20, "off"), PhaseSpec("skip", 20, "skip"),
              PhaseSpec("skip_reserve", 20, "skip_reserve"))
    run = write_run(tmp_path / "r", RunSpec(records=3000, phases=phases, provider_share=1.0))
    (run / "ledger.json").write_bytes(orjson.dumps(REAL_LEDGER))
    console = quiet()
    assert analyze_run(run, console=console) == 1  # the one over-commit in `off` fails
    saf = summary_of(run)["safety"]
    # every ledger field is still there, unchanged
    for key, value in REAL_LEDGER.items():
        assert saf[key] == value
    modes = part(saf, "modes")
    off, skip, res = modes["off"], modes["skip"], modes["skip_reserve"]
    assert (off["overcommits"], off["provider_orders"]) == (1, 149)
    assert off["per_10k"]["value"] == pytest.approx(67.114, abs=1e-3)
    assert (round(off["per_10k"]["ci_low"], 1), round(off["per_10k"]["ci_high"], 1)) == (1.7, 368.2)
    assert skip["per_10k"]["value"] == pytest.approx(4928.571, abs=1e-3)
    assert skip["max_overcommit_usd"] == 43578.27
    assert skip["abs_estimate_error_usd"] == {"p50": 44983.1, "p90": 74451.24, "p95": 84917.97,
                                              "p99": 90680.59, "count": 139, "max": 90680.59,
                                              "mean_signed": 47448.55}
    assert (off["passed"], skip["passed"], res["passed"]) == (False, None, True)
    assert off["overcommits_within_allowance"] is None  # this ledger predates the allowance
    assert res["per_10k"]["ci_high"] == pytest.approx(297.84, abs=0.01)
    rec = part(saf, "reconciliation")
    assert rec["residual_usd"]["passed"] and rec["nonterminal"]["passed"]
    assert rec["releases_total"]["value"] == 2 and rec["double_releases"]["passed"]

    html = section_html(run)
    assert "Over-commits by mode" in html and "Ledger reconciliation" in html
    assert "67.1 <span class=muted>[1.7, 368.2]</span>" in html
    assert "4928.6 <span class=muted>[4074.1, 5786.1]</span>" in html
    assert "<span class=fail>&nbsp;1&nbsp;</span>" in html  # off's over-commit, red
    assert "<span class=warn>&nbsp;69&nbsp;</span>" in html  # skip's, amber: a finding
    assert "43,578.27" in html and "44,983.10" in html
    assert "drawn from the ledger's quantiles" in html.lower()
    assert "Clopper" in html
    assert (run / "plots" / "estimate_error.svg").exists()
    out = console.file.getvalue()
    assert "safety: over-commits by mode" in out and "67.1 [1.7, 368.2]" in out
    assert "residual 0.00 USD, non-terminal 0" in out
    finding = next(f for f in summary_of(run)["findings"] if "over-commits under skip" in f["name"])
    assert "4928.6 per 10k provider orders, 95% CI 4074.1-5786.1" in finding["observed"]


def test_synthetic_full_ledger_and_recovery_after_every_flip(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=12000, seed=5))
    console = quiet()
    assert analyze_run(run, console=console) == 0
    s = summary_of(run)
    saf = s["safety"]
    skip = part(saf, "modes")["skip"]
    n = saf["by_mode"]["skip"]["provider_orders"]
    assert n > 1000 and skip["provider_orders"] == n and skip["provider_orders_source"] == "ledger"
    assert skip["per_10k"]["value"] == pytest.approx(70_000 / n)
    recs = part(saf, "recoveries")
    assert [r["phase"] for r in recs] == ["optimized", "rollback"]
    for r, f in zip(recs, s["flips"]):
        assert set(r["flows"]) == {"provider", "local"}
        for flow, x in r["flows"].items():
            assert x["recovery_s"] == f["flows"][flow]["recovery_s"]
            assert x["recovery_s"] is not None and x["recovery_s"] < 5
        assert r["apply_lag_s"] == pytest.approx(0.4, abs=1e-3)
    assert part(saf, "provider_faults") == []
    html = section_html(run)
    # each flip's recovery is shown once, in "Flips and recovery", not again in this section
    assert "flip into" not in html and "Recovery times" not in html
    flips = (run / "report.html").read_text().split("<h2>Flips and recovery</h2>")[1]
    flips = flips[:flips.index("<h2>")]
    assert flips.count("<td>optimized</td><td>skip</td>") == 2  # provider and local
    assert flips.count("<td>rollback</td><td>off</td>") == 2
    assert html.count("class=pass") >= 3  # residual, non-terminal, double releases
    assert "warning" not in console.file.getvalue()


def test_excesses_within_the_price_move_allowance_are_shown_apart(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=3000))
    ledger = orjson.loads((run / "ledger.json").read_bytes())
    ledger["by_mode"]["off"].update(overcommits_within_allowance=4, max_overcommit_usd=12.34)
    (run / "ledger.json").write_bytes(orjson.dumps(ledger))
    assert analyze_run(run, console=quiet()) == 0  # not over-commits: nothing fails
    off = part(summary_of(run)["safety"], "modes")["off"]
    assert (off["overcommits"], off["overcommits_within_allowance"], off["passed"]) == (0, 4, True)
    assert off["max_overcommit_usd"] == 12.34
    html = section_html(run)
    assert "within price-move allowance" in html
    row = html[html.index("<td>off</td>"):]
    row = row[:row.index("</tr>")]
    assert "<td class=\"num\">4</td>" in row and "12.34" in row


def test_reconciliation_failures_are_red(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=3000, orders_nonterminal=3))
    ledger = orjson.loads((run / "ledger.json").read_bytes())
    ledger.update(double_releases=1, reserved_vs_open_residual_usd=12.5)
    (run / "ledger.json").write_bytes(orjson.dumps(ledger))
    assert analyze_run(run, console=quiet()) == 1
    rec = part(summary_of(run)["safety"], "reconciliation")
    assert [rec[k]["passed"] for k in ("residual_usd", "nonterminal", "double_releases")] == [
        False, False, False]
    html = section_html(run)
    table = html[html.index("Ledger reconciliation"):html.index("</table>",
                                                             html.index("Ledger reconciliation"))]
    assert table.count("class=fail") == 3 and "class=pass" not in table


def test_older_ledger_without_by_mode(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=4000, ledger="old"))
    console = quiet()
    assert analyze_run(run, console=console) == 0
    saf = summary_of(run)["safety"]
    assert saf["available"] and "by_mode" not in saf
    skip = part(saf, "modes")["skip"]
    assert skip["provider_orders_source"].startswith("timings.jsonl")
    assert skip["provider_orders"] > 0 and skip["per_10k"]["ci_high"] is not None
    assert skip["max_overcommit_usd"] is None and skip["abs_estimate_error_usd"] is None
    assert any("no by_mode" in n for n in part(saf, "notes"))
    html = section_html(run)
    assert "Over-commits by mode" in html and "estimate_error" not in html
    assert not (run / "plots" / "estimate_error.svg").exists()
    assert "warning" not in console.file.getvalue()


def test_no_ledger_says_so(tmp_path):
    """A run whose ledger is missing cannot claim that nothing was lost: the verdict fails."""
    run = write_run(tmp_path / "r", RunSpec(records=4000, ledger="none"))
    console = quiet()
    assert analyze_run(run, console=console) == 1
    failed = [c["name"] for c in summary_of(run)["checks"] if not c["passed"]]
    assert failed == ["the service's safety ledger was recorded"]
    saf = summary_of(run)["safety"]
    assert saf["available"] is False and saf["source"] is None
    assert [r["phase"] for r in part(saf, "recoveries")] == ["optimized", "rollback"]
    html = section_html(run)
    assert "<b>no ledger</b>" in html and "Recovery times" not in html
    assert "Over-commits by mode" not in html
    assert "safety: no ledger" in console.file.getvalue()


def test_production_log_has_no_ledger(tmp_path):
    start = 1_795_600_000.0
    log = write_log(tmp_path / "prod.jsonl", records=6000, split=start + 1800, start=start)
    out = tmp_path / "out"
    assert analyze_log(log, iso(start + 1800), out_dir=out, console=quiet()) == 0
    saf = summary_of(out)["safety"]
    assert saf["available"] is False
    assert any("production log" in n for n in part(saf, "notes"))
    assert [r["phase"] for r in part(saf, "recoveries")] == ["after"]
    assert "<b>no ledger</b>" in section_html(out)


def test_a_ledger_field_named_like_ours_is_kept(tmp_path):
    run = write_run(tmp_path / "r", RunSpec(records=3000))
    ledger = orjson.loads((run / "ledger.json").read_bytes())
    ledger["modes"] = "the service's own"
    (run / "ledger.json").write_bytes(orjson.dumps(ledger))
    assert analyze_run(run, console=quiet()) == 0
    saf = summary_of(run)["safety"]
    assert saf["modes"] == "the service's own"
    assert part(saf, "modes")["skip"]["overcommits"] == 7
    assert "Over-commits by mode" in section_html(run)


FAULT_PHASES = (
    PhaseSpec("warmup", 10, "skip", False),
    PhaseSpec("optimized", 30, "skip"),
    PhaseSpec("fault", 30, "skip", provider={"outage": True}),
    PhaseSpec("rollback-in-fault", 30, "off", provider={"outage": True}),
    PhaseSpec("recovered", 30, "off", provider={"outage": False}),
)


@pytest.mark.parametrize("timeline_events", [True, False])
def test_recovery_after_a_provider_fault(tmp_path, timeline_events):
    """rollback-under-fault's shape: the provider flow is 1.6x slower from the outage's start
    until 8 s after it ends; the recovery after the end is found at ~8 s."""
    end = 10 + 30 + 30 + 30  # the recovered phase starts here
    run = write_run(tmp_path / "r", RunSpec(records=15000, seed=9, phases=FAULT_PHASES,
                                            slow_spans=((40, end + 8, 1.6),),
                                            experiment_name="rollback-under-fault"))
    if not timeline_events:  # an older runner: the spec's [phases.provider] at phase starts
        lines = (run / "timeline.jsonl").read_bytes().splitlines()
        (run / "timeline.jsonl").write_bytes(
            b"".join(x + b"\n" for x in lines if b"provider_set" not in x))
    # the verdict is beside the point here (the slowdown spans the rollback phase on purpose)
    assert analyze_run(run, console=quiet()) in (0, 1)
    saf = summary_of(run)["safety"]
    (ep,) = part(saf, "provider_faults")
    assert ep["settings"] == "outage"
    assert ep["source"] == ("timeline" if timeline_events else "spec (phase start)")
    assert ep["duration_s"] == pytest.approx(60, abs=0.01)
    assert [d["phase"] for d in ep["p50_during"]] == ["fault", "rollback-in-fault"]
    assert ep["p50_before"]["phase"] == "optimized"
    (flip,) = ep["flips_during"]
    assert flip["phase"] == "rollback-in-fault" and flip["mode"] == "off"
    assert flip["seconds_into_fault"] == pytest.approx(30, abs=0.01)
    after = ep["recovery_after_end"]
    assert after["phase"] == "recovered" and after["mode"] == "off"
    assert after["flows"]["provider"]["recovery_s"] == pytest.approx(8, abs=1.5)
    assert after["flows"]["local"]["recovery_s"] < 1.0  # the local flow was never slowed
    assert ep["nonterminal"]["at_end"] == 0 and ep["nonterminal"]["recovery_s"] is None
    html = section_html(run)
    assert "provider outage ended (recovered, off)" in html and "Provider faults" in html
    assert "off at +30.0 s" in html


def test_a_fault_to_the_end_of_the_run(tmp_path):
    phases = (PhaseSpec("baseline", 20, "off"), PhaseSpec("optimized", 20, "skip"),
              PhaseSpec("fault", 20, "skip", provider={"reject_ratio": 0.5, "delay_ms": 900}))
    run = write_run(tmp_path / "r", RunSpec(records=4000, phases=phases))
    assert analyze_run(run, console=quiet()) == 0
    (ep,) = part(summary_of(run)["safety"], "provider_faults")
    assert ep["settings"] == "rejects 0.5, delay 900 ms"
    assert ep["ended_at"] is None and ep["recovery_after_end"] is None
    assert "end of the run" in ep["note"]
    assert re.search(r"rejects 0.5, delay 900 ms</td><td>[^<]+</td><td>run end", section_html(run))


def test_the_rate_interval_resamples_accounts_when_the_ledger_has_them():
    """Bursts of one account over-commit together: 5 accounts with 4 orders, 4 over-commits
    each, among 70 quiet ones. Over orders the interval is too narrow by the design effect."""
    from analysis.safety import cluster_rate_interval

    triples = [[2, 0, 50], [4, 4, 5], [4, 0, 20]]
    c = cluster_rate_interval(triples)
    o = rate_interval(20, 200)
    assert (c["k"], c["n"], c["accounts"]) == (20, 200, 75)
    assert c["value"] == o["value"] == 1000.0
    assert c["ci_low"] < o["ci_low"] and c["ci_high"] > o["ci_high"]
    assert c["design_effect"] > 2
    assert cluster_rate_interval(triples) == c  # a fixed seed: the same report every time
    # none at all: the upper bound comes from the accounts (0 of 75), not the 200 orders
    zero = cluster_rate_interval([[2, 0, 50], [4, 0, 25]])
    assert zero["value"] == 0 and zero["ci_low"] == 0
    assert zero["ci_high"] > rate_interval(0, 200)["ci_high"]
    assert cluster_rate_interval([])["value"] is None


def test_mode_figures_use_the_account_breakdown(tmp_path):
    ledger = {**REAL_LEDGER, "by_mode": {**REAL_LEDGER["by_mode"]}}
    skip = dict(ledger["by_mode"]["skip"])
    n, k = skip["provider_orders"], skip["overcommits"]
    skip["accounts"] = [[n // 10, k // 10, 10]] if n % 10 == 0 and k % 10 == 0 else \
        [[1, 1, k], [1, 0, n - k]]
    ledger["by_mode"]["skip"] = skip
    run = write_run(tmp_path / "r", RunSpec(records=4000))
    (run / "ledger.json").write_bytes(orjson.dumps(ledger))
    analyze_run(run, console=quiet(), plots=False)
    modes = part(summary_of(run)["safety"], "modes")
    assert modes["skip"]["per_10k"]["method"] == "account-cluster bootstrap"
    assert modes["off"]["per_10k"]["method"] == "clopper-pearson"  # no breakdown: over orders
