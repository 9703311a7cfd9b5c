"""The latency plan's factorial run: what each step is worth, alone and together (issue 13).

Input: a run directory whose experiment has a `[factorial]` table (`latency-plan`) and whose
orders went through the gateway tier (gateway.jsonl). Each gateway record says which cell it ran
in — the executor's `mode` (provider_skip) and switches (`flags.parallel_config`) come back in
its answer, the gateway adds its own (`flags.keepalive`, `flags.async_logging`) — so a record's
cell is its own, never guessed from the clock: the orders in flight across a phase boundary
count in the cell they really ran in. The block is the phase the record's `ts` falls in (the
timeline's `phase_start` events carry it).

Per metric (the gateway's `total_ms`, the executor's `executor_ms`) and quantile (p50, p95):
main effects and two-way interactions (analysis/factorial.py), the all-off and all-on cells
with order-statistic intervals, each main effect beside the spec's expected range
(`[factorial.expected]`, the note's) with a finding: `inside`, `outside` or `overlaps`; the
client-measured totals of the all-off and all-on cells (requests.jsonl, the records sent after
the phase's switches were applied); and the waterfall from all-off to all-on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from execbench import rundir as rd

from . import factorial, stats

METRICS = ("total_ms", "executor_ms")
QUANTILES = (0.5, 0.95)
# the steps' note numbers (docs/provider-skip-step1.md), in the plan's order
STEP_ORDER = ("provider_skip", "keepalive", "parallel_config", "async_logging")


def applies(spec_raw: dict | None, run_dir: Path) -> bool:
    return bool(spec_raw and isinstance(spec_raw.get("factorial"), dict)
                and (run_dir / rd.GATEWAY_TIMINGS).exists())


def _blocks(events: list[dict]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Phase windows: starts (sorted), their block number (0: not analysed) and the phases."""
    phases = [e for e in events if e.get("event") == rd.EV_PHASE_START]
    phases.sort(key=lambda e: e["ts"])
    starts = np.array([e["ts"] for e in phases], dtype=np.float64)
    blocks = np.array([int(e.get("block") or 0) if e.get("analyse", True) else 0
                       for e in phases], dtype=np.int64)
    return starts, blocks, phases


def _gateway_records(path: Path, factors: list[str]) -> dict[str, np.ndarray]:
    ts, total, executor = [], [], []
    on: dict[str, list[bool]] = {f: [] for f in factors}
    skipped = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                r = orjson.loads(line)
                if r.get("component") != "gateway" or r.get("status") != "success" \
                        or r.get("flow") != "provider":
                    skipped += 1
                    continue
                d, flags = r["durations_ms"], r.get("flags") or {}
                t = rd.parse_iso(r["ts"])
                row = {f: (r.get("mode") == "skip") if f == "provider_skip" else flags.get(f) == "on"
                       for f in factors}
                tot, exe = float(d["total_ms"]), float(d.get("executor_ms", np.nan))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                skipped += 1
                continue
            ts.append(t)
            total.append(tot)
            executor.append(exe)
            for f in factors:
                on[f].append(row[f])
    out = {"ts": np.array(ts), "total_ms": np.array(total), "executor_ms": np.array(executor),
           "skipped": skipped}
    out.update({f: np.array(v, dtype=bool) for f, v in on.items()})
    return out


def _quantile(values: np.ndarray, q: float) -> dict | None:
    v = np.sort(values[~np.isnan(values)])
    if not len(v):
        return None
    e = stats.quantile_with_ci(v, q)
    return {"value": e.value, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": len(v)}


def _finding(effect: dict, expected: list[float] | None) -> str | None:
    if expected is None or effect is None or effect.get("ci_low") is None:
        return None
    lo, hi = expected
    if lo <= effect["ci_low"] and effect["ci_high"] <= hi:
        return "inside"
    if effect["ci_high"] < lo or effect["ci_low"] > hi:
        return "outside"
    return "overlaps"


def _client_totals(run_dir: Path, phases: list[dict], events: list[dict], factors: list[str]) -> dict:
    """Client-measured latency of the all-off and all-on cells: requests.jsonl records of those
    phases sent after every flip and switch into the phase was applied."""
    settled: dict[str, float] = {p["phase"]: p["ts"] for p in phases}
    for e in events:
        if e.get("event") in (rd.EV_FLIP_APPLIED, rd.EV_SWITCH_APPLIED) and e.get("phase") in settled:
            settled[e["phase"]] = max(settled[e["phase"]], e["ts"])
    all_on = ".".join(factors)
    groups = {p["phase"]: p.get("group") for p in phases if p.get("block")}
    values: dict[str, list[float]] = {"all-off": [], all_on: []}
    path = run_dir / rd.REQUESTS
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        for line in fh:
            try:
                r = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            group = groups.get(r.get("phase"))
            if group not in values or r.get("outcome") != "ok" or r.get("flow") != "provider" \
                    or r.get("latency_ms") is None:
                continue
            if rd.parse_iso(r["sent_ts"]) < settled[r["phase"]]:
                continue
            values[group].append(float(r["latency_ms"]))
    return {("all off" if g == "all-off" else "all on"): {
        f"p{round(q * 100)}": _quantile(np.array(v), q) for q in QUANTILES}
        for g, v in values.items() if v}


def summarize(run_dir: Path, spec_raw: dict) -> dict:
    conf = spec_raw["factorial"]
    factors = [f for f in STEP_ORDER if f in conf.get("factors", [])] + \
        [f for f in conf.get("factors", []) if f not in STEP_ORDER]
    expected = conf.get("expected") or {}
    events = rd.read_jsonl(run_dir / rd.TIMELINE) if (run_dir / rd.TIMELINE).exists() else []
    for e in events:
        if isinstance(e.get("ts"), str):
            e["ts"] = rd.parse_iso(e["ts"])
    starts, block_of, phases = _blocks(events)
    rec = _gateway_records(run_dir / rd.GATEWAY_TIMINGS, factors)
    n = len(rec["ts"])
    idx = np.searchsorted(starts, rec["ts"], side="right") - 1 if len(starts) else np.full(n, -1)
    block = np.where(idx >= 0, block_of[np.clip(idx, 0, None)] if len(starts) else 0, 0)
    keep = block > 0
    design = factorial.Design.from_columns({f: rec[f][keep] for f in factors}, block[keep])
    out: dict = {"factors": factors, "blocks": len(np.unique(block[keep])),
                 "records": int(keep.sum()), "records_outside_blocks": int((~keep).sum()),
                 "records_skipped": int(rec["skipped"]), "expected": expected,
                 "metrics": {}, "source": rd.GATEWAY_TIMINGS}
    all_on_cell = (1 << len(factors)) - 1
    for metric in METRICS:
        values = rec[metric][keep]
        per_q = {}
        for q in QUANTILES:
            fx = factorial.effects(values, design, q)
            for eff in fx["effects"].values():
                if eff["kind"] in ("main", "alone"):
                    factor = eff["flags"][0]
                    eff["expected"] = expected.get(factor) if metric == "total_ms" else None
                    eff["finding"] = _finding(eff, eff["expected"])
            cells = {"all off": _quantile(values[design.cell == 0], q),
                     "all on": _quantile(values[design.cell == all_on_cell], q)}
            per_q[f"p{round(q * 100)}"] = {**fx, "all_off": cells["all off"],
                                           "all_on": cells["all on"],
                                           "waterfall": _waterfall(fx, cells, factors)}
        out["metrics"][metric] = per_q
    out["client_total_ms"] = _client_totals(run_dir, phases, events, factors)
    return out


def _waterfall(fx: dict, cells: dict, factors: list[str]) -> dict | None:
    """From the all-off quantile, one bar per step (its main effect, with its interval), the
    rest (interactions and the difference between a quantile of a sum and the sum of effects),
    to the measured all-on quantile."""
    if fx.get("cell_quantiles") is None or cells["all off"] is None or cells["all on"] is None:
        return None
    start, end = cells["all off"]["value"], cells["all on"]["value"]
    steps = [{"factor": f, **{k: fx["effects"][f][k] for k in ("value", "ci_low", "ci_high")}}
             for f in factors]
    rest = end - start - sum(s["value"] for s in steps)
    return {"start": start, "steps": steps, "rest": rest, "end": end}


def effect_text(e: dict | None) -> str:
    """An effect as `+x.x [lo, hi]` ms (the terminal's and the report's cells)."""
    if not e or e.get("value") is None:
        return "-"
    if e.get("ci_low") is None:
        return f"{e['value']:+.1f}"
    return f"{e['value']:+.1f} [{e['ci_low']:+.1f}, {e['ci_high']:+.1f}]"


def _effect_of(lp: dict, metric: str, q: str, name: str) -> dict | None:
    return (lp["metrics"].get(metric, {}).get(q, {}).get("effects") or {}).get(name)


def step_rows(lp: dict) -> list[tuple[str, ...]]:
    """Per step, as text: main effect on total p50, alone on total p50, main on total p95,
    executor p50 and p95, the note's range, and the findings (main / alone)."""
    rows = []
    for f in lp["factors"]:
        main = _effect_of(lp, "total_ms", "p50", f)
        alone = _effect_of(lp, "total_ms", "p50", f"{f} alone")
        rng = lp["expected"].get(f)
        rows.append((f, effect_text(main), effect_text(alone),
                     effect_text(_effect_of(lp, "total_ms", "p95", f)),
                     effect_text(_effect_of(lp, "executor_ms", "p50", f)),
                     effect_text(_effect_of(lp, "executor_ms", "p95", f)),
                     f"[{rng[0]:g}, {rng[1]:g}]" if rng else "-",
                     (f"{(main or {}).get('finding') or '-'} / "
                      f"{(alone or {}).get('finding') or '-'}")))
    return rows


def significant_interactions(lp: dict) -> list[tuple[str, dict]]:
    """The two-way interactions on total p50 whose interval excludes 0."""
    effects = lp["metrics"].get("total_ms", {}).get("p50", {}).get("effects", {})
    return [(name, e) for name, e in effects.items()
            if e["kind"] == "interaction" and e.get("ci_low") is not None
            and (e["ci_low"] > 0 or e["ci_high"] < 0)]


def methods_text() -> str:
    return ("latency plan: main effects and two-way interactions of the 2^k factorial on the "
            "cells' quantiles (+-1 contrasts); 95% intervals = effect +- t(blocks - 1) x "
            "block-bootstrap standard error (analysis/factorial.py); each record's cell from its "
            "own flags (gateway.jsonl), its block from the phase its ts falls in")
