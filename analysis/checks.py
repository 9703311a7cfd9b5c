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

from .safety import part as safety_part
from .stats import recovery_text

FLOWS = ("provider", "local")


def _chk(name, passed, observed, expected, source, kind, covers=None) -> dict:
    """`covers`: what the check tests, as a hashable key; a built-in check whose key an
    experiment check also covers is dropped, so one fact is tested (and counted) once."""
    c = {"name": name, "passed": bool(passed), "observed": observed, "expected": expected,
         "source": source, "kind": kind}
    if covers is not None:
        c["covers"] = covers
    return c


def _dedupe(checks: list[dict]) -> list[dict]:
    covered = {c["covers"] for c in checks if c["source"] == "experiment" and "covers" in c}
    kept = [c for c in checks if c["source"] == "experiment" or c.get("covers") not in covered]
    for c in kept:
        c.pop("covers", None)
    return kept


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
    seed_phases = [p for p in roles["optimized"] if a.kind == "log" or a.mode_of(p) == "skip"]

    # ---- the seed's claims
    for ph in seed_phases:
        q = _q(summary, ph, "provider")
        if q is None:
            # the claim is about the provider flow: without its records the verdict cannot pass
            checks.append(_chk(
                f"provider executor_ms p50 in {ph} <= {s.claim_max_p50_ms:g} ms "
                f"(seed: 253 -> 88-168 ms)", False, f"no provider records in {ph}",
                "provider-flow records to test the claim on", "seed", "claim_p50"))
            continue
        v = q["value"]
        checks.append(_chk(
            f"provider executor_ms p50 in {ph} <= {s.claim_max_p50_ms:g} ms "
            f"(seed: 253 -> 88-168 ms)", v <= s.claim_max_p50_ms,
            f"{_fmt(v)} (95% CI {_fmt(q['ci_low'], '')}-{_fmt(q['ci_high'])})",
            f"<= {s.claim_max_p50_ms:g} ms", "seed", "claim_p50"))
        if q["ci_high"] is not None and q["ci_high"] < s.claim_low_p50_ms:
            findings.append({"name": f"provider p50 in {ph} below the seed's 88 ms",
                             "observed": f"{_fmt(v)} (95% CI {_fmt(q['ci_low'], '')}-"
                                         f"{_fmt(q['ci_high'])})",
                             "note": "faster than claimed (the whole interval), not a failure"})
        c = _cmp(summary, base, ph, "provider")
        if not (c and c.get("usable")):
            checks.append(_chk(
                f"provider executor_ms reduction {base} -> {ph} >= {s.claim_min_reduction_pct:g}%",
                False, f"no usable provider comparison {base} -> {ph}",
                "provider-flow records in both phases", "seed", "claim_reduction"))
        else:
            ref = c["ref_p50"]
            hi = c["shift_ms"]["ci_high"]
            red_pt = 100 * (1 - c["p50"] / ref) if ref else None
            red_ci = -100 * hi / ref if ref and hi is not None else None
            checks.append(_chk(
                f"provider executor_ms reduction {base} -> {ph} >= {s.claim_min_reduction_pct:g}%",
                red_ci is not None and red_ci >= s.claim_min_reduction_pct,
                f"p50 {_fmt(ref)} -> {_fmt(c['p50'])} (-{red_pt:.1f}%); HL shift "
                f"{_fmt(c['shift_ms']['value'])}, 95% CI upper bound = -{red_ci:.1f}% of baseline",
                f">= {s.claim_min_reduction_pct:g}% at 95% confidence (the acceptance floor; "
                f"the note claims 65%)", "seed", "claim_reduction"))
        c = _cmp(summary, base, ph, "local")
        if not (c and c.get("usable") and c.get("equivalence")):
            findings.append({"name": f"local flow unchanged {base} -> {ph}: not tested",
                             "observed": "no usable local-flow records in both phases",
                             "note": "the seed's claim that the local flow is unaffected is unchecked"})
        else:
            eq = c["equivalence"]
            checks.append(_chk(
                f"local executor_ms unchanged {base} -> {ph} (+-{eq['margin_pct']:g}%)",
                eq["equivalent"],
                f"HL shift {_fmt(c['shift_ms']['value'])}, 90% CI [{_fmt(eq['ci90_ms'][0], '')}, "
                f"{_fmt(eq['ci90_ms'][1])}], TOST p={eq['p']:.3g}",
                f"within +-{eq['delta']:.1f} ms (TOST p < 0.05)", "seed", "local_unchanged",
                ("equivalent", "local", base, ph, float(eq["margin_pct"]))))
    findings.extend(_total_latency(summary, base, seed_phases))
    rb = roles["rollback"]
    if rb:
        for flow in FLOWS:
            c = _cmp(summary, base, rb, flow)
            if not (c and c.get("usable") and c.get("equivalence")):
                findings.append({"name": f"{flow} rollback equals baseline ({base} vs {rb}): not tested",
                                 "observed": f"no usable {flow}-flow records in both phases",
                                 "note": "the rollback's equivalence for this flow is unchecked"})
            else:
                eq = c["equivalence"]
                checks.append(_chk(
                    f"{flow} rollback equals baseline ({base} vs {rb}, +-{eq['margin_pct']:g}%)",
                    eq["equivalent"],
                    f"HL shift {_fmt(c['shift_ms']['value'])}, 90% CI "
                    f"[{_fmt(eq['ci90_ms'][0], '')}, {_fmt(eq['ci90_ms'][1])}], TOST p={eq['p']:.3g}",
                    f"within +-{eq['delta']:.1f} ms (TOST p < 0.05)", "seed", "rollback_equivalent",
                    ("equivalent", flow, base, rb, float(eq["margin_pct"]))))
        if summary.get("rollback"):
            rollback = summary["rollback"]
            r = rollback["recovery_s"]
            text = recovery_text({"recovery_s": r, "at_most_s": rollback.get("recovery_at_most_s")})
            flip = next((f for f in summary["flips"] if f["phase"] == rollback["phase"]), None)
            never = "never recovered" if flip and flip["flows"] else "no records after the flip"
            checks.append(_chk(
                f"latency recovers after the rollback flip (<= {s.recovery_max_s:g} s)",
                r is not None and r <= s.recovery_max_s,
                never if r is None else f"{text} s",
                f"<= {s.recovery_max_s:g} s", "seed", "recovery"))

    if not roles.get("steady_load", True):
        # the offered load differs between phases (a capacity sweep): the seed's claims, made at
        # one load, are reported but do not gate the verdict
        for c in [c for c in checks if c["source"] == "seed"]:
            checks.remove(c)
            findings.append({"name": c["name"], "observed": c["observed"],
                             "note": ("holds" if c["passed"] else "does not hold")
                             + " (not gated: the load varies between phases)"})

    # ---- errors
    if a.kind == "run":
        builtin = experiment_check(a, summary, {"kind": "no_errors"})
        builtin["source"] = "run"
        checks.append(builtin)
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
                               "no significant increase (p >= 0.01)", "run", "error_rate"))

    # ---- safety ledger
    led = a.ledger
    if a.kind == "run":
        if not led:
            checks.append(_chk("the service's safety ledger was recorded", False,
                               "ledger.json absent",
                               "ledger.json (lost orders, over-commits, releases verified)",
                               "safety", "ledger"))
        else:
            non_term = led.get("orders_nonterminal")
            if non_term is not None:
                checks.append(_chk("no orders lost (none left non-terminal)", non_term == 0,
                                   str(non_term), "0", "safety", "ledger", ("no_orders_lost",)))
            dbl = led.get("double_releases")
            if dbl is not None:
                checks.append(_chk("margin released at most once per order", dbl == 0, str(dbl),
                                   "0", "safety", "ledger", ("no_orders_lost",)))
            oc = led.get("overcommits") or {}
            modes_run = {w.mode for w in a.attribution.windows}
            for mode in ("off", "skip_reserve"):
                if mode in oc and (mode in modes_run or oc[mode]):
                    checks.append(_chk(f"0 over-commits in mode {mode}", oc[mode] == 0,
                                       str(oc[mode]), "0", "safety", "ledger", ("overcommits", mode, 0)))
            if "skip" in oc:
                bm = (led.get("by_mode") or {}).get("skip") if isinstance(
                    led.get("by_mode"), dict) else None
                usd = bm.get("max_overcommit_usd") if isinstance(bm, dict) else None
                extra = []
                rate = ((safety_part(summary["safety"], "modes") or {}).get("skip") or {}).get("per_10k")
                if isinstance(rate, dict) and rate.get("ci_low") is not None:
                    extra.append(f"{rate['value']:.1f} per 10k provider orders, 95% CI "
                                 f"{rate['ci_low']:.1f}-{rate['ci_high']:.1f}")
                if usd:
                    extra.append(f"max {usd:.2f} USD")
                note = ("skip estimates the total margin without the lock; "
                        "concurrent orders can over-commit")
                exposed = bm.get("accepted_while_queued") if isinstance(bm, dict) else None
                if isinstance(exposed, int):
                    sent = bm.get("provider_orders") or 0
                    extra.append(f"{exposed} of {sent} skip orders accepted while another order "
                                 "of the account was queued")
                    if exposed == 0:
                        note = ("not exercised: no skip order was accepted while another order of "
                                "its account was queued (where skip misses whole orders' margin), so "
                                "0 here says nothing about skip's safety; the `safety` experiment "
                                "(same-user bursts) measures it")
                findings.append({"name": "over-commits under skip (the optimization's cost)",
                                 "observed": str(oc["skip"]) + (f" ({'; '.join(extra)})"
                                                                if extra else ""),
                                 "note": note})
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
    flips = [(ph, info["flip_window"]) for ph, info in summary["phase_info"].items()
             if info["flip_window"]]
    if flips:
        findings.append({"name": "records that ran in the previous mode (flip window)",
                         "observed": ", ".join(f"{ph} {n}" for ph, n in flips),
                         "note": "excluded from their phase's statistics"})

    small = [f"{ph}/{flow} (n={m['executor_ms']['count']})"
             for ph, flows in summary["phases"].items() for flow, m in flows.items()
             if "executor_ms" in m and m["executor_ms"]["count"] < 1000]
    if small:
        findings.append({"name": "p99 from fewer than 1,000 records",
                         "observed": ", ".join(small[:6]) + (" ..." if len(small) > 6 else ""),
                         "note": "the p99 and its interval rest on the top few values; run longer "
                                 "for a tail you can quote"})

    # ---- the experiment's own checks
    if a.spec:
        for raw in a.spec.checks:
            checks.append(experiment_check(a, summary, raw))
    return _dedupe(checks), findings


def _total_latency(summary: dict, base: str, phases: list[str]) -> list[dict]:
    """What the client saw end to end (the note's second claim: total order latency 296 ->
    200-240 ms, 35-40%). A finding, not a check: this client sits beside the executor, so its
    total is executor_ms plus loopback HTTP, not the production path the note measured."""
    def p50(phase, kind):
        try:
            if kind == "client":
                return summary["client"][phase]["provider"]["latency_ms"]["p50"]["value"]
            return summary["phases"][phase]["provider"]["executor_ms"]["p50"]["value"]
        except (KeyError, TypeError):
            return None

    out = []
    before, exec_before = p50(base, "client"), p50(base, "executor")
    for ph in phases:
        after = p50(ph, "client")
        if not (before and after):
            continue
        overhead = f"{before - exec_before:.1f} ms" if exec_before else "an unknown overhead"
        out.append({"name": f"total order latency, provider, {base} -> {ph} (client-measured p50)",
                    "observed": f"{before:.1f} -> {after:.1f} ms ({100 * (after / before - 1):+.1f}%)",
                    "note": "the note expects 296 -> 200-240 ms (-35 to -40%) in production; here "
                            f"the client is on loopback, so the total is executor_ms + {overhead}"})
    return out


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


def _quantile_name(q: float) -> str | None:
    for name, p in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        if abs(q - p) < 1e-12:
            return name
    return None


def _quantile(a, name: str, flow: str, metric: str, q: float, summary: dict | None = None
              ) -> dict | None:
    """The q-quantile of a phase/group with its bootstrap CI: the summary's own figure when it
    has one (so a check and the latency table never quote two intervals for one quantile)."""
    import numpy as np

    from .stats import quantile_with_ci, rng_for

    qname = _quantile_name(q)
    table = "client" if metric in ("latency_ms", "latency_from_intended_ms") else "phases"
    m = ((summary or {}).get(table, {}).get(name) or {}).get(flow, {}).get(metric)
    if qname and m and m.get(qname):
        e = m[qname]
        return {"value": e["value"], "ci_low": e["ci_low"], "ci_high": e["ci_high"], "n": m["count"]}
    v = a.values(name, flow, metric)
    if len(v) == 0:
        return None
    est = quantile_with_ci(np.sort(v), q, rng_for("check", name, flow, metric, str(q)),
                           b=a.settings.bootstrap_replicates)
    return {"value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high, "n": len(v)}


def _ratio_ci(a, ref: str, ph: str, flow: str, metric: str, q: float):
    """Percentile-bootstrap 95% CI of Q_q(ph) / Q_q(ref) from independent replicates."""
    import numpy as np

    from .stats import bootstrap_quantile_replicates, quantile_sorted, rng_for

    x, y = np.sort(a.values(ref, flow, metric)), np.sort(a.values(ph, flow, metric))
    if len(x) < 2 or len(y) < 2:
        return None
    b = a.settings.bootstrap_replicates
    rx = bootstrap_quantile_replicates(x, q, rng_for("ratio", ref, flow, metric), b)
    ry = bootstrap_quantile_replicates(y, q, rng_for("ratio", ph, flow, metric), b)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ry / rx
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return None  # a reference quantile of 0 (a skipped stage): no ratio
    lo, hi = np.quantile(r, [0.025, 0.975])
    return quantile_sorted(x, q), quantile_sorted(y, q), float(lo), float(hi)


def _check_phases(a, refs) -> list[str]:
    for r in refs:
        a.indices(r)  # KeyError names the unknown phase
    return list(refs)


def experiment_check(a, summary: dict, raw: dict) -> dict:
    """One `[[checks]]` entry (kinds and fields as in loadtests/spec.py and docs/loadtests.md)."""
    kind = raw.get("kind") or raw.get("type")
    name = raw.get("name") or _default_name(kind, raw)
    src = "experiment"
    roles = summary["roles"]
    covers = None

    def chk(passed, observed, expected):
        return _chk(name, passed, observed, expected, src, kind, covers)

    try:
        if kind in ("quantile_between", "quantile_below", "quantile_max", "quantile_min"):
            ph, flow = raw["phase"], raw.get("flow", "provider")
            metric = raw.get("metric", "executor_ms")
            qv = float(raw.get("q", 0.5)) if "quantile" not in raw else \
                {"p50": .5, "p90": .9, "p95": .95, "p99": .99}[raw["quantile"]]
            _check_phases(a, [ph])
            est = _quantile(a, ph, flow, metric, qv, summary)
            if est is None:
                return chk(False, f"no {flow} {metric} records in {ph}", "data")
            lo = float(raw.get("low", raw.get("min_ms", -math.inf)))
            hi = float(raw.get("high", raw.get("max", raw.get("max_ms", math.inf))))
            v = est["value"]
            qlabel = _quantile_name(qv) or f"q{qv:g}"
            observed = (f"{qlabel} {v:.1f} ms (95% CI {_fmt(est['ci_low'], '')}-"
                        f"{_fmt(est['ci_high'], '')}, n={est['n']})")
            if math.isinf(lo):
                exp = f"{qlabel} <= {hi:g} ms"
            elif math.isinf(hi):
                exp = f"{qlabel} >= {lo:g} ms"
            else:
                exp = f"{lo:g} <= {qlabel} <= {hi:g} ms"
            return chk(lo <= v <= hi, observed, exp)
        if kind in ("reduction_at_least", "reduction_min"):
            ref = raw.get("from", raw.get("baseline", roles["baseline"]))
            ph, flow = raw.get("to", raw.get("phase")), raw.get("flow", "provider")
            metric, qv = raw.get("metric", "executor_ms"), float(raw.get("q", 0.5))
            pct = float(raw.get("pct", raw.get("min_pct")))
            _check_phases(a, [ref, ph])
            r = _ratio_ci(a, ref, ph, flow, metric, qv)
            if r is None:
                return chk(False, f"not enough {flow} records in {ref}/{ph}", "data")
            qa, qb, lo, hi = r
            red, red_conf = 100 * (1 - qb / qa), 100 * (1 - hi)
            return chk(red_conf >= pct,
                       f"{_quantile_name(qv) or qv} {qa:.1f} -> {qb:.1f} ms: -{red:.1f}% "
                       f"(95% CI of the reduction {100 * (1 - hi):.1f}%-{100 * (1 - lo):.1f}%)",
                       f">= {pct:g}% (lower 95% bound)")
        if kind == "equivalent":
            pair = raw.get("phases") or [raw.get("a", roles["baseline"]), raw.get("b")]
            ref, ph = pair
            flow, metric = raw.get("flow", "provider"), raw.get("metric", "executor_ms")
            qv = float(raw.get("q", 0.5))
            margin = float(raw.get("margin_pct", a.settings.rollback_margin_pct))
            _check_phases(a, [ref, ph])
            if abs(qv - 0.5) < 1e-12 and metric == "executor_ms":
                covers = ("equivalent", flow, ref, ph, margin)
            import numpy as np

            from .stats import compare_samples

            x, y = a.values(ref, flow, metric), a.values(ph, flow, metric)
            if len(x) < 2 or len(y) < 2:
                return chk(False, f"not enough {flow} records in {ref}/{ph}", "data")
            if abs(qv - 0.5) < 1e-12:
                c = compare_samples(np.asarray(x), np.asarray(y), margin_pct=margin)
                eq = c["equivalence"]
                return chk(eq["equivalent"],
                           f"p50 {c['ref_p50']:.1f} vs {c['p50']:.1f} ms; HL shift "
                           f"{c['shift_ms']['value']:+.1f} ms, 90% CI [{eq['ci90_ms'][0]:+.1f}, "
                           f"{eq['ci90_ms'][1]:+.1f}], TOST p={eq['p']:.3g}",
                           f"within +-{margin:g}% of {ref}'s p50 (+-{eq['delta']:.1f} ms)")
            r = _ratio_ci(a, ref, ph, flow, metric, qv)
            if r is None:
                return chk(False, f"no ratio for {ref}/{ph} (a quantile of 0)", "data")
            qa, qb, lo, hi = r
            ok = (1 - margin / 100) < lo and hi < (1 + margin / 100)
            return chk(ok, f"q{qv:g} {qa:.1f} vs {qb:.1f} ms; ratio 95% CI [{lo:.3f}, {hi:.3f}]",
                       f"ratio CI inside 1 +- {margin / 100:g}")
        if kind in ("no_errors", "error_rate_max"):
            phs = raw.get("phases") or ([raw["phase"]] if raw.get("phase") else None)
            if phs:
                _check_phases(a, phs)
                members = sorted({a.attribution.windows[i].name for p in phs
                                  for i in a.indices(p)})
            else:
                members = a.phase_names()
            lim = float(raw.get("max_failure_ratio", raw.get("max", 0.0)))
            if not phs and lim == 0:
                covers = ("no_errors",)
            err = tot = 0
            for ph in members:
                info = summary["phase_info"][ph]
                for st in info["status"].values():
                    err += st.get("error", 0)
                    tot += sum(st.values())
                err += info.get("flip_window_errors", 0)
                tot += info.get("flip_window", 0)
            obs = f"server errors {err}/{tot}"
            ok = (err / tot if tot else 0.0) <= lim
            if a.requests is not None and a.requests.n:
                r = a.requests
                pm = __import__("numpy").isin(r.cats["phase"], [r.code("phase", m) for m in members])
                fails = int((pm & (r.cats["outcome"] == r.code("outcome", "failure"))).sum())
                sent = int(pm.sum())
                obs += f", client failures {fails}/{sent}"
                ok = ok and (fails / sent if sent else 0.0) <= lim
            return chk(ok, obs, f"failure ratio <= {lim:g}")
        if kind in ("overcommits", "ledger_max", "no_orders_lost"):
            if not a.ledger:
                return chk(False, "no ledger.json in the run", "the service's ledger")
            if kind == "no_orders_lost":
                covers = ("no_orders_lost",)
                nt = a.ledger.get("orders_nonterminal")
                dbl = a.ledger.get("double_releases", 0)
                return chk(nt == 0 and not dbl, f"non-terminal {nt}, double releases {dbl}",
                           "0 and 0")
            if kind == "overcommits":
                v = (a.ledger.get("overcommits") or {}).get(raw["mode"])
                lim = int(raw["max"])
                covers = ("overcommits", raw["mode"], lim)
                if v is None:
                    return chk(False, f"ledger has no over-commit count for {raw['mode']}",
                               f"<= {lim}")
                return chk(v <= lim, f"{v} in mode {raw['mode']}", f"<= {lim}")
            v = _dig(a.ledger, raw["field"])
            ok = isinstance(v, (int, float)) and abs(v) <= float(raw["max"])
            return chk(ok, str(v), f"|{raw['field']}| <= {raw['max']}")
        if kind == "recovery_max_s":
            ph = raw.get("phase", roles["rollback"])
            flow = raw.get("flow", "provider")
            f = next((x for x in summary["flips"] if x["phase"] == ph), None)
            rec = f["flows"].get(flow, {}) if f else {}
            r = rec.get("recovery_s")
            return chk(r is not None and r <= float(raw["max_s"]),
                       "never recovered" if r is None else f"{recovery_text(rec)} s",
                       f"<= {raw['max_s']} s")
        if kind == "capacity_knee":
            return _capacity_knee(a, raw, chk)
    except KeyError as exc:
        return chk(False, f"unknown phase or missing parameter {exc}", "a valid check")
    except (TypeError, ValueError) as exc:
        return chk(False, f"invalid check parameters: {exc}", "a valid check")
    return _chk(f"unsupported check: {name}", False, f"unknown kind {kind!r}",
                "a kind this analysis knows (see docs/analysis.md)", src, "unsupported")


def _default_name(kind, raw: dict) -> str:
    """A readable name for an experiment check that has none (the table shows names, not kinds)."""
    if kind in ("no_errors", "error_rate_max"):
        where = raw.get("phase") or ", ".join(raw.get("phases") or []) or "analysed phases"
        lim = raw.get("max_failure_ratio", raw.get("max", 0))
        return (f"no errors, server and client ({where})" if not lim
                else f"failure ratio <= {lim:g} ({where})")
    if kind == "overcommits":
        return f"at most {raw.get('max')} over-commits in mode {raw.get('mode')}"
    if kind == "no_orders_lost":
        return "no orders lost (none non-terminal, none released twice)"
    return str(kind)


def _capacity_knee(a, raw, chk):
    """Knee per mode: the highest offered rate among that mode's phases whose q-quantile stays
    under the SLO. Passes when no mode's knee is below the baseline mode's."""
    flow, metric = raw.get("flow", "provider"), raw.get("metric", "executor_ms")
    qv, slo = float(raw.get("q", 0.99)), float(raw["slo_ms"])
    base_mode = raw.get("baseline_mode", "off")
    knees: dict[str, float] = {}
    detail = []
    for w in a.attribution.windows:
        if not w.analysed or w.mode is None:
            continue
        est = _quantile(a, w.name, flow, metric, qv)
        rate = w.rate
        if rate is None:
            kept = a.attribution.counts[w.name]["kept"]
            rate = kept / w.duration_s if w.duration_s > 0 else 0.0
        knees.setdefault(w.mode, 0.0)
        if est is not None:
            detail.append(f"{w.name} {est['value']:.0f}")
            if est["value"] < slo:
                knees[w.mode] = max(knees[w.mode], float(rate))
    if base_mode not in knees:
        return chk(False, f"no analysed phase in mode {base_mode}", "a baseline")
    others = {m: k for m, k in knees.items() if m != base_mode}
    ok = bool(others) and all(k >= knees[base_mode] for k in others.values())
    obs = ", ".join(f"{m} knee {k:g} req/s" for m, k in knees.items())
    return chk(ok, f"{obs} ({'; '.join(detail)} ms)",
               f"every mode's knee >= {base_mode}'s (q{qv:g} < {slo:g} ms)")
