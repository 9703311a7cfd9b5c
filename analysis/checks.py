"""Checks and the verdict: a pack's checks file, the experiment's own checks, the run's
errors and (for the reference pack) the safety ledger.

Every check is `{"name", "verdict", "passed", "observed", "expected"}` (plus `source`, `kind`
and, unless it passed, `why`). A check's verdict is three-valued: "pass", "fail", or
"inconclusive" when the data cannot decide it (fewer than `min_samples` records in a group it
compares, no interval at that sample size, or an interval that straddles the threshold);
`passed` is true, false or null to match. The run's verdict is FAIL when any check fails,
else INCONCLUSIVE when any is inconclusive (or there is no check at all), else PASS; exit
codes 0 / 1 / 3 (2: unusable input). Findings are reported facts that gate nothing (the
over-commits `skip` allows, a p50 faster than the seed claimed, malformed lines).

Checks (`[[checks]]` in experiment.toml or a checks file) are read by `kind` (docs/analysis.md
has the fields): quantile_below, quantile_between, reduction_at_least, equivalent, no_errors,
error_rate_below, overcommits, no_orders_lost, ledger_max, recovery_max_s, capacity_knee, and
the older spellings quantile_max/quantile_min, reduction_min, error_rate_max. A phase field may
name a phase, a group or a role (`baseline`, `treatment`, `rollback`, `mode:<m>`): see
`expand_check`. Any other kind becomes a failing check named "unsupported check", never a
crash. The seed's claims are the reference pack's checks file (reference/checks/
seed-claims.toml), not code.
"""

from __future__ import annotations

import importlib.util
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .recovery import recovery_text
from .safety import part as safety_part

SEED_CLAIMS = "seed-claims.toml"  # the reference pack's checks: reference/checks/


@dataclass
class ChecksFile:
    """A TOML file of generic checks (`[[checks]]`, as in an experiment) applied besides the
    experiment's own; `source` (top-level key, default the file's stem) labels its checks."""

    path: Path
    source: str
    checks: list[dict]


def default_checks_path() -> Path | None:
    """The reference pack's seed claims (reference/checks/seed-claims.toml), found without
    importing the pack's code."""
    spec = importlib.util.find_spec("reference")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "checks" / SEED_CLAIMS
        if path.is_file():
            return path
    return None


def load_checks_file(path: Path) -> ChecksFile:
    """ValueError (with the file's name) when it is not TOML or its checks are not tables."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    checks = raw.get("checks", [])
    if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
        raise ValueError(f"{path}: `checks` must be an array of tables ([[checks]])")
    source = raw.get("source") if isinstance(raw.get("source"), str) else path.stem
    return ChecksFile(path, source, checks)


PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


class Undecided(str):
    """A check's outcome when the data cannot decide it: the reason, for people."""


def _chk(name, passed, observed, expected, source, kind, covers=None) -> dict:
    """`passed`: True, False, or an `Undecided(reason)` (INCONCLUSIVE). `covers`: what the
    check tests, as a hashable key; a built-in check whose key an experiment check also covers
    is dropped, so one fact is tested (and counted) once."""
    if isinstance(passed, Undecided):
        verdict, why = INCONCLUSIVE, str(passed)
    else:
        verdict, why = (PASS, None) if passed else (FAIL, None)
    c = {"name": name, "verdict": verdict,
         "passed": None if verdict == INCONCLUSIVE else verdict == PASS,
         "observed": observed, "expected": expected, "source": source, "kind": kind}
    if why:
        c["why"] = why
    if covers is not None:
        c["covers"] = covers
    return c


def run_verdict(checks: list[dict]) -> str:
    """FAIL beats INCONCLUSIVE beats PASS; no check at all decides nothing."""
    verdicts = {c["verdict"] for c in checks}
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts or not checks:
        return INCONCLUSIVE
    return PASS


def by_interval(lo, hi, low: float, high: float, *, n: int | None = None,
                min_n: int = 0, what: str = "the interval"):
    """A threshold judged on an interval [lo, hi] of the estimate: inside [low, high] PASS,
    wholly outside FAIL, straddling a bound INCONCLUSIVE; n below min_n INCONCLUSIVE with the
    reason. A missing bound (a sample too small for it, e.g. the upper bound of a p99 from 100
    values) is unbounded: it can still FAIL on the bound it has, never PASS on the one it lacks."""
    if n is not None and n < min_n:
        return Undecided(f"n={n} is below the minimum of {min_n} per group")
    if lo is None and hi is None:
        return Undecided(f"no 95% interval at n={n}" if n is not None else "no interval")
    lo_, hi_ = -math.inf if lo is None else lo, math.inf if hi is None else hi
    if low <= lo_ and hi_ <= high:
        return True
    if hi_ < low or lo_ > high:
        return False
    if (lo is None and low > -math.inf) or (hi is None and high < math.inf):
        side = "lower" if lo is None and low > -math.inf else "upper"
        return Undecided(f"{what} has no {side} bound at n={n}: too few records for that "
                         "quantile at 95%")
    return Undecided(f"{what} straddles the threshold: more data would decide it")


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


def evaluate(a, summary: dict) -> tuple[list[dict], list[dict]]:
    checks: list[dict] = []
    findings: list[dict] = []
    roles = summary["roles"]
    base = roles["baseline"]

    # ---- the pack's checks (the reference pack's seed claims: reference/checks/seed-claims.toml)
    if a.checks_file is not None:
        for raw in a.checks_file.checks:
            got, found = expand_check(a, summary, raw, a.checks_file.source)
            checks += got
            findings += found
    if a.reference:
        seed_phases = [p for p in roles["treatment"] if a.kind == "log" or a.mode_of(p) == "skip"]
        findings.extend(_total_latency(summary, base, seed_phases))

    if not roles.get("steady_load", True):
        # the offered load differs between phases (a capacity sweep): the pack's claims, made at
        # one load, are reported but do not gate the verdict
        for c in [c for c in checks if c["source"] != "experiment"]:
            checks.remove(c)
            findings.append({"name": c["name"], "observed": c["observed"],
                             "note": {PASS: "holds", FAIL: "does not hold",
                                      INCONCLUSIVE: "undecided"}[c["verdict"]]
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
            checks.append(_error_rise_check(rates["before"], rates["after"],
                                            a.settings.error_rise_margin_pp))

    # ---- safety ledger (the reference pack's; a generic target has none to expect)
    led = a.ledger
    if a.kind == "run" and (a.reference or led):
        if not led:
            checks.append(_chk("the service's safety ledger was recorded", False,
                               "ledger.json absent",
                               "ledger.json (lost orders, over-commits, releases verified)",
                               "safety", "ledger"))
        else:
            _ledger_checks(a, summary, led, checks, findings)

    # ---- ingest quality
    ing = summary["ingest"]["timings"] or summary["ingest"]["requests"]
    mal = ing["malformed"]["count"] if ing else 0
    if mal:
        first = ing["malformed"]["lines"][:5]
        which = "timing" if summary["ingest"]["timings"] else "request"
        findings.append({"name": f"malformed {which} lines skipped", "observed": str(mal),
                         "note": "first at lines " + ", ".join(str(x["line"]) for x in first)})
    flips = [(ph, info["flip_window"]) for ph, info in summary["phase_info"].items()
             if info["flip_window"]]
    if flips and a.factorial is not None:
        # a factorial flips into nearly every one of its short cells: one line, not 128 names
        findings.append({"name": "records that ran in the previous cell's mode (flip window)",
                         "observed": f"{sum(n for _, n in flips)} records in {len(flips)} of "
                                     f"{len(summary['phase_info'])} phases",
                         "note": "excluded from the cells' phase statistics; the latency plan "
                                 "places every gateway record in the cell its own flags name"})
    elif flips:
        findings.append({"name": "records that ran in the previous mode (flip window)",
                         "observed": ", ".join(f"{ph} {n}" for ph, n in flips),
                         "note": "excluded from their phase's statistics"})

    findings += _latency_plan_findings(summary.get("latency_plan"))

    censored = _censored_counts(summary, cells_only=a.factorial is not None)
    if censored:
        findings.append({
            "name": "failed or timed-out requests in the client latency (censored)",
            "observed": ", ".join(f"{k} {n}" for k, n in censored.items()),
            "note": "each entered the client latency quantiles at its elapsed time, a lower "
                    "bound of what it would have taken: where they reach the tail, the "
                    "quantiles are lower bounds too"})

    primary = a.primary
    small = [f"{ph}/{flow} (n={m[primary]['count']})"
             for ph, flows in summary["phases"].items() for flow, m in flows.items()
             if primary in m and m[primary]["count"] < 1000]
    if small:
        findings.append({"name": "p99 from fewer than 1,000 records",
                         "observed": ", ".join(small[:6]) + (" ..." if len(small) > 6 else ""),
                         "note": "the p99 and its interval rest on the top few values; run longer "
                                 "for a tail you can quote"})

    # ---- the experiment's own checks
    if a.spec:
        for raw in a.spec.checks:
            got, found = expand_check(a, summary, raw, "experiment")
            checks += got
            findings += found
    return _dedupe(checks), findings


def _latency_plan_findings(lp: dict | None) -> list[dict]:
    """Each step's main effect on the total p50 beside the note's range: a finding either way
    (the note's ranges are estimates, not the experiment's hypothesis)."""
    if not lp:
        return []
    effects = lp["metrics"].get("total_ms", {}).get("p50", {}).get("effects") or {}
    out = []
    for factor in [f for f in lp["factors"]] + [f"{f} alone" for f in lp["factors"]]:
        e = effects.get(factor)
        if not e or e.get("expected") is None:
            continue
        lo, hi = e["expected"]
        verdict = {"inside": "inside the note's range", "outside": "outside the note's range",
                   "overlaps": "overlapping the note's range (undecided at this size)"}.get(
                       e.get("finding"), "no interval")
        out.append({"name": f"latency plan: {factor} on total p50",
                    "observed": f"{e['value']:+.1f} ms [{e['ci_low']:+.1f}, {e['ci_high']:+.1f}]",
                    "note": f"{verdict}, {lo:g} to {hi:g} ms; " + (
                        "its cell with every other step off, minus the all-off cell"
                        if e.get("kind") == "alone" else
                        "main effect over every setting of the other steps")})
    return out


def _censored_counts(summary: dict, *, cells_only: bool = False) -> dict[str, int]:
    """{"<phase>/<flow>": failures counted at their elapsed time} in the client latency
    (`cells_only`: a factorial's cells, not each of their phases)."""
    table = summary["client"] or (summary["phases"] if summary.get("client_only") else {})
    info = summary.get("phase_info", {})
    out = {}
    for ph, flows in table.items():
        if cells_only and ph in info and info[ph].get("group") not in (None, ph):
            continue
        for flow, m in flows.items():
            n = (m.get("latency_ms") or {}).get("censored") if isinstance(m, dict) else None
            if n:
                out[f"{ph}/{flow}"] = n
    return out


def _ledger_checks(a, summary: dict, led: dict, checks: list, findings: list) -> None:
    s = a.settings
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


def _error_rise_check(before: tuple[int, int], after: tuple[int, int], margin_pp: float) -> dict:
    """Non-inferiority of the error rate: the rise after - before, with a one-sided 95% bound on
    each side (Newcombe's interval at 90%), against a margin fixed in percentage points. PASS
    when the upper bound is within the margin, FAIL when the lower bound is beyond it, else
    INCONCLUSIVE (too few requests to tell a rise of the margin from none)."""
    from .stats import rate_difference

    (eb, nb), (ea, na) = before, after
    name, expected = ("error rate not higher after the deploy",
                      f"rise <= {margin_pp:g} percentage points (upper 95% bound)")
    if nb == 0 or na == 0:
        return _chk(name, Undecided("no data to decide it"), f"{ea}/{na} after vs {eb}/{nb} "
                    "before", expected, "run", "error_rate")
    r = rate_difference(eb, nb, ea, na, level=0.90)
    m = margin_pp / 100
    outcome = (True if r["ci_high"] <= m else False if r["ci_low"] > m else
               Undecided(f"the rise's interval reaches past {margin_pp:g} pp: more requests "
                         "would decide it"))
    return _chk(name, outcome,
                f"{ea / na:.3%} after ({ea}/{na}) vs {eb / nb:.3%} before ({eb}/{nb}): rise "
                f"{100 * r['rise']:+.2f} pp, one-sided 95% bounds [{100 * r['ci_low']:+.2f}, "
                f"{100 * r['ci_high']:+.2f}] pp (Newcombe)", expected, "run", "error_rate")


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
    """The q-quantile of a phase/group with its order-statistic CI: the summary's own figure when it
    has one (so a check and the latency table never quote two intervals for one quantile)."""
    import numpy as np

    from .stats import quantile_with_ci

    qname = _quantile_name(q)
    table = "client" if metric in ("latency_ms", "latency_from_intended_ms") else "phases"
    m = ((summary or {}).get(table, {}).get(name) or {}).get(flow, {}).get(metric)
    if qname and m and m.get(qname):
        e = m[qname]
        return {"value": e["value"], "ci_low": e["ci_low"], "ci_high": e["ci_high"], "n": m["count"]}
    v = a.values(name, flow, metric)
    if len(v) == 0:
        return None
    est = quantile_with_ci(np.sort(v), q)
    return {"value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high, "n": len(v)}


def _ratio_ci(a, ref: str, ph: str, flow: str, metric: str, q: float):
    """Q_q(ph) / Q_q(ref) with its 95% interval (stats.quantile_ratio: MOVER from the two
    order-statistic intervals); a bound the samples are too small for is None."""
    import numpy as np

    from .stats import quantile_ratio

    x, y = np.sort(a.values(ref, flow, metric)), np.sort(a.values(ph, flow, metric))
    r = quantile_ratio(x, y, q)
    if r is None:
        return None  # no records, or a quantile of 0 (a skipped stage): no ratio
    return r["ref"], r["value"], r["ci_low"], r["ci_high"], r["n"]


def _check_phases(a, refs) -> list[str]:
    for r in refs:
        a.indices(r)  # KeyError names the unknown phase
    return list(refs)


QUANTILE_KINDS = ("quantile_between", "quantile_below", "quantile_max", "quantile_min")
REDUCTION_KINDS = ("reduction_at_least", "reduction_min")
ERROR_KINDS = ("no_errors", "error_rate_max")


class _Unresolved(Exception):
    """A role named in a check has no phase in this run."""


def _phase_slots(kind, raw: dict) -> list[tuple[str, str | None]]:
    """The phase fields of a check, in order, as (canonical field, the name the check gives):
    the last one expands over a role that names several phases (`treatment`)."""
    if kind in QUANTILE_KINDS:
        return [("phase", raw.get("phase"))]
    if kind in REDUCTION_KINDS:
        return [("from", raw.get("from", raw.get("baseline", "baseline"))),
                ("to", raw.get("to", raw.get("phase", "treatment")))]
    if kind == "equivalent":
        pair = raw.get("phases") or [raw.get("a", "baseline"), raw.get("b")]
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("`phases` must name two phases")
        return [("a", pair[0]), ("b", pair[1])]
    if kind == "recovery_max_s":
        return [("phase", raw.get("phase", "rollback"))]
    return []


class _Missing(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def expand_check(a, summary: dict, raw: dict, source: str) -> tuple[list[dict], list[dict]]:
    """One `[[checks]]` entry as checks and findings: a role in a phase field (`baseline`,
    `treatment`, `rollback`, `mode:<m>`; `mode = "m"` keeps the role's phases in mode m)
    becomes the phase it names, and `treatment` naming several phases makes one check each.
    `if_no_phase = "skip"`: no check when the role names no phase in this run (default: a
    failing check). `if_no_data = "finding"`: a check without data for it becomes a finding
    ("not tested"; default: a failing check). `{phase}`, `{from}`, `{to}`, `{a}`, `{b}`,
    `{flow}`, `{metric}` in its name are filled in."""
    kind = raw.get("kind") or raw.get("type")
    findings: list[dict] = []
    try:
        slots = _phase_slots(kind, raw)
        mode = raw.get("mode") if kind not in ("overcommits", "capacity_knee") else None
        resolved = []
        for field, name in slots:
            if name is None:
                resolved.append((field, [None]))
                continue
            if not isinstance(name, str):
                raise TypeError(f"{field} must be a phase or role name")
            units = a.resolve(name, mode)
            if not units:
                raise _Unresolved(name)
            resolved.append((field, units))
        if kind in ERROR_KINDS + ("error_rate_below",):
            names = raw.get("phases") or ([raw["phase"]] if raw.get("phase") else [])
            units = [u for n in names for u in a.resolve(n, mode)]
            if names and not units:
                raise _Unresolved(", ".join(names))
            raw = {**raw, "phases": units} if names else raw
    except _Unresolved as exc:
        if raw.get("if_no_phase") == "skip":
            return [], []
        name = raw.get("name") or _default_name(kind, raw)
        return [_chk(name, False, f"no {exc.args[0]} phase in this run",
                     f"an analysed phase for {exc.args[0]!r}", source, kind)], []
    except KeyError as exc:
        return [experiment_check(a, summary, raw, source, error=f"unknown phase {exc}")], []
    except (TypeError, ValueError) as exc:
        return [experiment_check(a, summary, raw, source,
                                 error=f"invalid check parameters: {exc}")], []
    combos: list[dict] = [{}]
    for i, (field, units) in enumerate(resolved):
        last = i == len(resolved) - 1
        combos = [{**c, field: u} for c in combos for u in (units if last else units[:1])]
    out = []
    for combo in combos:
        concrete = dict(raw)
        if "a" in combo:
            concrete["phases"] = [combo["a"], combo["b"]]
        for field in ("phase", "from", "to"):
            if field in combo:
                concrete[field] = combo[field]
        if raw.get("name"):
            fill = _Missing(flow=raw.get("flow", ""), metric=raw.get("metric", a.primary),
                            **{k: v for k, v in combo.items() if v is not None})
            for key, default in (("margin_pct", a.settings.rollback_margin_pct),
                                 ("max_s", None), ("pct", None), ("max", None),
                                 ("max_ratio", None)):
                try:
                    fill[key.removesuffix("_pct") if key == "margin_pct" else key] = \
                        f"{_number(a, raw, key, default=default):g}"
                except (KeyError, ValueError):
                    pass
            name = str(raw["name"]).format_map(fill)
            if name == raw["name"] and len(combos) > 1:
                name += f" ({combo[resolved[-1][0]]})"
            concrete["name"] = name
        c = experiment_check(a, summary, concrete, source)
        finding = c.pop("_finding", None)
        if finding:
            findings.append(finding)
        if c.pop("_no_data", False) and raw.get("if_no_data") == "finding":
            findings.append({"name": f"{c['name']}: not tested", "observed": c["observed"],
                             "note": raw.get("no_data_note") or "no data to test it on: unchecked"})
            continue
        out.append(c)
    return out, findings


def _number(a, raw: dict, *keys, default=None) -> float:
    """A numeric field (the first of `keys` present); a string names an `[analysis]` setting
    (`margin_pct = "local_margin_pct"`), so a pack's checks follow the experiment's overrides."""
    for k in keys:
        if k in raw:
            v = raw[k]
            if isinstance(v, str):
                if not hasattr(a.settings, v):
                    raise ValueError(f"{k} = {v!r} names no [analysis] setting")
                v = getattr(a.settings, v)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{k} must be a number")
            return float(v)
    if default is None:
        raise KeyError(keys[0])
    return float(default)


def _default_flow(a) -> str:
    flows = a.flows()
    return "provider" if "provider" in flows or not flows else flows[0]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided Wilson score interval of a binomial proportion k/n."""
    from .stats import wilson

    return wilson(k, n, confidence)


def _error_counts(a, summary: dict, members: list[str], flow: str | None) -> tuple[int, int, str]:
    """(errors, requests, what was counted) over these phases: the client's failures among its
    requests when the run has client records (what a user sees), else the server's errors among
    its records; records served during a flip count too."""
    import numpy as np

    from .core import _client_phase_mask_of

    r = a.requests
    if r is not None and r.n:
        pm = _client_phase_mask_of(a, members)
        if flow is not None:
            pm = pm & (r.cats["flow"] == r.code("flow", flow))
        fails = int((pm & (r.cats["outcome"] == r.code("outcome", "failure"))).sum())
        return fails, int(pm.sum()), "client failures"
    t = a.timings
    names = [w.name for w in a.attribution.windows]
    pm = np.isin(a.attribution.phase_index, [names.index(m) for m in members])
    if flow is not None:
        pm &= t.cats["flow"] == t.code("flow", flow)
    err = int((pm & (t.cats["status"] == t.code("status", "error"))).sum())
    return err, int(pm.sum()), "server errors"


def experiment_check(a, summary: dict, raw: dict, source: str = "experiment",
                     error: str | None = None) -> dict:
    """One check with concrete phases (see `expand_check` for roles); kinds and fields as in
    docs/analysis.md (the engine's validator, loadtests/spec.py, mirrors them)."""
    kind = raw.get("kind") or raw.get("type")
    name = raw.get("name") or _default_name(kind, raw)
    src = source
    roles = summary["roles"]
    covers = None

    def chk(passed, observed, expected):
        return _chk(name, passed, observed, expected, src, kind, covers)

    def nodata(observed, expected="data"):
        c = chk(Undecided("no data to decide it"), observed, expected)
        c["_no_data"] = True
        return c

    min_n = a.settings.min_samples

    if error is not None:
        return chk(False, error, "a valid check")
    try:
        if kind in QUANTILE_KINDS:
            ph, flow = raw["phase"], raw.get("flow") or _default_flow(a)
            metric = raw.get("metric", a.primary)
            qv = float(raw.get("q", 0.5)) if "quantile" not in raw else \
                {"p50": .5, "p90": .9, "p95": .95, "p99": .99}[raw["quantile"]]
            _check_phases(a, [ph])
            lo = _number(a, raw, "low", "min_ms", default=-math.inf)
            hi = _number(a, raw, "high", "max", "max_ms", default=math.inf)
            covers = ("quantile", flow, metric, ph, qv, lo, hi)
            est = _quantile(a, ph, flow, metric, qv, summary)
            if est is None:
                return nodata(f"no {flow} {metric} records in {ph}")
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
            c = chk(by_interval(est["ci_low"], est["ci_high"], lo, hi, n=est["n"],
                                min_n=min_n, what=f"the {qlabel}'s 95% interval"),
                    observed, exp + " (the whole 95% interval)")
            below = raw.get("finding_if_ci_below")
            if isinstance(below, (int, float)) and est["ci_high"] is not None \
                    and est["ci_high"] < below:
                c["_finding"] = {
                    "name": f"{flow} {qlabel} in {ph} below {below:g} ms"
                            + (f" ({raw['finding_note']})" if raw.get("finding_note") else ""),
                    "observed": observed,
                    "note": "faster than claimed (the whole interval), not a failure"}
            return c
        if kind in REDUCTION_KINDS:
            ref = raw.get("from", raw.get("baseline", roles["baseline"]))
            ph, flow = raw.get("to", raw.get("phase")), raw.get("flow") or _default_flow(a)
            metric, qv = raw.get("metric", a.primary), float(raw.get("q", 0.5))
            pct = _number(a, raw, "pct", "min_pct")
            method = raw.get("method", "ratio")
            _check_phases(a, [ref, ph])
            covers = ("reduction", flow, metric, ref, ph, qv, pct, method)
            if method == "hl":
                return _reduction_hl(a, summary, ref, ph, flow, metric, pct, chk, nodata, min_n)
            if method != "ratio":
                raise ValueError(f"method {method!r} (expected 'ratio' or 'hl')")
            r = _ratio_ci(a, ref, ph, flow, metric, qv)
            if r is None:
                return nodata(f"not enough {flow} {metric} records in {ref}/{ph}")
            qa, qb, lo, hi, n = r
            red = 100 * (1 - qb / qa)
            red_lo = None if hi is None else 100 * (1 - hi)
            red_hi = None if lo is None else 100 * (1 - lo)
            shown = ("no lower 95% bound: too few records for that quantile" if red_lo is None
                     else f"95% CI of the reduction {red_lo:.1f}%-"
                     + ("?" if red_hi is None else f"{red_hi:.1f}%"))
            return chk(by_interval(red_lo, red_hi, pct, math.inf, n=n, min_n=min_n,
                                   what="the reduction's 95% interval"),
                       f"{_quantile_name(qv) or qv} {qa:.1f} -> {qb:.1f} ms: -{red:.1f}% "
                       f"({shown})", f">= {pct:g}% (lower 95% bound)")
        if kind == "equivalent":
            pair = raw.get("phases") or [raw.get("a", roles["baseline"]), raw.get("b")]
            ref, ph = pair
            flow, metric = raw.get("flow") or _default_flow(a), raw.get("metric", a.primary)
            qv = float(raw.get("q", 0.5))
            margin = _number(a, raw, "margin_pct", default=a.settings.rollback_margin_pct)
            _check_phases(a, [ref, ph])
            if abs(qv - 0.5) < 1e-12:
                covers = ("equivalent", flow, metric, ref, ph, margin)
            else:
                covers = ("equivalent", flow, metric, ref, ph, margin, qv)
            import numpy as np

            from .stats import ratio_equivalence

            x, y = a.values(ref, flow, metric), a.values(ph, flow, metric)
            if len(x) < 2 or len(y) < 2:
                return nodata(f"not enough {flow} {metric} records in {ref}/{ph}")
            if min(len(x), len(y)) < min_n:
                return chk(Undecided(f"n={min(len(x), len(y))} is below the minimum of "
                                     f"{min_n} per group"),
                           f"{len(x)} vs {len(y)} {flow} {metric} records",
                           f"within +-{margin:g}% of {ref}")
            c = _comparison(summary, ref, ph, flow, metric, margin) \
                if abs(qv - 0.5) < 1e-12 else None
            eq = c["equivalence"] if c else ratio_equivalence(
                np.sort(np.asarray(x)), np.sort(np.asarray(y)), margin_pct=margin, q=qv)
            if eq is None:
                return nodata(f"no ratio for {ref}/{ph} (a quantile of 0)")
            qn = _quantile_name(qv) or f"q{qv:g}"
            return chk(_equivalence_outcome(eq),
                       f"{qn} {_fmt(float(np.quantile(x, qv)))} vs "
                       f"{_fmt(float(np.quantile(y, qv)))}: ratio {eq['ratio']:.3f}, 90% CI "
                       f"{_bounds(eq['ci90'])}",
                       f"{qn} ratio within 1 +- {margin / 100:g} (90% interval inside: "
                       "two one-sided tests at 5%)")
        if kind == "error_rate_below":
            members = _members(a, raw)
            flow = raw.get("flow")
            lim = _number(a, raw, "max_ratio")
            covers = ("error_rate", flow, tuple(members), lim)
            err, tot, what = _error_counts(a, summary, members, flow)
            if tot == 0:
                return nodata(f"no {flow + ' ' if flow else ''}requests in "
                              f"{', '.join(members)}")
            lo, hi = wilson_interval(err, tot)
            rate = err / tot
            obs = (f"{what} {err}/{tot} = {rate:.3%} (95% Wilson CI {lo:.3%}-{hi:.3%})")
            exp = f"error rate < {lim:g} (the upper 95% bound)"
            # Wilson's interval is honest at any n: no minimum sample on top of it
            return chk(by_interval(lo, hi, -math.inf, lim, what="the error rate's 95% interval"),
                       obs, exp)
        if kind in ERROR_KINDS:
            members = _members(a, raw)
            lim = _number(a, raw, "max_failure_ratio", "max", default=0.0)
            if not raw.get("phases") and not raw.get("phase") and lim == 0:
                covers = ("no_errors",)
            flow = raw.get("flow")
            ok = True
            obs = []
            if not a.client_only:
                err = tot = 0
                for ph in members:
                    info = summary["phase_info"][ph]
                    for f, st in info["status"].items():
                        if flow is None or f == flow:
                            err += st.get("error", 0)
                            tot += sum(st.values())
                    if flow is None:
                        err += info.get("flip_window_errors", 0)
                        tot += info.get("flip_window", 0)
                obs.append(f"server errors {err}/{tot}")
                ok = (err / tot if tot else 0.0) <= lim
            if a.requests is not None and a.requests.n:
                fails, sent, _ = _error_counts(a, summary, members, flow)
                obs.append(f"client failures {fails}/{sent}")
                ok = ok and (fails / sent if sent else 0.0) <= lim
            return chk(ok, ", ".join(obs), f"failure ratio <= {lim:g}")
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
            f = next((x for x in summary["flips"] if x["phase"] == ph), None)
            flow = raw.get("flow")
            if flow is None:  # the rollback's quoted flow, else the provider's, else the first
                rb = summary.get("rollback") or {}
                flow = rb.get("flow") if rb.get("phase") == ph and rb.get("flow") else (
                    "provider" if not f or "provider" in f["flows"] or not f["flows"]
                    else next(iter(f["flows"])))
            max_s = _number(a, raw, "max_s")
            covers = ("recovery", ph, flow, max_s)
            rec = f["flows"].get(flow, {}) if f else {}
            r = rec.get("recovery_s")
            if rec.get("resolvable") is False:
                return chk(Undecided("too few records after the flip to date the recovery"),
                           f"{recovery_text(rec)}: {rec.get('note')}", f"<= {max_s:g} s")
            if r is None:
                why = "never recovered" if f and f["flows"] else "no records after the flip"
                return chk(False, why if f else f"no flip into {ph}", f"<= {max_s:g} s")
            return chk(r <= max_s, f"{recovery_text(rec)} s", f"<= {max_s:g} s")
        if kind == "capacity_knee":
            return _capacity_knee(a, raw, chk)
    except KeyError as exc:
        return chk(False, f"unknown phase or missing parameter {exc}", "a valid check")
    except (TypeError, ValueError) as exc:
        return chk(False, f"invalid check parameters: {exc}", "a valid check")
    return _chk(f"unsupported check: {name}", False, f"unknown kind {kind!r}",
                "a kind this analysis knows (see docs/analysis.md)", src, "unsupported")


def _equivalence_outcome(eq: dict):
    """An equivalence result (stats.ratio_equivalence) as a check outcome: equivalent PASS;
    shown different by more than the margin FAIL; otherwise INCONCLUSIVE."""
    v = eq["verdict"]
    if v == "equivalent":
        return True
    if v == "different":
        return False
    return Undecided("the ratio's interval reaches past the margin: not shown equivalent, "
                     "not shown different")


def _bounds(ci) -> str:
    lo, hi = ci
    return f"[{'-' if lo is None else f'{lo:.3f}'}, {'-' if hi is None else f'{hi:.3f}'}]"


def _members(a, raw: dict) -> list[str]:
    """The phases an error check covers: its `phases`/`phase` (phases or groups, as their
    member phases), or every analysed phase."""
    phs = raw.get("phases") or ([raw["phase"]] if raw.get("phase") else None)
    if phs:
        _check_phases(a, phs)
        return sorted({a.attribution.windows[i].name for p in phs for i in a.indices(p)})
    return a.phase_names()


def _comparison(summary: dict, ref: str, ph: str, flow: str, metric: str, margin: float):
    """The summary's comparison of ph with ref for this flow and metric when it was made with
    this margin (so a check and the shifts table quote one result), else None."""
    key = {"latency_ms": "client_latency_ms"}.get(metric, metric) \
        if summary.get("client") else metric
    for c in summary["comparisons"]:
        if c["ref"] == ref and c["phase"] == ph:
            r = c["flows"].get(flow, {}).get(key)
            if r and r.get("usable") and r.get("equivalence") \
                    and abs(r["equivalence"]["margin_pct"] - margin) < 1e-12:
                return r
    return None


def _reduction_hl(a, summary, ref, ph, flow, metric, pct, chk, nodata, min_n: int) -> dict:
    """The p50 reduction judged on the Hodges-Lehmann shift: passes when the upper bound of its
    95% interval is at least pct% of the reference p50 below zero (the seed claim's method)."""
    import numpy as np

    from .stats import compare_samples

    c = None
    key = {"latency_ms": "client_latency_ms"}.get(metric, metric) \
        if summary.get("client") else metric
    for cmp_ in summary["comparisons"]:
        if cmp_["ref"] == ref and cmp_["phase"] == ph:
            c = cmp_["flows"].get(flow, {}).get(key)
    if c is None:
        x, y = a.values(ref, flow, metric), a.values(ph, flow, metric)
        if len(x) and len(y):
            c = compare_samples(np.asarray(x), np.asarray(y),
                                margin_pct=a.settings.rollback_margin_pct)
    if not (c and c.get("usable")):
        return nodata(f"no usable {flow} comparison {ref} -> {ph}",
                      f"{flow}-flow records in both phases")
    base = c["ref_p50"]
    lo, hi = c["shift_ms"]["ci_low"], c["shift_ms"]["ci_high"]
    red_pt = 100 * (1 - c["p50"] / base) if base else None
    red_ci = -100 * hi / base if base and hi is not None else None
    red_max = -100 * lo / base if base and lo is not None else None
    if red_pt is None:
        return nodata(f"no reduction for {ref} -> {ph} (a reference p50 of 0)")
    outcome = by_interval(red_ci, red_max, pct, math.inf, n=min(c["n_ref"], c["n"]),
                          min_n=min_n, what="the reduction's 95% interval")
    if red_ci is None:
        return chk(outcome, f"p50 {_fmt(base)} -> {_fmt(c['p50'])} (-{red_pt:.1f}%); no "
                   "95% interval", f">= {pct:g}% at 95% confidence")
    return chk(outcome,
               f"p50 {_fmt(base)} -> {_fmt(c['p50'])} (-{red_pt:.1f}%); HL shift "
               f"{_fmt(c['shift_ms']['value'])}, 95% CI upper bound = -{red_ci:.1f}% of {ref}",
               f">= {pct:g}% at 95% confidence (the HL interval's upper bound)")


def _default_name(kind, raw: dict) -> str:
    """A readable name for an experiment check that has none (the table shows names, not kinds)."""
    if kind == "error_rate_below":
        where = ", ".join(raw.get("phases") or []) or raw.get("phase") or "analysed phases"
        flow = f"{raw['flow']} " if raw.get("flow") else ""
        return f"{flow}error rate below {raw.get('max_ratio')} ({where})"
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
