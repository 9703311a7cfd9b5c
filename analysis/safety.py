"""The "Safety and reliability" figures (`summary.json` -> `safety`).

The ledger (`ledger.json`, the service's `GET /admin/ledger`) is passed through unchanged, every
key at the top level as before; beside it this adds
  modes           per mode: over-commits, provider orders, over-commits per 10,000 provider
                  orders with a 95% interval that resamples whole accounts (a burst of one
                  account over-commits together: `cluster_rate_interval`; Clopper-Pearson over
                  orders only for a ledger without the per-account breakdown), the largest
                  over-commit in USD, the |estimate error| quantiles the ledger gives;
  reconciliation  residual, non-terminal, releases, double releases, each with its verdict;
  recoveries      the recovery after every flip (from `summary["flips"]`, without the series);
  provider_faults each provider fault episode (phases with a `provider` table): the flips made
                  during it, the latency recovery after it ended and, when the runner sampled
                  the ledger during the run (timeline `ledger` events), the non-terminal peak
                  and how long after the end the count took to return under its threshold;
  nonterminal_samples  (only with such samples) how many, their spacing, the largest count.
Without a ledger (an older run, a production log) `available` is false and the section says so;
the recoveries are still there.
"""

from __future__ import annotations

import math

import numpy as np

MODE_ORDER = ("off", "skip", "skip_reserve")
# the keys this module adds beside the ledger's
ADDED = ("modes", "reconciliation", "recoveries", "provider_faults", "interval_method", "notes",
         "nonterminal_samples")
PER = 10_000
CONFIDENCE = 0.95
INTERVAL_METHOD = ("95%, over-commits / provider orders of the mode, scaled to 10,000 orders, "
                   "with accounts as the independent units (the ledger's per-account "
                   "breakdown): percentile bootstrap over accounts (B=4000, fixed seed), "
                   "widened to the Clopper-Pearson interval of the number of accounts that "
                   "over-commit, when there are over-commits; with none, the exact upper bound for 0 "
                   "events in Kish's effective number of accounts ((sum n)^2 / sum n^2); a "
                   "ledger without the breakdown: "
                   "Clopper-Pearson over orders (treating them as independent)")
CLUSTER_BOOTSTRAP = 4000
CLUSTER_SEED = 20261203
NONTERMINAL_NOTE = ("the run directory records the non-terminal count once, at the end "
                    "(ledger.json, read after the runner's settle wait), so the time it took to "
                    "return to 0 is not measured")
NONTERMINAL_METHOD = (
    "from the runner's ledger samples (timeline `ledger` events, GET /admin/ledger every "
    "~{interval} s): the pre-fault level is the largest orders_nonterminal in the {base:g} s "
    "before the fault started (the last sample before it if none is that recent; 0 if there is "
    "none); the recovery threshold is that level plus a tolerance of max(2, 25% of the level), "
    "because the in-flight count of a steady load fluctuates and its post-fault values would "
    "otherwise reset the clock by chance; recovery_s is the time from the fault's end to the "
    "first sample at or below the threshold after which no sample exceeds it for {hold:g} s "
    "(or up to the last sample before the next fault or the run's end); resolution: one sample interval. The peak is the largest "
    "count from the fault's start to the recovery (or to the end of the observation)")


def rate_interval(k: int, n: int, confidence: float = CONFIDENCE, per: int = PER) -> dict:
    """k events in n trials as a rate per `per` trials with the exact (Clopper-Pearson)
    two-sided interval: lower = B(a/2; k, n-k+1), upper = B(1-a/2; k+1, n-k), where B is the
    Beta quantile; 0 and 1 at the ends (k = 0: the upper bound is the "rule of three" ~3/n)."""
    out = {"value": None, "ci_low": None, "ci_high": None, "k": k, "n": n, "per": per,
           "confidence": confidence, "method": "clopper-pearson"}
    if not isinstance(k, int) or not isinstance(n, int) or n <= 0 or k < 0:
        return out
    out["value"] = per * k / n
    if k > n:
        return out  # more over-commits than orders: the ledger's counts do not fit a rate
    from scipy.special import betaincinv

    alpha = 1 - confidence
    lo = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha / 2))
    hi = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha / 2))
    out["ci_low"], out["ci_high"] = per * lo, per * hi
    return out


def cluster_rate_interval(accounts, confidence: float = CONFIDENCE, per: int = PER) -> dict:
    """Over-commits per `per` provider orders with accounts as the units: `accounts` is the
    ledger's [[orders, over-commits, accounts], ...] (how many accounts had that many of each).
    The orders of one account's burst fail together, so an interval over orders (as if each were
    independent) is too narrow by the design effect; this one resamples whole accounts.

    k > 0: percentile bootstrap of the ratio sum(k) / sum(n) over accounts (multinomial counts
    of the distinct account types, so B resamples cost O(B x types)), widened where needed to
    the exact interval of the count of failing accounts times what one failing account
    over-committed (the bootstrap alone covered 0.90 with three failing accounts in 60). k = 0: no resample can
    show a rate; the upper bound is the exact (Clopper-Pearson) bound for 0 events in Kish's
    effective number of accounts, (sum n)^2 / sum n^2, i.e. as if an account that fails fails
    on every order it sent (3.69 / A per order for A equal accounts, rather than 3.69 / n). `design_effect` compares
    the bootstrap variance with the binomial one over orders (1: orders as good as independent).
    benchmarks/coverage.py (`cluster`) measures its coverage on bursty data."""
    rows = np.asarray([r for r in accounts if len(r) == 3 and r[2] > 0], dtype=np.float64)
    out = {"value": None, "ci_low": None, "ci_high": None, "k": None, "n": None, "per": per,
           "confidence": confidence, "method": "account-cluster", "accounts": 0,
           "design_effect": None}
    if rows.size == 0:
        return out
    n_i, k_i, m_i = rows[:, 0], rows[:, 1], rows[:, 2]
    n, k, a = int((n_i * m_i).sum()), int((k_i * m_i).sum()), int(m_i.sum())
    out.update(k=k, n=n, accounts=a)
    if n <= 0:
        return out
    out["value"] = per * k / n
    alpha = 1 - confidence
    if k == 0:
        from scipy.special import betaincinv

        # Kish's effective number of accounts, (sum n)^2 / sum n^2: A when every account sent
        # as many orders, fewer when a few accounts sent most of them
        effective = n * n / float((m_i * n_i * n_i).sum())
        out["ci_low"] = 0.0
        out["ci_high"] = per * (1.0 - (alpha / 2) ** (1.0 / effective))
        out["effective_accounts"] = effective
        out["method"] = "account-cluster (zero: exact bound over the effective accounts)"
        return out
    rng = np.random.default_rng(CLUSTER_SEED)
    counts = rng.multinomial(a, m_i / a, size=CLUSTER_BOOTSTRAP).astype(np.float64)
    orders = counts @ n_i
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (counts @ k_i) / orders
    ratios = ratios[orders > 0]
    lo, hi = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    # few failing accounts (a handful of bursts) leave the bootstrap too narrow, since it
    # cannot resample accounts it never saw fail: widen it to the exact (Clopper-Pearson)
    # interval of the number of failing accounts, each failing as the observed ones did
    from scipy.special import betaincinv

    failing = int(m_i[k_i > 0].sum())
    share_lo = float(betaincinv(failing, a - failing + 1, alpha / 2))
    share_hi = 1.0 if failing == a else float(betaincinv(failing + 1, a - failing, 1 - alpha / 2))
    per_failing = (k / failing) / (n / a)  # over-commits of a failing account / mean orders
    lo, hi = min(float(lo), share_lo * per_failing), max(float(hi), share_hi * per_failing)
    out["ci_low"], out["ci_high"] = per * lo, per * min(hi, 1.0)
    p = k / n
    binomial_var = p * (1 - p) / n
    out["design_effect"] = float(ratios.var() / binomial_var) if binomial_var > 0 else None
    out["method"] = "account-cluster bootstrap"
    return out


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
        else None


def _int(v):
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v) and float(v).is_integer() else None


def _timings_provider_orders(a, mode: str) -> int:
    """Accepted provider orders in `mode` per the server records (status success)."""
    t = a.timings
    if "mode" not in t.cats:
        return 0
    m = (t.cats["flow"] == t.code("flow", "provider")) & (t.cats["mode"] == t.code("mode", mode))
    m &= t.cats["status"] == t.code("status", "success")
    return int(m.sum())


def mode_figures(a, ledger: dict) -> dict:
    by_mode = ledger.get("by_mode") if isinstance(ledger.get("by_mode"), dict) else {}
    oc = ledger.get("overcommits") if isinstance(ledger.get("overcommits"), dict) else {}
    names = [m for m in MODE_ORDER if m in by_mode or m in oc]
    names += [m for m in list(by_mode) + list(oc) if m not in names]
    modes_run = {w.mode for w in a.attribution.windows if w.mode}
    out = {}
    for mode in names:
        bm = by_mode.get(mode) if isinstance(by_mode.get(mode), dict) else {}
        k = _int(bm.get("overcommits", oc.get(mode)))
        n = _int(bm.get("provider_orders"))
        source = "ledger"
        if n is None:
            n = _timings_provider_orders(a, mode)
            source = "timings.jsonl (accepted provider orders)"
        clusters = bm.get("accounts")
        if k is not None and isinstance(clusters, list) and clusters and source == "ledger":
            rate = cluster_rate_interval(clusters)
            if rate["k"] != k or rate["n"] != n:  # a breakdown that does not add up: orders
                rate = rate_interval(k, n)
        else:
            rate = rate_interval(k, n) if k is not None else rate_interval(-1, 0)
        q = bm.get("abs_estimate_error_quantiles_usd")
        est = None
        if isinstance(q, dict) and any(_num(q.get(p)) is not None for p in ("p50", "p95", "p99")):
            est = {p: _num(q.get(p)) for p in ("p50", "p90", "p95", "p99")}
            est["count"] = _int(q.get("count"))
            est["max"] = _num(bm.get("max_abs_estimate_error_usd"))
            est["mean_signed"] = _num(bm.get("mean_estimate_error_usd"))
        # like the checks: a mode that did not run is judged only if it over-committed anyway
        gated = mode in ("off", "skip_reserve") and (mode in modes_run or bool(k))
        out[mode] = {
            "ran": mode in modes_run,
            "overcommits": k,
            "provider_orders": n,
            "provider_orders_source": source,
            "per_10k": rate,
            # excesses within the price-move allowance (not counted as over-commits); the
            # ledger's max_overcommit_usd is the largest excess of either kind
            "overcommits_within_allowance": _int(bm.get("overcommits_within_allowance")),
            "max_overcommit_usd": _num(bm.get("max_overcommit_usd")),
            "max_abs_estimate_error_usd": _num(bm.get("max_abs_estimate_error_usd")),
            "mean_estimate_error_usd": _num(bm.get("mean_estimate_error_usd")),
            "abs_estimate_error_usd": est,
            # off and skip_reserve promise no over-commit; skip's are its measured cost
            "expected_zero": mode in ("off", "skip_reserve"),
            "passed": (k == 0) if gated and k is not None else None,
        }
    return out


def reconciliation(a, ledger: dict) -> dict:
    lim = a.settings.residual_max_usd
    res = _num(ledger.get("reserved_vs_open_residual_usd"))
    nt = _int(ledger.get("orders_nonterminal"))
    dbl = _int(ledger.get("double_releases"))
    return {
        "orders_total": _int(ledger.get("orders_total")),
        "residual_usd": {"value": res, "limit": lim,
                         "passed": None if res is None else abs(res) <= lim},
        "nonterminal": {"value": nt, "passed": None if nt is None else nt == 0},
        "releases_total": {"value": _int(ledger.get("releases_total")), "passed": None},
        "double_releases": {"value": dbl, "passed": None if dbl is None else dbl == 0},
    }


def _compact(flows: dict) -> dict:
    return {flow: {"recovery_s": r.get("recovery_s"), "target_p50": r.get("target_p50"),
                   "excursions_after": r.get("excursions_after"),
                   "tolerance_pct": r.get("tolerance_pct"), "at_most_s": r.get("at_most_s"),
                   **({"resolvable": False} if r.get("resolvable") is False else {})}
            for flow, r in flows.items()}


def flip_recoveries(summary: dict) -> list[dict]:
    return [{"phase": f["phase"], "mode": f["mode"], "requested_at": f["requested_at"],
             "applied_at": f["applied_at"], "apply_lag_s": f["apply_lag_s"],
             "flows": _compact(f["flows"])} for f in summary.get("flips", [])]


def _is_fault(p: dict) -> bool:
    """Settings that inject a fault: an outage, rejects or timeouts, or a delay set by hand
    (None everywhere is the service's own provider)."""
    return bool(p.get("outage")) or (_num(p.get("reject_ratio")) or 0) > 0 \
        or (_num(p.get("timeout_ratio")) or 0) > 0 or _num(p.get("delay_ms")) is not None


def _describe(p: dict) -> str:
    parts = ["outage"] if p.get("outage") else []
    for key, label in (("reject_ratio", "rejects"), ("timeout_ratio", "timeouts")):
        if (_num(p.get(key)) or 0) > 0:
            parts.append(f"{label} {p[key]:g}")
    if _num(p.get("delay_ms")) is not None:
        parts.append(f"delay {p['delay_ms']:g} ms")
    return ", ".join(parts) or "normal"


def provider_changes(a) -> list[dict]:
    """When the provider settings changed: the timeline's `provider_set` events, or else each
    phase's `[phases.provider]` table at the phase's start."""
    if a.provider_events:
        return [{"ts": e["ts"], "phase": e["phase"], "provider": e["provider"],
                 "source": "timeline"} for e in a.provider_events]
    raw = a.spec.raw.get("phases") if a.spec is not None else None
    if not isinstance(raw, list):
        return []
    starts = {w.name: w.start for w in a.attribution.windows}
    out = []
    for p in raw:
        if isinstance(p, dict) and isinstance(p.get("provider"), dict) and p.get("name") in starts:
            out.append({"ts": starts[p["name"]], "phase": p["name"], "provider": p["provider"],
                        "source": "spec (phase start)"})
    return sorted(out, key=lambda e: e["ts"])


def _window_at(a, ts: float) -> int | None:
    for k, w in enumerate(a.attribution.windows):
        if w.start <= ts < w.end:
            return k
    return None


def _p50_between(a, lo: float, hi: float) -> dict:
    t = a.timings
    ts = t.times["ts"]
    ok = (t.cats["status"] == t.code("status", "success")) & (ts >= lo) & (ts < hi)
    out = {}
    for flow in a.flows():
        v = t.floats[a.primary][ok & (t.cats["flow"] == t.code("flow", flow))]
        v = v[~np.isnan(v)]
        if len(v):
            out[flow] = {"p50": float(np.median(v)), "n": len(v)}
    return out


def _median_gap(ts: np.ndarray) -> float | None:
    return float(np.median(np.diff(ts))) if len(ts) > 1 else None


def nonterminal_after_fault(samples: dict, start: float, end: float | None, stop: float,
                            baseline_s: float, hold_s: float) -> dict:
    """The non-terminal count around one fault episode from the ledger samples (see
    NONTERMINAL_METHOD). `end` None: the fault lasted to the run's end. `stop`: where this
    episode's observation ends (the next fault's start, or +inf)."""
    from .core import iso

    ts, n = samples["ts"], samples["orders_nonterminal"]
    out = {"level_before": None, "level_source": None, "threshold": None,
           "recovery_s": None, "recovered_at": None,
           "peak": None, "peak_at": None, "peak_s_into_fault": None, "excursions_after": None,
           "samples": 0, "interval_s": None, "hold_s": hold_s, "note": None}
    before = ts < start
    recent = before & (ts >= start - baseline_s)
    if recent.any():
        out["level_before"] = int(n[recent].max())
        out["level_source"] = f"max of {int(recent.sum())} samples in the {baseline_s:g} s before"
    elif before.any():
        k = int(np.flatnonzero(before)[-1])
        out["level_before"] = int(n[k])
        out["level_source"] = f"the last sample before the fault ({start - ts[k]:.1f} s before)"
    else:
        out["level_before"] = 0
        out["level_source"] = "no sample before the fault: 0 assumed"
    # the steady in-flight count fluctuates (Poisson arrivals, a random provider delay): a
    # post-fault sample a little above the pre-fault maximum is noise, not a backlog
    threshold = out["level_before"] + max(2, math.ceil(0.25 * out["level_before"]))
    out["threshold"] = threshold
    obs = (ts >= start) & (ts < stop)
    out["samples"] = int(obs.sum())
    out["interval_s"] = _median_gap(ts)
    if not obs.any():
        out["note"] = "no ledger sample during or after the fault"
        return out
    peak_to = stop
    if end is None:
        out["note"] = "the fault lasted to the end of the run: no recovery to measure"
    else:
        after = np.flatnonzero((ts >= end) & (ts < stop))
        if len(after) == 0:
            out["note"] = "no ledger sample after the fault ended"
        else:
            t_a, n_a = ts[after], n[after]
            above = n_a > threshold
            for i in range(len(after)):
                if above[i]:
                    continue
                held = t_a <= t_a[i] + hold_s
                if not above[i:][held[i:]].any():
                    out["recovery_s"] = float(t_a[i] - end)
                    out["recovered_at"] = iso(float(t_a[i]))
                    out["excursions_after"] = int(above[i:].sum())
                    peak_to = float(t_a[i]) + 1e-9
                    break
            if out["recovery_s"] is None:
                out["note"] = (f"still above the threshold ({threshold}: the pre-fault level "
                               f"{out['level_before']} + tolerance) at the last sample, "
                               f"{float(t_a[-1]) - end:.1f} s after the fault ended "
                               f"({int(n_a[-1])} non-terminal)")
    win = np.flatnonzero((ts >= start) & (ts < peak_to))
    k = int(win[np.argmax(n[win])])  # the first sample at the peak
    out["peak"] = int(n[k])
    out["peak_at"] = iso(float(ts[k]))
    out["peak_s_into_fault"] = float(ts[k] - start)
    return out


def sample_figures(samples: dict) -> dict:
    ts, n = samples["ts"], samples["orders_nonterminal"]
    k = int(np.argmax(n))
    from .core import iso

    return {"count": len(ts), "interval_s": _median_gap(ts),
            "configured_interval_s": samples.get("interval_s"),
            "failed_requests": samples.get("failures"), "skipped": samples.get("skipped", 0),
            "first_at": iso(float(ts[0])), "last_at": iso(float(ts[-1])),
            "max": int(n[k]), "max_at": iso(float(ts[k]))}


def provider_faults(a, summary: dict, ledger: dict | None) -> list[dict]:
    """Each fault episode: from the change into a fault to the change out of it (or the run's
    end), the flips requested meanwhile, and the latency recovery after the fault ended, measured
    like a flip's (rolling p50 back within the tolerance of the next phase's steady p50)."""
    from .core import iso, recovery_after

    changes = provider_changes(a)
    ws = a.attribution.windows
    if not changes or not ws:
        return []
    run_end = ws[-1].end
    episodes = []
    cur = None
    for c in changes:
        if _is_fault(c["provider"]):
            if cur is None:
                cur = {"start": c["ts"], "settings": [c["provider"]], "start_phase": c["phase"],
                       "source": c["source"]}
            elif c["provider"] not in cur["settings"]:
                cur["settings"].append(c["provider"])
        elif cur is not None:
            cur["end"], cur["end_phase"] = c["ts"], c["phase"]
            episodes.append(cur)
            cur = None
    if cur is not None:
        cur["end"], cur["end_phase"] = None, None
        episodes.append(cur)
    out = []
    nt = _int((ledger or {}).get("orders_nonterminal"))
    samples = a.ledger_samples
    for j, ep in enumerate(episodes):
        start, end = ep["start"], ep["end"]
        stop = end if end is not None and end < run_end else run_end
        # phases the fault covers (a change lands a few ms after its phase starts: not an overlap)
        phases = [w.name for w in ws if min(w.end, stop) - max(w.start, start) > 0.5]
        requested = {w.name: w.flip_requested for w in ws}
        flips = [f for f in summary.get("flips", [])
                 if requested.get(f["phase"]) is not None
                 and start <= requested[f["phase"]] < stop]
        entry = {
            "settings": " -> ".join(_describe(p) for p in ep["settings"]),
            "provider": ep["settings"], "source": ep["source"],
            "started_at": iso(start), "start_phase": ep["start_phase"],
            "ended_at": iso(end) if end is not None and end < run_end else None,
            "end_phase": ep["end_phase"] if end is not None and end < run_end else None,
            "duration_s": stop - start,
            "flips_during": [{"phase": f["phase"], "mode": f["mode"],
                              "requested_at": f["requested_at"], "apply_lag_s": f["apply_lag_s"],
                              "seconds_into_fault": None, "flows": _compact(f["flows"])}
                             for f in flips],
            "p50_before": None,
            "p50_during": [{"phase": w.name, "mode": w.mode,
                            **_p50_between(a, max(w.start, start), min(w.end, stop))}
                           for w in ws if w.name in phases],
            "recovery_after_end": None,
            "nonterminal": {"at_end": nt, "recovery_s": None, "note": NONTERMINAL_NOTE},
        }
        if samples is not None:
            nxt = episodes[j + 1]["start"] if j + 1 < len(episodes) else math.inf
            ended = end if entry["ended_at"] is not None else None
            fig = nonterminal_after_fault(samples, start, ended, nxt,
                                          a.settings.nonterminal_baseline_s,
                                          a.settings.nonterminal_hold_s)
            entry["nonterminal"] = {"at_end": nt, **fig, "method": NONTERMINAL_METHOD.format(
                interval=f"{fig['interval_s']:.2g}" if fig["interval_s"] else "?",
                base=a.settings.nonterminal_baseline_s, hold=a.settings.nonterminal_hold_s)}
        for fd, f in zip(entry["flips_during"], flips):
            fd["seconds_into_fault"] = requested[f["phase"]] - start
        before = [w for w in ws if w.analysed and w.end <= start + 1e-6]
        if before:
            entry["p50_before"] = {"phase": before[-1].name, "mode": before[-1].mode,
                                   **_p50_between(a, before[-1].start, before[-1].end)}
        if entry["ended_at"] is not None:
            k = _window_at(a, end)
            if k is not None:
                entry["recovery_after_end"] = {"phase": ws[k].name, "mode": ws[k].mode,
                                               "flows": _compact(recovery_after(a, k, end))}
        else:
            entry["note"] = "the fault lasted to the end of the run: no recovery to measure"
        out.append(entry)
    return out


def safety_section(a, summary: dict) -> dict:
    led = a.ledger
    base = {"source": "ledger.json", "available": True, **led} if led else \
        {"source": None, "available": False}
    section = {
        "modes": mode_figures(a, led) if led else {},
        "reconciliation": reconciliation(a, led) if led else None,
        "recoveries": flip_recoveries(summary),
        "provider_faults": provider_faults(a, summary, led),
        "interval_method": INTERVAL_METHOD,
        "notes": [],
    }
    if a.ledger_samples is not None:  # only then: an older run's summary stays as it was
        section["nonterminal_samples"] = sample_figures(a.ledger_samples)
    if not led and not a.reference:
        section["notes"].append("no ledger expected: the target is not the reference service "
                                "(a ledger is the reference pack's)")
    elif not led:
        section["notes"].append("no ledger: over-commits, releases and lost orders not verified"
                                + (" (a production log has none)" if a.kind == "log" else ""))
    elif not isinstance(led.get("by_mode"), dict):
        section["notes"].append("the ledger has no by_mode figures (an older service): no "
                                "over-commit USD or estimate error; rates use accepted provider "
                                "orders from timings.jsonl")
    elif not any(m["abs_estimate_error_usd"] for m in section["modes"].values()):
        section["notes"].append("the ledger gives no estimate-error quantiles (no confirmation "
                                "recorded, or an older service)")
    for key, value in section.items():
        # never shadow a ledger field: keep the ledger's, put ours beside it (see `part`)
        base[f"analysis_{key}" if key in base else key] = value
    return base


def part(safety: dict, key: str):
    """One of the figures this module adds (`modes`, `reconciliation`, ...), wherever
    `safety_section` had to put it."""
    return safety.get(f"analysis_{key}", safety.get(key))
