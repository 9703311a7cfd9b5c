"""From ingested tables to the summary (the DESIGN `summary.json` shape, plus detail).

Roles come from the spec's modes (`[roles]`, analysis/spec.py): the *baseline* is the first
analysed phase (or group) in the baseline mode (else the first analysed phase); the *treatment*
phases are the analysed phases in a treatment mode; the *rollback* is the last analysed
baseline-mode phase after a treatment one. The reference pack's defaults: `off`, and `skip`,
`skip_reserve`. Flows and metrics are the data's: whatever flows the records name, the timing
log's `durations_ms` keys, or, for a run without a timing log, the client's `latency_ms`,
`latency_from_intended_ms` and each `server_metrics` key. Statistics use the records a phase kept
(its own mode, status `success`); rejections and errors are counted, not timed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from execbench import rundir as rd

from . import recovery, stats
from .ingest import METRICS, Table, has_values, server_metric_names
from .phases import Attribution, PhaseWindow
from .spec import Spec

# the reference pack's flows, listed first when present (other flows follow in the data's order)
FLOWS = ("provider", "local")
SCHEMA = "execbench.summary/1"
ROLE_NAMES = ("baseline", "treatment", "rollback")
CLIENT_ONLY_NOTE = "no server timing log: client-side and response-reported metrics only"


@dataclass
class Settings:
    """Margins and windows; an experiment may override them in an `[analysis]` table."""

    rollback_margin_pct: float = 5.0  # rollback equals baseline: TOST margin
    local_margin_pct: float = 10.0  # local flow unchanged by the optimization
    error_rise_margin_pp: float = 0.5  # analyze-log: the error rate may rise this much at most
    compare_margin_pct: float = 5.0  # `compare`: run B not slower than run A by more than this
    recovery_tolerance_pct: float = 10.0
    recovery_window_s: float = 5.0
    recovery_step_s: float = 0.5
    recovery_hold_s: float = 10.0
    recovery_max_s: float = 60.0
    residual_max_usd: float = 0.01
    # the fewest records per compared group a check decides on: below it INCONCLUSIVE
    min_samples: int = 30
    # non-terminal recovery after a provider fault (ledger samples): the pre-fault level is the
    # largest count in this many seconds before the fault; recovered once the count is back at
    # or below that level plus a tolerance and stays there this long (or to the last sample)
    nonterminal_baseline_s: float = 10.0
    nonterminal_hold_s: float = 10.0

    @classmethod
    def from_spec(cls, spec: Spec | None) -> Settings:
        s = cls()
        for k, v in (spec.settings if spec else {}).items():
            if hasattr(s, k) and isinstance(v, (int, float)) and not isinstance(v, bool):
                setattr(s, k, type(getattr(s, k))(v))
        return s


def iso(ts: float | None) -> str | None:
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Analysis:
    kind: str  # "run" | "log"
    source: str
    timings: Table
    attribution: Attribution
    settings: Settings
    spec: Spec | None = None
    requests: Table | None = None
    ledger: dict | None = None
    ingest_notes: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    # provider fault settings as the run applied them (timeline `provider_set` events)
    provider_events: list[dict] = field(default_factory=list)
    # the runner's samples of the ledger during the run (timeline `ledger` events), or None
    ledger_samples: dict | None = None
    # no timing log: `timings` holds the client records (placed by their send time, status
    # from their outcome, mode from served_mode), and the primary metric is the client's
    client_only: bool = False
    primary: str = "executor_ms"  # the metric plotted over time, compared, recovered
    reference: bool = True  # the reference pack (ledger expected, the seed's claims apply)
    # the checks file applied besides the experiment's (the reference pack's seed claims for
    # reference runs and logs by default): (path, source label), or None
    checks_file: tuple | None = None

    # what flows()/metrics() found (the tables do not change once ingested)
    _cache: dict = field(default_factory=dict, repr=False)

    # ---- what the data has
    def flows(self) -> list[str]:
        """Flows with any record in a phase, the reference flows first."""
        if "flows" not in self._cache:
            self._cache["flows"] = self._flows()
        return list(self._cache["flows"])

    def _flows(self) -> list[str]:
        t = self.timings
        inside = self.attribution.phase_index >= 0
        codes = set(np.unique(t.cats["flow"][inside]).tolist())
        names = [f for i, f in enumerate(t.levels["flow"]) if i in codes]
        # a generic target's flows in the order its spec lists its requests
        target = (self.spec.raw.get("target") if self.spec else None) or {}
        reqs = target.get("requests") if isinstance(target, dict) else None
        listed = [r.get("flow") for r in reqs if isinstance(r, dict)] \
            if isinstance(reqs, list) else []
        first = [*FLOWS, *listed]
        return list(dict.fromkeys([f for f in first if f in names] + names))

    def metrics(self) -> list[str]:
        """The primary table's metrics that hold a value: the timing log's durations (the
        executor first), or the client's latencies and server metrics."""
        if "metrics" not in self._cache:
            self._cache["metrics"] = self._metrics()
        return list(self._cache["metrics"])

    def _metrics(self) -> list[str]:
        fl = self.timings.floats
        if self.client_only:
            names = [*rd.CLIENT_METRICS, *server_metric_names(self.timings)]
        else:
            names = list(METRICS)
        return [m for m in names if has_values(fl, m)]

    def client_metrics(self) -> list[str]:
        """requests.jsonl's metrics (a run with a timing log): latencies and server metrics."""
        r = self.requests
        if r is None or r.n == 0 or self.client_only:
            return []
        return [*rd.CLIENT_METRICS, *server_metric_names(r)]

    def in_primary(self, metric: str) -> bool:
        return metric in self.timings.floats

    # ---- selections
    def phase_names(self, analysed_only: bool = True) -> list[str]:
        return [w.name for w in self.attribution.windows if w.analysed or not analysed_only]

    @property
    def factorial(self) -> dict | None:
        """The spec's [factorial] design (latency-plan): its phases are cells x blocks, and the
        cells (the phases' groups) are what is reported and compared."""
        f = self.spec.raw.get("factorial") if self.spec is not None else None
        return f if isinstance(f, dict) else None

    def units(self) -> dict[str, list[int]]:
        """Analysed phases grouped by their `group` (a phase alone is its own group), in order
        of first appearance: the things compared with each other."""
        out: dict[str, list[int]] = {}
        for i, w in enumerate(self.attribution.windows):
            if w.analysed:
                out.setdefault(w.unit, []).append(i)
        return out

    def unit_names(self) -> list[str]:
        return list(self.units())

    def pooled_groups(self) -> dict[str, list[str]]:
        """Groups of more than one phase (their pooled statistics are reported too)."""
        ws = self.attribution.windows
        return {u: [ws[i].name for i in idx] for u, idx in self.units().items()
                if len(idx) > 1 or ws[idx[0]].name != u}

    def indices(self, name: str) -> list[int]:
        names = [w.name for w in self.attribution.windows]
        if name in names:
            return [names.index(name)]
        units = self.units()
        if name in units:
            return units[name]
        raise KeyError(name)

    def resolve(self, name: str, mode: str | None = None) -> list[str]:
        """The phases or groups a check's `phase` names: a phase or group (these win), a role
        (`baseline`, `treatment`: every treatment phase, `rollback`), or `mode:<m>` (every
        analysed group in mode m). `mode` keeps only the units in that mode (units without a
        mode, such as a log's `after`, stay). [] when a role names nothing in this run;
        KeyError for a name that is neither."""
        names = [w.name for w in self.attribution.windows]
        if name in names or name in self.units():
            return [name]
        roles = self.roles()
        if name == "baseline":
            out = [roles["baseline"]] if roles["baseline"] else []
        elif name == "treatment":
            out = list(roles["treatment"])
        elif name == "rollback":
            out = [roles["rollback"]] if roles["rollback"] else []
        elif name.startswith("mode:"):
            out = [u for u in self.unit_names() if self.mode_of(u) == name[5:]]
        else:
            raise KeyError(name)
        if mode is not None:
            out = [u for u in out if self.mode_of(u) in (mode, None)]
        return out

    def window(self, name: str) -> PhaseWindow | None:
        ws = self.attribution.windows
        try:
            return ws[self.indices(name)[0]]
        except KeyError:
            return None

    def mode_of(self, name: str) -> str | None:
        modes = {self.attribution.windows[i].mode for i in self.indices(name)}
        return modes.pop() if len(modes) == 1 else None

    def mask(self, name: str, flow: str, *, success: bool = True, metric: str | None = None
             ) -> np.ndarray:
        """The kept records of a phase/group and flow; `success`: only successes, and for a
        client latency (`metric`) also the failures, censored (see `censored_metric`)."""
        t = self.timings
        m = self.attribution.kept & np.isin(self.attribution.phase_index, self.indices(name))
        m &= t.cats["flow"] == t.code("flow", flow)
        if success:
            ok = t.cats["status"] == t.code("status", "success")
            if self.client_only and censored_metric(metric):
                ok |= t.cats["status"] == t.code("status", "error")
            m &= ok
        return m

    def values(self, name: str, flow: str, metric: str | None = None) -> np.ndarray:
        """The kept success values of a phase/group, flow and metric (a client latency: with
        the failures' elapsed times): from the primary table when it has the metric, else from
        requests.jsonl (a run with a timing log)."""
        metric = metric or self.primary
        if not self.in_primary(metric):
            return client_values(self, name, flow, metric)
        v = self.timings.floats[metric][self.mask(name, flow, metric=metric)]
        return v[~np.isnan(v)]

    def role_modes(self) -> tuple[str | None, tuple[str, ...]]:
        if self.spec is not None:
            return self.spec.baseline_mode, self.spec.treatment_modes
        return rd.REFERENCE_BASELINE, rd.REFERENCE_TREATMENT

    def roles(self) -> dict:
        ws = self.attribution.windows
        units = self.units()
        first = {u: ws[idx[0]] for u, idx in units.items()}
        names = list(units)
        base_mode, treat_modes = self.role_modes()
        base = next((u for u in names if self.mode_of(u) == base_mode),
                    names[0] if names else None)
        treat = [u for u in names if self.mode_of(u) in treat_modes and u != base]
        rollback = None
        if self.factorial is not None:
            # every factor off against every factor on (the cells' labels, spec.factorial_cell);
            # the cells in between are the factorial's business (summary `latency_plan`)
            all_on = ".".join(self.factorial.get("factors") or [])
            base = "all-off" if "all-off" in names else base
            treat = [all_on] if all_on in names else []
        elif treat:
            after = [u for u in names if self.mode_of(u) == base_mode and u != base
                     and first[u].start > first[treat[0]].start]
            rollback = after[-1] if after else None
        if self.kind == "log":
            treat = [u for u in names if u == "after"]
            base_mode, treat_modes = None, ()
        rates = {w.rate for w in ws if w.analysed}
        # `optimized`: the treatment's older name, kept for readers of older summaries
        return {"baseline": base, "treatment": treat, "optimized": treat, "rollback": rollback,
                "baseline_mode": base_mode, "treatment_modes": list(treat_modes),
                "steady_load": len(rates) <= 1}


def phase_statistics(a: Analysis) -> tuple[dict, dict]:
    t = a.timings
    phases: dict = {}
    info: dict = {}
    status_levels = t.levels["status"]
    # status counts cover the phase's records in its mode, analysed or not: a warmup's are
    # counted too (`kept`, the records in the statistics, stays 0 for it)
    own = a.attribution.own_mode if a.attribution.own_mode is not None else a.attribution.kept
    wanted = [w.name for w in a.attribution.windows
              if w.analysed and (a.factorial is None or w.group in (None, w.name))]
    wanted += [g for g in a.pooled_groups() if g not in wanted]
    unit_stats = _units_stats(a, wanted)
    for w in a.attribution.windows:
        c = a.attribution.counts[w.name]
        k = [x.name for x in a.attribution.windows].index(w.name)
        in_phase = a.attribution.phase_index == k
        per_flow_status = {}
        for flow in a.flows():
            fm = in_phase & own & (t.cats["flow"] == t.code("flow", flow))
            per_flow_status[flow] = {s: int((fm & (t.cats["status"] == i)).sum())
                                     for i, s in enumerate(status_levels)}
        dur = w.duration_s
        info[w.name] = {
            "mode": w.mode, "analysed": w.analysed, "start": iso(w.start), "end": iso(w.end),
            "duration_s": dur, "records": c["records"], "kept": c["kept"],
            "flip_window": c["flip_window"], "without_mode": c["without_mode"],
            "status": per_flow_status,
            # errors among the records served in the previous mode (the flip window): left out
            # of the statistics, but an error during a flip is still an error
            "flip_window_errors": int((in_phase & ~own
                                       & (t.cats["status"] == t.code("status", "error"))).sum()),
            "throughput_rps": (c["kept"] / dur) if w.analysed and dur > 0 else None,
        }
        info[w.name]["group"] = w.group
        info[w.name]["late_sends"] = late_sends(a, [w.name])
        if w.analysed and (a.factorial is None or w.group in (None, w.name)):
            # a factorial's phases are reported by cell (their group), not one by one
            phases[w.name] = unit_stats[w.name]
    for group, members in a.pooled_groups().items():
        if group in phases:
            continue  # a group named like one of the phases: the phase wins
        phases[group] = unit_stats[group]
        ph = [info[m] for m in members]
        info[group] = {
            "mode": a.mode_of(group), "analysed": True, "pooled_from": members,
            "start": ph[0]["start"], "end": ph[-1]["end"],
            "duration_s": sum(x["duration_s"] for x in ph),
            "records": sum(x["records"] for x in ph), "kept": sum(x["kept"] for x in ph),
            "flip_window": 0, "without_mode": sum(x["without_mode"] for x in ph),
            "status": {f: {k: sum(x["status"][f].get(k, 0) for x in ph)
                           for k in status_levels} for f in a.flows()},
            "throughput_rps": None, "group": group,
            "late_sends": late_sends(a, members),
        }
    return phases, info


def late_ms_threshold(a: Analysis) -> float | None:
    load = (a.spec.raw.get("load") if a.spec else None) or {}
    v = load.get("late_ms") if isinstance(load, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def late_sends(a: Analysis, phases: list[str]) -> dict | None:
    """The open-model generator's late sends in these phases (requests.jsonl, by the client's
    phase): `count` (records with `"late": true`; null when no record says), `requests`,
    `max_lateness_ms` (the largest sent - intended, from latency_from_intended_ms -
    latency_ms, over every request of the phases) and `late_ms` (the spec's threshold).
    None without requests.jsonl."""
    r = a.requests
    if r is None or r.n == 0:
        return None
    pm = _client_phase_mask_of(a, phases)
    late = r.floats["late"][pm]
    known = ~np.isnan(late)
    lateness = (r.floats["latency_from_intended_ms"] - r.floats["latency_ms"])[pm]
    lateness = lateness[~np.isnan(lateness)]
    return {"count": int(late[known].sum()) if known.any() else None,
            "requests": int(pm.sum()),
            "max_lateness_ms": round(max(float(lateness.max()), 0.0), 3) if lateness.size
            else None,
            "late_ms": late_ms_threshold(a)}


def censored_metric(metric: str | None) -> bool:
    """A client latency: a failed or timed-out request took at least its elapsed time, so it
    enters the latency's quantiles at that time (right-censored: the quantiles are then lower
    bounds where failures reach the tail), counted as `censored`. Dropping it would make a
    stall longer than the client's timeout vanish from p99."""
    return metric in rd.CLIENT_METRICS


def _with_censored(d: dict | None, values: np.ndarray, failed: np.ndarray) -> dict | None:
    if d is not None:
        d["censored"] = int((failed & ~np.isnan(values)).sum())
    return d


def _units_stats(a: Analysis, names: list[str]) -> dict:
    """{unit: {flow: {metric: stats.describe}}} for these phases/groups, metric by metric (a
    metric's column is read once for every unit and flow: the DuckDB engine keeps the stage
    columns on disk, one in memory at a time); the same dicts, in the same order, as one unit
    after another."""
    t = a.timings
    metrics = a.metrics()
    error = t.cats["status"] == t.code("status", "error")
    masks: dict = {}
    out: dict = {}
    for name in names:
        out[name] = {}
        for flow in a.flows():
            m = a.mask(name, flow)
            if m.any():
                masks[(name, flow)] = m
                out[name][flow] = {}
    from concurrent.futures import ThreadPoolExecutor

    # the groups of a metric described in two threads (numpy's sort, most of the time, releases
    # the GIL): the same function on the same values, so the same numbers
    with ThreadPoolExecutor(max(1, min(2, len(os.sched_getaffinity(0))))) as pool:
        for metric in metrics:
            col = t.floats[metric]
            sel = {key: a.mask(*key, metric=metric) if censored_metric(metric) else m
                   for key, m in masks.items()}
            done = dict(zip(sel, pool.map(lambda mm, c=col: stats.describe(c[mm]), sel.values())))
            for (name, flow), d in done.items():
                mm = sel[(name, flow)]
                if censored_metric(metric) and a.client_only:
                    d = _with_censored(d, col[mm], error[mm])
                if d is not None:
                    out[name][flow][metric] = d
    return out


def client_statistics(a: Analysis) -> dict:
    """requests.jsonl per phase (the client's phase field) and flow: its latencies and each
    server metric. Empty for a run without a timing log: there the client records are the
    primary table and their statistics are `phases`."""
    r = a.requests
    if r is None or r.n == 0 or a.client_only:
        return {}
    out: dict = {}
    ok = r.cats["outcome"] == r.code("outcome", "ok")
    failed = r.cats["outcome"] == r.code("outcome", "failure")
    names = a.phase_names() + [g for g in a.pooled_groups() if g not in a.phase_names()]
    flows = [f for f in FLOWS if f in r.levels["flow"]] + [f for f in r.levels["flow"]
                                                           if f not in FLOWS]
    metrics = a.client_metrics()
    for phase in names:
        pm = _client_phase_mask(a, phase)
        if not pm.any():
            continue
        entry: dict = {"outcomes": {o: int((pm & (r.cats["outcome"] == i)).sum())
                                    for i, o in enumerate(r.levels["outcome"])}}
        for flow in flows:
            fm = pm & ok & (r.cats["flow"] == r.code("flow", flow))
            if not fm.any():
                continue
            entry[flow] = {}
            for metric in metrics:
                mm = fm | (pm & failed & (r.cats["flow"] == r.code("flow", flow))) \
                    if censored_metric(metric) else fm
                d = stats.describe(r.floats[metric][mm])
                if censored_metric(metric):
                    d = _with_censored(d, r.floats[metric][mm], failed[mm])
                if d is not None:
                    entry[flow][metric] = d
        out[phase] = entry
    return out


def _client_phase_mask(a: Analysis, name: str) -> np.ndarray:
    return _client_phase_mask_of(a, [a.attribution.windows[i].name for i in a.indices(name)])


def _client_phase_mask_of(a: Analysis, phases: list[str]) -> np.ndarray:
    """The client records of these phases: by the client's phase field, or, for a run without
    a timing log (the client records are the primary table), by their attribution to them."""
    if a.client_only:
        names = [w.name for w in a.attribution.windows]
        return np.isin(a.attribution.phase_index, [names.index(p) for p in phases if p in names])
    r = a.requests
    return np.isin(r.cats["phase"], [r.code("phase", m) for m in phases])


def client_values(a: Analysis, phase: str, flow: str, metric: str = "latency_ms") -> np.ndarray:
    r = a.requests
    if r is None or metric not in r.floats:
        return np.empty(0)
    m = _client_phase_mask(a, phase) & (r.cats["flow"] == r.code("flow", flow))
    ok = r.cats["outcome"] == r.code("outcome", "ok")
    if censored_metric(metric):
        ok |= r.cats["outcome"] == r.code("outcome", "failure")
    m &= ok
    v = r.floats[metric][m]
    return v[~np.isnan(v)]


def compared_metrics(a: Analysis) -> list[tuple[str, str]]:
    """(key in a comparison, metric) for every metric compared between phases: the primary
    table's (a timing log: executor_ms, its stages are in the stage breakdown; a run without
    one: the client's latencies and every server metric), then requests.jsonl's for a run with
    a timing log (`client_latency_ms` for its latency, server metrics under their own name)."""
    if a.client_only:
        out = [(m, m) for m in a.metrics()]
    else:
        out = [("executor_ms", "executor_ms")]
    for m in a.client_metrics():
        if m == rd.R_LATENCY_MS:
            out.append(("client_latency_ms", m))
        elif m not in rd.CLIENT_METRICS and m not in METRICS:
            out.append((m, m))
    return out


def comparisons(a: Analysis, roles: dict) -> list[dict]:
    base = roles["baseline"]
    out = []
    if base is None:
        return out
    metrics = compared_metrics(a)
    for name in a.unit_names():
        if name == base:
            continue
        margin = a.settings.rollback_margin_pct
        entry = {"name": f"{base}->{name}", "ref": base, "phase": name, "flows": {}}
        for flow in a.flows():
            # the reference pack's local flow is not the optimization's: its own margin
            m = a.settings.local_margin_pct if (a.reference and flow == "local"
                                                and name != roles["rollback"]) else margin
            res = {}
            for key, metric in metrics:
                x, y = a.values(base, flow, metric), a.values(name, flow, metric)
                if len(x) and len(y):
                    res[key] = stats.compare_samples(x, y, margin_pct=m)
            if res:
                entry["flows"][flow] = res
        out.append(entry)
    return out


def recoveries(a: Analysis, roles: dict | None = None) -> list[dict]:
    """Recovery after each flip, per flow: the user-visible series (every success record of
    the flow, whatever mode it ran in) against the level it should reach: the baseline's p50
    when the flip returns to the baseline's mode (a rollback), else the target phase's steady
    p50 (see analysis/recovery.py)."""
    out = []
    base = (roles or {}).get("baseline")
    names = [w.name for w in a.attribution.windows]
    base_mode = a.mode_of(base) if base in names else None
    for k, w in enumerate(a.attribution.windows):
        if w.flip_requested is None:
            continue
        to_baseline = (base_mode is not None and w.mode == base_mode and w.name != base
                       and a.attribution.windows[names.index(base)].analysed)
        entry = {"phase": w.name, "mode": w.mode, "requested_at": iso(w.flip_requested),
                 "applied_at": iso(w.flip_applied),
                 "apply_lag_s": (w.flip_applied - w.flip_requested)
                 if w.flip_applied is not None else None,
                 "flows": recovery_after(a, k, w.flip_requested,
                                         target_phase=base if to_baseline else None)}
        out.append(entry)
    return out


def recovery_after(a: Analysis, k: int, event_ts: float, *, target_phase: str | None = None
                   ) -> dict:
    """Per flow: seconds from `event_ts` (a flip, the end of a provider fault) until the rolling
    p50 settles within the tolerance of the level it should reach: `target_phase`'s p50 (every
    analysed record of it; the baseline, for a rollback), else window k's steady p50 (its
    second half); the previous window's p50 dates the change (analysis/recovery.py). Flows
    with fewer than 5 records at the target are left out."""
    t = a.timings
    s = a.settings
    w = a.attribution.windows[k]
    ts = t.times["ts"]
    success = t.cats["status"] == t.code("status", "success")
    out = {}
    metric = t.floats[a.primary]
    names = [x.name for x in a.attribution.windows]
    for flow in a.flows():
        fm = success & (t.cats["flow"] == t.code("flow", flow)) & ~np.isnan(metric)
        steady = fm & a.attribution.kept & (a.attribution.phase_index == k)
        steady &= ts >= w.start + w.duration_s / 2
        if steady.sum() < 5:
            continue
        level = steady
        if target_phase is not None:
            level = fm & a.attribution.kept & (a.attribution.phase_index
                                                == names.index(target_phase))
            if level.sum() < 5:
                level = steady
        target = float(np.median(metric[level]))
        prev = fm & a.attribution.kept & (a.attribution.phase_index == k - 1) if k > 0 \
            else np.zeros_like(fm)
        before = float(np.median(metric[prev])) if prev.sum() >= 5 else None
        # sparse series (a quiet production log): widen the window to ~50 records
        rate = steady.sum() / max(w.duration_s / 2, 1e-9)
        window = max(s.recovery_window_s, 50.0 / rate)
        step = s.recovery_step_s * window / s.recovery_window_s
        hold = max(s.recovery_hold_s, 2 * window)
        span_s = max(w.end - event_ts, 0.0)
        dated = before is not None and abs(before - target) > abs(target) * \
            s.recovery_tolerance_pct / 100
        if window > s.recovery_window_s and (
                window > span_s / 2 if dated
                else window > span_s / 4 or window / 4 > s.recovery_max_s):
            # too sparse for the method: the widened window leaves no room for the hold after
            # it (a change point dates the change finer than the window), or, with nothing to
            # date it by, it would date the change no finer than w/4, coarser than the
            # recovery being judged or than the span it lies in
            out[flow] = {"target_p50": target, "tolerance_pct": s.recovery_tolerance_pct,
                         "window_s": window, "step_s": step, "hold_s": hold,
                         "recovery_s": None, "at_most_s": None, "recovered_at": None,
                         "excursions_after": None, "series": {"t": [], "p50": []},
                         "resolvable": False,
                         "note": f"too few records to resolve: ~50-record windows are "
                                 f"{window:.0f} s wide in the {span_s:.0f} s after the event"}
            continue
        span = fm & (ts >= event_ts - window) & (ts < w.end)
        out[flow] = recovery.recovery_time(
            ts[span], metric[span], flip_ts=event_ts, end_ts=w.end,
            target=target, tolerance_pct=s.recovery_tolerance_pct,
            window_s=window, step_s=step,
            hold_s=min(hold, max(w.end - event_ts, 0.0)), before=before,
            target_phase=target_phase if level is not steady else w.name)
    return out


def build_summary(a: Analysis) -> dict:
    from .checks import evaluate, run_verdict
    from .safety import safety_section

    roles = a.roles()
    phases, info = phase_statistics(a)
    summary = {
        "schema": SCHEMA,
        "kind": a.kind,
        "source": a.source,
        "pack": "reference" if a.reference else "generic",
        "client_only": a.client_only,
        "primary_metric": a.primary,
        "flows": a.flows(),
        "metrics": a.metrics(),
        "experiment": a.spec.name if a.spec else None,
        "generated_at": iso(datetime.now(UTC).timestamp()),
        "verdict": None,
        "checks": [],
        "findings": [],
        "roles": roles,
        "phases": phases,
        "phase_info": info,
        "client": client_statistics(a),
        "comparisons": comparisons(a, roles),
        "safety": None,
        "rollback": None,
        # a factorial run flips at almost every one of its short cells: no recovery to judge
        "flips": recoveries(a, roles) if a.factorial is None else [],
        "ingest": ingest_report(a),
        "settings": a.settings.__dict__.copy(),
        "methods": methods(a),
    }
    rb = roles["rollback"] or (roles["optimized"][0] if a.kind == "log" and roles["optimized"]
                               else None)
    flip = next((f for f in summary["flips"] if f["phase"] == rb), None)
    if flip is not None:
        # the rollback's recovery is quoted for the provider flow (the reference pack's
        # optimized one), else for the first flow that has one
        flow = "provider" if "provider" in flip["flows"] else next(iter(flip["flows"]), None)
        prov = flip["flows"].get(flow) if flow else None
        summary["rollback"] = {"phase": rb, "requested_at": flip["requested_at"],
                               "applied_at": flip["applied_at"], "apply_lag_s": flip["apply_lag_s"],
                               "recovery_s": prov["recovery_s"] if prov else None,
                               "recovery_at_most_s": prov["at_most_s"] if prov else None,
                               "resolvable": prov.get("resolvable", True) if prov else None,
                               "flow": flow}
    summary["safety"] = safety_section(a, summary)
    summary["latency_plan"] = latency_plan_section(a)
    if summary["latency_plan"] is not None:
        from .latency_plan import methods_text

        summary["methods"]["latency_plan"] = methods_text()
    checks, findings = evaluate(a, summary)
    summary["checks"] = checks
    summary["findings"] = findings
    summary["verdict"] = run_verdict(checks)
    a.summary = summary
    return summary


def latency_plan_section(a: Analysis) -> dict | None:
    """A factorial run through the gateway tier (latency-plan): analysis/latency_plan.py."""
    from pathlib import Path

    from . import latency_plan

    if a.kind != "run" or a.spec is None or not latency_plan.applies(a.spec.raw, Path(a.source)):
        return None
    return latency_plan.summarize(Path(a.source), a.spec.raw)


def ingest_report(a: Analysis) -> dict:
    def one(t: Table | None):
        if t is None:
            return None
        return {"path": str(t.path) if t.path else None, "records": t.n, "lines": t.lines_read,
                "blank_lines": t.blank_lines, "malformed": t.malformed.as_dict()}

    return {"timings": None if a.client_only else one(a.timings), "requests": one(a.requests),
            "outside_phases": a.attribution.outside, "notes": a.attribution.notes + a.ingest_notes}


def methods(a: Analysis) -> dict:
    s = a.settings
    return {
        "quantiles": "exact, on raw records: numpy 'linear' (Hyndman-Fan type 7)",
        "quantile_ci": "distribution-free order-statistic interval, 95% (binomial ranks, equal "
                       "tails); no bound where n is too small for it (e.g. p99 below 300 values)",
        "shift": "Hodges-Lehmann (median of all pairwise differences, computed exactly by "
                 "selection), distribution-free 95% CI at the Mann-Whitney critical ranks "
                 "(exact null distribution of U below 50 per sample, normal approximation above)",
        "test": "Mann-Whitney U, two-sided (scipy.stats.mannwhitneyu)",
        "equivalence": "ratio of medians within 1 +- margin: equivalent when its 90% interval "
                       "(MOVER from the two order-statistic intervals; two one-sided tests at "
                       "alpha=0.05) lies inside, different when the 95% one lies outside",
        "recovery": f"recovered when a centred rolling p50 ({s.recovery_window_s:g} s windows "
                    f"every {s.recovery_step_s:g} s, widened to ~50 records for sparse series, "
                    f"post-flip records only) is within +-{s.recovery_tolerance_pct:g}% of the "
                    "level the flip should reach (a rollback: the baseline's p50; else the "
                    f"target phase's steady p50) and stays there for {s.recovery_hold_s:g} s; "
                    "the time is then the change point that best splits the records between "
                    "the previous phase's level and that one (0/1 loss on a log scale); never "
                    "in the band: not recovered (benchmarks/recovery_bias.py measures the "
                    "error)",
        "records": "phase statistics use status=success records whose own mode is the phase's"
                   + (" (client records: outcome ok, mode from served_mode or the phase's; "
                      "those sent between a flip's request and its application left out)"
                      if a.client_only else ""),
        "error_rate": "error_rate_below: the error ratio's 95% Wilson score interval; "
                      "analyze-log's error rise: Newcombe's hybrid score interval of the "
                      "difference at 90% (one-sided 95% each way) against "
                      f"{s.error_rise_margin_pp:g} percentage points",
    }
