"""Checks and the verdict: the seed's claims, the experiment's own checks, the safety ledger.

Every check is `{"name", "passed", "observed", "expected"}` (plus `source` and `kind`); the
verdict passes when every check passes. Findings are reported facts that gate nothing (the
over-commits `skip` allows, a p50 faster than the seed claimed, malformed lines).

Experiment checks (`[[checks]]` in experiment.toml) are read by `kind`:
  quantile_max / quantile_min   phase, flow, metric="executor_ms", quantile="p50", max_ms|min_ms
  reduction_min                 phase, flow, baseline=<the baseline>, min_pct (HL CI bound)
  equivalent                    a, b, flow, margin_pct (TOST)
  no_errors                     (optional phase)
  error_rate_max                max (fraction of the phase's records), optional phase
  ledger_max                    field (dotted, e.g. "overcommits.off"), max
  recovery_max_s                max_s, optional phase (default: the rollback) and flow
  throughput_min                phase, min_rps
Any other kind becomes a failing check named "unsupported check", never a crash.
"""

from __future__ import annotations

import math

FLOWS = ("provider", "local")


def _chk(name, passed, observed, expected, source, kind) -> dict:
    return {"name": name, "passed": bool(passed), "observed": observed, "expected": expected,
            "source": source, "kind": kind}


def _fmt(v, unit="ms", digits=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f} {unit}".strip()


def _q(summary, phase, flow, metric="executor_ms", q="p50"):
    try:
        return summary["phases"][phase][flow][metric][q]
    except (KeyError, TypeError):
        return None


def _cmp(summary, ref, phase, flow, metric="executor_ms"):
    for c in summary["comparisons"]:
        if c["ref"] == ref and c["phase"] == phase:
            return c["flows"].get(flow, {}).get(metric)
    return None


def evaluate(a, summary: dict) -> tuple[list[dict], list[dict]]:
    checks: list[dict] = []
    findings: list[dict] = []
    s = a.settings
    roles = summary["roles"]
    base = roles["baseline"]
    seed_phases = [p for p in roles["optimized"]
                   if a.kind == "log" or (a.window(p) and a.window(p).mode == "skip")]

    # ---- the seed's claims
    for ph in seed_phases:
        q = _q(summary, ph, "provider")
        if q is not None:
            v = q["value"]
            checks.append(_chk(
                f"provider executor_ms p50 in {ph} <= {s.claim_max_p50_ms:g} ms "
                f"(seed: 253 -> 88-168 ms)", v <= s.claim_max_p50_ms,
                f"{_fmt(v)} (95% CI {_fmt(q['ci_low'], '')}-{_fmt(q['ci_high'])})",
                f"<= {s.claim_max_p50_ms:g} ms", "seed", "claim_p50"))
            if v < s.claim_low_p50_ms:
                findings.append({"name": f"provider p50 in {ph} below the seed's 88 ms",
                                 "observed": _fmt(v), "note": "faster than claimed, not a failure"})
        c = _cmp(summary, base, ph, "provider")
        if c and c.get("usable"):
            ref = c["ref_p50"]
            hi = c["shift_ms"]["ci_high"]
            red_pt = 100 * (1 - c["p50"] / ref) if ref else None
            red_ci = -100 * hi / ref if ref and hi is not None else None
            checks.append(_chk(
                f"provider executor_ms reduction {base} -> {ph} >= {s.claim_min_reduction_pct:g}%",
                red_ci is not None and red_ci >= s.claim_min_reduction_pct,
                f"p50 {_fmt(ref)} -> {_fmt(c['p50'])} (-{red_pt:.1f}%); HL shift "
                f"{_fmt(c['shift_ms']['value'])}, 95% CI upper bound = -{red_ci:.1f}% of baseline",
                f">= {s.claim_min_reduction_pct:g}% at 95% confidence", "seed", "claim_reduction"))
        c = _cmp(summary, base, ph, "local")
        if c and c.get("usable") and c.get("equivalence"):
            eq = c["equivalence"]
            checks.append(_chk(
                f"local executor_ms unchanged {base} -> {ph} (+-{eq['margin_pct']:g}%)",
                eq["equivalent"],
                f"HL shift {_fmt(c['shift_ms']['value'])}, 90% CI [{_fmt(eq['ci90_ms'][0], '')}, "
                f"{_fmt(eq['ci90_ms'][1])}], TOST p={eq['p']:.3g}",
                f"within +-{eq['delta']:.1f} ms (TOST p < 0.05)", "seed", "local_unchanged"))
    rb = roles["rollback"]
    if rb:
        for flow in FLOWS:
            c = _cmp(summary, base, rb, flow)
            if c and c.get("usable") and c.get("equivalence"):
                eq = c["equivalence"]
                checks.append(_chk(
                    f"{flow} rollback equals baseline ({base} vs {rb}, +-{eq['margin_pct']:g}%)",
                    eq["equivalent"],
                    f"HL shift {_fmt(c['shift_ms']['value'])}, 90% CI "
                    f"[{_fmt(eq['ci90_ms'][0], '')}, {_fmt(eq['ci90_ms'][1])}], TOST p={eq['p']:.3g}",
                    f"within +-{eq['delta']:.1f} ms (TOST p < 0.05)", "seed", "rollback_equivalent"))
        if summary.get("rollback"):
            r = summary["rollback"]["recovery_s"]
            checks.append(_chk(
                f"latency recovers after the rollback flip (<= {s.recovery_max_s:g} s)",
                r is not None and r <= s.recovery_max_s,
                "never recovered" if r is None else f"{r:.1f} s",
                f"<= {s.recovery_max_s:g} s", "seed", "recovery"))

    # ---- errors
    errors = 0
    records = 0
    for ph in a.phase_names():
        info = summary["phase_info"][ph]
        for flow in FLOWS:
            st = info["status"].get(flow, {})
            errors += st.get("error", 0)
            records += sum(st.values())
    if a.kind == "run":
        checks.append(_chk("no errors (server records in analysed phases)", errors == 0,
                           f"{errors} of {records}", "0", "seed", "no_errors"))
        if a.requests is not None:
            fail = int((a.requests.cats["outcome"] == a.requests.code("outcome", "failure")).sum())
            checks.append(_chk("no failed requests (client side)", fail == 0,
                               f"{fail} of {a.requests.n}", "0", "seed", "no_errors"))
    else:
        rates = {}
        for ph in ("before", "after"):
            info = summary["phase_info"].get(ph)
            if info:
                tot = sum(sum(v.values()) for v in info["status"].values())
                err = sum(v.get("error", 0) for v in info["status"].values())
                rates[ph] = (err, tot)
        if len(rates) == 2:
            (eb, nb), (ea, na) = rates["before"], rates["after"]
            rb_, ra_ = eb / max(nb, 1), ea / max(na, 1)
            p = _one_sided_rate_p(eb, nb, ea, na)
            checks.append(_chk("error rate not higher after the deploy", p >= 0.01,
                               f"{ra_:.3%} after vs {rb_:.3%} before (one-sided p={p:.3g})",
                               "no significant increase (p >= 0.01)", "seed", "error_rate"))

    # ---- safety ledger
    led = a.ledger
    if a.kind == "run":
        if not led:
            findings.append({"name": "no safety ledger", "observed": "ledger.json absent",
                             "note": "over-commits, releases and lost orders not verified"})
        else:
            non_term = led.get("orders_nonterminal")
            if non_term is not None:
                checks.append(_chk("no orders lost (none left non-terminal)", non_term == 0,
                                   str(non_term), "0", "safety", "ledger"))
            dbl = led.get("double_releases")
            if dbl is not None:
                checks.append(_chk("margin released at most once per order", dbl == 0, str(dbl),
                                   "0", "safety", "ledger"))
            oc = led.get("overcommits") or {}
            modes_run = {w.mode for w in a.attribution.windows}
            for mode in ("off", "skip_reserve"):
                if mode in oc and (mode in modes_run or oc[mode]):
                    checks.append(_chk(f"0 over-commits in mode {mode}", oc[mode] == 0,
                                       str(oc[mode]), "0", "safety", "ledger"))
            if "skip" in oc:
                usd = (led.get("overcommit_usd") or {}).get("skip") if isinstance(
                    led.get("overcommit_usd"), dict) else None
                findings.append({"name": "over-commits under skip (the optimization's cost)",
                                 "observed": str(oc["skip"]) + (f" ({usd:.2f} USD)" if usd else ""),
                                 "note": "skip estimates the total margin without the lock; "
                                         "concurrent orders can over-commit"})
            res = led.get("reserved_vs_open_residual_usd")
            if isinstance(res, (int, float)):
                checks.append(_chk("ledger reconciles (reserved vs open residual)",
                                   abs(res) <= s.residual_max_usd, f"{res:.4f} USD",
                                   f"|x| <= {s.residual_max_usd} USD", "safety", "ledger"))

    # ---- ingest quality
    mal = summary["ingest"]["timings"]["malformed"]["count"]
    if mal:
        first = summary["ingest"]["timings"]["malformed"]["lines"][:5]
        findings.append({"name": "malformed timing lines skipped", "observed": str(mal),
                         "note": "first at lines " + ", ".join(str(x["line"]) for x in first)})
    for ph, info in summary["phase_info"].items():
        if info["flip_window"]:
            findings.append({"name": f"records in {ph} that ran in another mode (flip window)",
                             "observed": str(info["flip_window"]),
                             "note": "excluded from the phase's statistics"})

    # ---- the experiment's own checks
    if a.spec:
        for raw in a.spec.checks:
            checks.append(experiment_check(a, summary, raw))
    return checks, findings


def _one_sided_rate_p(e1, n1, e2, n2) -> float:
    """p-value of H1: rate2 > rate1 (two-proportion z-test; 1.0 when no errors at all)."""
    if e1 + e2 == 0 or n1 == 0 or n2 == 0:
        return 1.0
    from scipy.special import ndtr

    p = (e1 + e2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (e2 / n2 - e1 / n1) / se
    return float(1 - ndtr(z))


def _dig(d, dotted):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def experiment_check(a, summary: dict, raw: dict) -> dict:
    kind = raw.get("kind") or raw.get("type")
    name = raw.get("name") or str(kind)
    src = "experiment"
    roles = summary["roles"]
    try:
        if kind in ("quantile_max", "quantile_min"):
            ph, flow = raw["phase"], raw.get("flow", "provider")
            metric, qn = raw.get("metric", "executor_ms"), raw.get("quantile", "p50")
            q = _q(summary, ph, flow, metric, qn)
            bound = float(raw["max_ms"] if kind == "quantile_max" else raw["min_ms"])
            if q is None:
                return _chk(name, False, f"no data for {ph}/{flow}/{metric}", "data", src, kind)
            ok = q["value"] <= bound if kind == "quantile_max" else q["value"] >= bound
            op = "<=" if kind == "quantile_max" else ">="
            return _chk(name, ok, _fmt(q["value"]), f"{qn} {op} {bound:g} ms", src, kind)
        if kind == "reduction_min":
            ph, flow = raw["phase"], raw.get("flow", "provider")
            base = raw.get("baseline", roles["baseline"])
            c = _cmp(summary, base, ph, flow, raw.get("metric", "executor_ms"))
            if not c or not c.get("usable"):
                return _chk(name, False, f"no comparison {base} -> {ph}", "data", src, kind)
            red = -100 * c["shift_ms"]["ci_high"] / c["ref_p50"]
            return _chk(name, red >= float(raw["min_pct"]), f"-{red:.1f}% (95% CI bound)",
                        f">= {raw['min_pct']}%", src, kind)
        if kind == "equivalent":
            ref, ph, flow = raw.get("a", roles["baseline"]), raw["b"], raw.get("flow", "provider")
            import numpy as np

            from .stats import compare_samples

            x, y = a.values(ref, flow), a.values(ph, flow)
            if not len(x) or not len(y):
                return _chk(name, False, f"no data for {ref}/{ph}", "data", src, kind)
            margin = float(raw.get("margin_pct", a.settings.rollback_margin_pct))
            c = compare_samples(np.asarray(x), np.asarray(y), margin_pct=margin)
            eq = c["equivalence"]
            return _chk(name, eq["equivalent"], f"TOST p={eq['p']:.3g}",
                        f"within +-{margin:g}%", src, kind)
        if kind in ("no_errors", "error_rate_max"):
            phs = [raw["phase"]] if raw.get("phase") else a.phase_names()
            err = tot = 0
            for ph in phs:
                for st in summary["phase_info"][ph]["status"].values():
                    err += st.get("error", 0)
                    tot += sum(st.values())
            lim = 0.0 if kind == "no_errors" else float(raw["max"])
            rate = err / tot if tot else 0.0
            return _chk(name, rate <= lim, f"{err} of {tot} ({rate:.3%})", f"<= {lim:.3%}",
                        src, kind)
        if kind == "ledger_max":
            if not a.ledger:
                return _chk(name, False, "no ledger.json", f"{raw['field']} <= {raw['max']}",
                            src, kind)
            v = _dig(a.ledger, raw["field"])
            ok = isinstance(v, (int, float)) and abs(v) <= float(raw["max"])
            return _chk(name, ok, str(v), f"|{raw['field']}| <= {raw['max']}", src, kind)
        if kind == "recovery_max_s":
            ph = raw.get("phase", roles["rollback"])
            flow = raw.get("flow", "provider")
            f = next((x for x in summary["flips"] if x["phase"] == ph), None)
            r = f["flows"].get(flow, {}).get("recovery_s") if f else None
            return _chk(name, r is not None and r <= float(raw["max_s"]),
                        "never recovered" if r is None else f"{r:.1f} s",
                        f"<= {raw['max_s']} s", src, kind)
        if kind == "throughput_min":
            info = summary["phase_info"][raw["phase"]]
            v = info["throughput_rps"] or 0.0
            return _chk(name, v >= float(raw["min_rps"]), f"{v:.1f} req/s",
                        f">= {raw['min_rps']} req/s", src, kind)
    except KeyError as exc:
        return _chk(name, False, f"check is missing parameter or phase {exc}", "a valid check",
                    src, str(kind))
    except (TypeError, ValueError) as exc:
        return _chk(name, False, f"invalid check parameters: {exc}", "a valid check", src,
                    str(kind))
    return _chk(f"unsupported check: {name}", False, f"unknown kind {kind!r}",
                "a kind this analysis knows (see docs/analysis.md)", src, "unsupported")
