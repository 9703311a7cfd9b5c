"""analysis/latency_plan.py: each step's worth from a factorial run's gateway records."""

from __future__ import annotations

import numpy as np
import orjson

from analysis import latency_plan
from execbench import rundir as rd
from loadtests import spec as specs

FACTORS = ["provider_skip", "keepalive", "parallel_config", "async_logging"]
# what each step saves on the total (ms) in the synthetic service, and on executor_ms
TOTAL = {"provider_skip": -165.0, "keepalive": -28.0, "parallel_config": -18.0, "async_logging": -4.0}
EXECUTOR = {"provider_skip": -165.0, "keepalive": 0.0, "parallel_config": -18.0, "async_logging": 0.0}
EXPECTED = {"provider_skip": [-96, -56], "keepalive": [-40, -20], "parallel_config": [-30, -10],
            "async_logging": [-8, -2]}


def _write_run(run_dir, *, blocks=8, per_cell=150, seed=3, drift_ms=6.0):
    doc = {"name": "plan", "gateway": {}, "load": {"rate": 10.0, "provider_share": 1.0},
           "factorial": {"factors": FACTORS, "blocks": blocks, "cell_s": 3, "warmup_s": 3,
                         "expected": EXPECTED}}
    exp = specs.validate(doc, "plan.toml")
    rng = np.random.default_rng(seed)
    t0 = 1_800_000_000.0
    events, records = [], []
    for p in exp.phases:
        start = t0 + p.start_s
        events.append({"ts": rd.iso(start), "event": "phase_start", "phase": p.name, "mode": p.mode,
                       "group": p.group, "analyse": p.analyse,
                       **({"block": p.block} if p.block else {})})
        on = {f: False for f in FACTORS}
        if p.block:
            on = {f: (p.mode == "skip") if f == "provider_skip" else p.switches[f] == "on"
                  for f in FACTORS}
        drift = drift_ms * np.sin((p.block or 0) / 2)  # slow drift, the same on every cell of a block
        n = per_cell if p.block else 20
        for i in range(n):
            executor = 253 + drift + sum(EXECUTOR[f] for f in FACTORS if on[f]) + rng.gamma(4, 5) - 20
            total = executor + 43 + sum(TOTAL[f] - EXECUTOR[f] for f in FACTORS if on[f]) \
                + rng.gamma(4, 2) - 8
            records.append({
                "ts": rd.iso(start + (i + 0.5) * p.duration_s / n), "component": "gateway",
                "endpoint": "orders/instant/execute", "status": "success", "flow": "provider",
                "mode": p.mode, "flags": {"keepalive": "on" if on["keepalive"] else "off",
                                          "async_logging": "on" if on["async_logging"] else "off",
                                          "parallel_config": "on" if on["parallel_config"] else "off"},
                "durations_ms": {"total_ms": round(float(total), 3),
                                 "executor_ms": round(float(executor), 3),
                                 "gateway_ms": 1.0, "upstream_ms": round(float(executor) + 30, 3),
                                 "log_ms": 4.0}})
    records.append({"ts": rd.iso(t0 + 5), "component": "gateway", "status": "error",
                    "flow": None, "mode": None, "flags": {}, "durations_ms": {"total_ms": 10000.0}})
    (run_dir / rd.TIMELINE).write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    (run_dir / rd.GATEWAY_TIMINGS).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records)
                                               + b"not json\n")
    return exp.data


def test_main_effects_recover_each_steps_saving_with_intervals(tmp_path):
    raw = _write_run(tmp_path)
    assert latency_plan.applies(raw, tmp_path)
    lp = latency_plan.summarize(tmp_path, raw)
    assert lp["factors"] == FACTORS and lp["blocks"] == 8
    assert lp["records"] == 8 * 16 * 150 and lp["records_outside_blocks"] == 20
    assert lp["records_skipped"] == 2  # the error and the malformed line
    p50 = lp["metrics"]["total_ms"]["p50"]
    assert "bootstrap over 8 blocks" in p50["interval_method"]
    for f in FACTORS:
        e = p50["effects"][f]
        assert e["ci_low"] < TOTAL[f] < e["ci_high"], (f, e)
        assert e["ci_high"] - e["ci_low"] < 6  # +-3 ms at 150 orders a cell for this spread
        ex = lp["metrics"]["executor_ms"]["p50"]["effects"][f]
        assert ex["ci_low"] < EXECUTOR[f] < ex["ci_high"], (f, ex)
        assert ex.get("finding") is None  # the note's ranges are about the total
    # the findings against the note's ranges: Step 1 saves far more than the note's total range
    assert p50["effects"]["provider_skip"]["finding"] == "outside"
    assert p50["effects"]["keepalive"]["finding"] == "inside"
    # additive synthetic steps: no interaction
    for name, e in p50["effects"].items():
        if e["kind"] == "interaction":
            assert e["ci_low"] < 0 < e["ci_high"] or abs(e["value"]) < 1.5, (name, e)


def test_the_waterfall_goes_from_all_off_to_all_on(tmp_path):
    lp = latency_plan.summarize(tmp_path, _write_run(tmp_path))
    p50 = lp["metrics"]["total_ms"]["p50"]
    w = p50["waterfall"]
    assert w["start"] == p50["all_off"]["value"] and w["end"] == p50["all_on"]["value"]
    assert [s["factor"] for s in w["steps"]] == FACTORS
    assert abs(w["start"] + sum(s["value"] for s in w["steps"]) + w["rest"] - w["end"]) < 1e-9
    assert abs(w["end"] - w["start"] - sum(TOTAL.values())) < 6


def test_a_cell_is_the_records_own_flags_not_its_phase(tmp_path):
    """Orders in flight across a boundary ran in the previous cell: their flags say so."""
    raw = _write_run(tmp_path, blocks=2, per_cell=40)
    path = tmp_path / rd.GATEWAY_TIMINGS
    records = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    lp = latency_plan.summarize(tmp_path, raw)
    counts = lp["metrics"]["total_ms"]["p50"]["records_per_cell"]
    assert counts == {"min": 80, "max": 80}
    # move one record of an all-off phase to skip by its own flags: its cell changes with it
    for r in records:
        if r.get("status") == "success" and r["mode"] == "off" and not any(
                v == "on" for v in r["flags"].values()) and r["ts"] > rd.iso(1_800_000_010):
            r["mode"] = "skip"
            break
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    lp = latency_plan.summarize(tmp_path, raw)
    assert lp["metrics"]["total_ms"]["p50"]["records_per_cell"] == {"min": 79, "max": 81}
