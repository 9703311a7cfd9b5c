"""Synthetic run directories and timing logs with known distributions (fixed seeds).

Used by the tests and the benchmark, and handy to try the report without running load:
`python -m analysis.synthetic OUT_DIR --records 100000`. Per stage the latency is lognormal
(median below, sigma 0.25); `executor_ms` is the sum of the stages plus a lognormal overhead, so
the provider flow lands near the seed's 253 ms (off) and 88 ms (skip), the local flow near 250 ms.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from execbench.contract import METRICS, STAGES

# stage medians (ms) when the stage runs; a skipped stage is 0
STAGE_MEDIANS = {
    "config_fetch_ms": 21.0,
    "single_margin_ms": 12.0,
    "free_margin_ms": 17.0,
    "user_lock_ms": 8.0,
    "orders_fetch_ms": 35.0,
    "total_margin_ms": 92.0,
    "persist_ms": 13.0,
    "provider_send_ms": 5.0,
}
SKIPPED_IN_SKIP = ("user_lock_ms", "orders_fetch_ms", "total_margin_ms")
OVERHEAD_MEDIAN = {"off": 40.0, "skip": 12.0, "skip_reserve": 16.0}
# the client's send delays are exponential with a 2 ms mean: above this they are late sends
LATE_MS = 10.0
SIGMA = 0.25


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class PhaseSpec:
    name: str
    duration_s: float
    mode: str
    analysed: bool = True
    # provider fault settings applied at the phase's start ([phases.provider] and a timeline
    # `provider_set` event), e.g. {"outage": True}; None leaves the provider as it was
    provider: dict | None = None


DEFAULT_PHASES = (
    PhaseSpec("warmup", 20, "off", False),
    PhaseSpec("baseline", 60, "off"),
    PhaseSpec("optimized", 60, "skip"),
    PhaseSpec("rollback", 60, "off"),
)


@dataclass
class RunSpec:
    phases: tuple[PhaseSpec, ...] = DEFAULT_PHASES
    records: int = 20000
    seed: int = 1
    start: float = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()
    provider_share: float = 0.5
    flip_lag_s: float = 0.4  # after a flip is requested, requests keep the old mode this long
    reject_rate: float = 0.01
    error_rate: float = 0.0
    overcommits: dict = field(default_factory=lambda: {"off": 0, "skip": 7, "skip_reserve": 0})
    orders_nonterminal: int = 0
    # multiply provider executor_ms by this factor in the named phase (e.g. a regression)
    slowdown: dict = field(default_factory=dict)
    malformed_lines: int = 0
    experiment_name: str = "provider-skip-ab"
    # (from_s, to_s, factor): provider executor_ms multiplied by factor between these offsets
    # from the run's start (a slowdown that does not follow phase boundaries)
    slow_spans: tuple = ()
    # "full": the service's ledger with by_mode (provider orders, over-commit USD, estimate-error
    # quantiles); "old": totals only, as older services wrote it; "none": no ledger.json
    ledger: str = "full"
    # the runner's ledger samples (timeline `ledger` events) every this many seconds; 0: none,
    # as an older runner wrote it. The non-terminal count is uniform in 0..nonterminal_noise;
    # during a provider outage a backlog grows on top by nonterminal_growth a second up to
    # nonterminal_cap, and after the outage it drains linearly over nonterminal_drain_s
    ledger_interval_s: float = 0.0
    nonterminal_noise: int = 3
    nonterminal_growth: float = 10.0
    nonterminal_cap: float = 40.0
    nonterminal_drain_s: float = 3.0


def sample_records(rng: np.random.Generator, flows: np.ndarray, modes: np.ndarray) -> dict:
    """Durations for each record given its flow ('provider'/'local') and mode."""
    n = len(flows)
    provider = flows == "provider"
    skipping = provider & ((modes == "skip") | (modes == "skip_reserve"))
    cols = {}
    total = np.zeros(n)
    for stage in STAGES:
        v = STAGE_MEDIANS[stage] * rng.lognormal(0.0, SIGMA, n)
        if stage in SKIPPED_IN_SKIP:
            v[skipping] = 0.0
        if stage == "provider_send_ms":
            v[~provider] = 0.0
        cols[stage] = v
        total += v
    overhead = np.where(skipping, np.where(modes == "skip_reserve", OVERHEAD_MEDIAN["skip_reserve"],
                                           OVERHEAD_MEDIAN["skip"]), OVERHEAD_MEDIAN["off"])
    total += overhead * rng.lognormal(0.0, SIGMA, n)
    cols["executor_ms"] = total
    return cols


def write_run(out: Path, spec: RunSpec | None = None) -> Path:
    """Write a complete run directory (experiment.toml, timeline, timings, requests, ledger)."""
    spec = spec or RunSpec()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    starts = [spec.start]
    for p in spec.phases:
        starts.append(starts[-1] + p.duration_s)
    run_end = starts[-1]
    ts = np.sort(rng.uniform(spec.start, run_end, spec.records))
    phase_idx = np.searchsorted(np.array(starts[1:]), ts, side="right")
    phase_modes = np.array([p.mode for p in spec.phases], dtype=object)
    modes = phase_modes[phase_idx]
    # requests already past the flag read keep the previous phase's mode for a moment
    for i in range(1, len(spec.phases)):
        lag = (ts >= starts[i]) & (ts < starts[i] + spec.flip_lag_s)
        modes[lag] = spec.phases[i - 1].mode
    flows = np.where(rng.random(spec.records) < spec.provider_share, "provider", "local")
    d = sample_records(rng, flows, modes)
    for name, factor in spec.slowdown.items():
        k = [p.name for p in spec.phases].index(name)
        m = (phase_idx == k) & (flows == "provider")
        d["executor_ms"][m] *= factor
    for lo, hi, factor in spec.slow_spans:
        m = (ts >= spec.start + lo) & (ts < spec.start + hi) & (flows == "provider")
        d["executor_ms"][m] *= factor
    u = rng.random(spec.records)
    status = np.where(u < spec.error_rate, "error",
                      np.where(u < spec.error_rate + spec.reject_rate, "rejected", "success"))

    with open(out / "timings.jsonl", "wb") as fh:
        rows = np.stack([np.round(d[k], 3) for k in METRICS], axis=1).tolist()
        lines = []
        for i in range(spec.records):
            r = rows[i]
            rec = {"ts": iso(ts[i]), "component": "python_api",
                   "endpoint": "orders/instant/execute", "status": status[i],
                   "order_id": f"o-{i:08d}", "flow": flows[i], "mode": modes[i],
                   "replica": "r1", "durations_ms": dict(zip(METRICS, r))}
            if status[i] == "rejected":
                rec["reason"] = "insufficient_margin"
            lines.append(orjson.dumps(rec))
            if len(lines) >= 65536:
                fh.write(b"\n".join(lines) + b"\n")
                lines = []
        for j in range(spec.malformed_lines):
            lines.append(b'{"ts": "2026-11-25T12:00:00Z", "status": "success", "flow": ' + str(j).encode())
        if lines:
            fh.write(b"\n".join(lines) + b"\n")

    with open(out / "requests.jsonl", "wb") as fh:
        net = 3.0 * rng.lognormal(0.0, 0.3, spec.records)
        sched = rng.exponential(2.0, spec.records)
        lat = d["executor_ms"] + net + 8.0
        lines = []
        names = [p.name for p in spec.phases]
        for i in range(spec.records):
            outcome = {"success": "ok", "rejected": "expected_rejection"}.get(status[i], "failure")
            http = {"success": 200, "rejected": 409}.get(status[i], 500)
            lines.append(orjson.dumps({
                "intended_ts": iso(ts[i] - sched[i] / 1000 - 0.01), "sent_ts": iso(ts[i] - 0.01),
                "latency_ms": round(float(lat[i]), 3),
                "latency_from_intended_ms": round(float(lat[i] + sched[i]), 3),
                "status": http, "outcome": outcome, "flow": flows[i],
                "name": "execute " + flows[i], "phase": names[phase_idx[i]],
                "late": bool(sched[i] > LATE_MS)}))
            if len(lines) >= 65536:
                fh.write(b"\n".join(lines) + b"\n")
                lines = []
        if lines:
            fh.write(b"\n".join(lines) + b"\n")

    events = [{"ts": iso(spec.start), "event": "run_start", "phase": None, "mode": None}]
    prev_mode = None
    for i, p in enumerate(spec.phases):
        if prev_mode is not None and p.mode != prev_mode:
            events.append({"ts": iso(starts[i]), "event": "flip_requested", "phase": p.name,
                           "mode": p.mode})
            events.append({"ts": iso(starts[i] + spec.flip_lag_s), "event": "flip_applied",
                           "phase": p.name, "mode": p.mode})
        events.append({"ts": iso(starts[i]), "event": "phase_start", "phase": p.name, "mode": p.mode})
        if p.provider is not None:
            events.append({"ts": iso(starts[i] + 0.005), "event": "provider_set", "phase": p.name,
                           "mode": None, "provider": p.provider})
        events.append({"ts": iso(starts[i + 1]), "event": "phase_end", "phase": p.name,
                       "mode": p.mode})
        prev_mode = p.mode
    end_event = {"ts": iso(run_end), "event": "run_end", "phase": None, "mode": None}
    if spec.ledger_interval_s > 0:
        samples = ledger_samples(spec, starts)
        events += samples
        end_event.update(ledger_samples=len(samples), ledger_sample_failures=0,
                         ledger_interval_s=spec.ledger_interval_s)
    events.append(end_event)
    events.sort(key=lambda e: e["ts"])
    (out / "timeline.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))

    phase_toml = "".join(
        f'\n[[phases]]\nname = "{p.name}"\nduration_s = {p.duration_s:g}\nmode = "{p.mode}"\n'
        f"analyse = {'true' if p.analysed else 'false'}\n" + _provider_toml(p.provider)
        for p in spec.phases)
    (out / "experiment.toml").write_text(
        f'name = "{spec.experiment_name}"\nprofile = "seed"\n\n[load]\nusers = 40\n'
        f"late_ms = {LATE_MS:g}\n" + phase_toml)
    ledger = {"orders_total": int((status == "success").sum()),
              "orders_nonterminal": spec.orders_nonterminal,
              "overcommits": dict(spec.overcommits),
              "reserved_vs_open_residual_usd": 0.0,
              "releases_total": int((status == "success").sum() // 20),
              "double_releases": 0}
    if spec.ledger == "full":
        ledger["by_mode"] = _by_mode(rng, spec, flows, modes, status)
    if spec.ledger != "none":
        (out / "ledger.json").write_bytes(orjson.dumps(ledger, option=orjson.OPT_INDENT_2))
    return out


def outages(spec: RunSpec, starts: list[float]) -> list[tuple[float, float | None]]:
    """(start, end) of each provider outage the phases set (end None: to the run's end)."""
    out: list[tuple[float, float | None]] = []
    begun = None
    for p, t in zip(spec.phases, starts):
        if p.provider is None:
            continue
        if p.provider.get("outage") and begun is None:
            begun = t
        elif not p.provider.get("outage") and begun is not None:
            out.append((begun, t))
            begun = None
    if begun is not None:
        out.append((begun, None))
    return out


def nonterminal_model(spec: RunSpec, starts: list[float], t: np.ndarray) -> np.ndarray:
    """The backlog the outages add at times t (without the noise)."""
    extra = np.zeros(len(t))
    for lo, hi in outages(spec, starts):
        top = np.minimum(spec.nonterminal_growth * np.clip(t - lo, 0, None), spec.nonterminal_cap)
        during = (t >= lo) & (t < (hi if hi is not None else np.inf))
        extra[during] += top[during]
        if hi is not None:
            left = min(spec.nonterminal_growth * (hi - lo), spec.nonterminal_cap)
            after = (t >= hi) & (t < hi + spec.nonterminal_drain_s)
            extra[after] += left * (1 - (t[after] - hi) / spec.nonterminal_drain_s)
    return extra


def ledger_samples(spec: RunSpec, starts: list[float]) -> list[dict]:
    """Timeline `ledger` events every ledger_interval_s over the run (its own random stream:
    the other files are the same with or without them)."""
    rng = np.random.default_rng([spec.seed, 20261125])
    t = np.arange(starts[0], starts[-1], spec.ledger_interval_s)
    t = t + rng.uniform(0, 0.02, len(t))  # the request's round trip
    n = np.ceil(nonterminal_model(spec, starts, t)).astype(int) \
        + rng.integers(0, spec.nonterminal_noise + 1, len(t))
    phase_at = np.searchsorted(np.asarray(starts[1:]), t, side="right")
    out = []
    for ti, ni, k in zip(t, n, phase_at):
        p = spec.phases[min(int(k), len(spec.phases) - 1)]
        out.append({"ts": iso(float(ti)), "event": "ledger", "phase": p.name, "mode": p.mode,
                    "request_ms": 5.0, "orders_total": 1000, "orders_nonterminal": int(ni),
                    "releases_total": 0, "double_releases": 0,
                    "reserved_vs_open_residual_usd": 0.0})
    return out


def _provider_toml(provider: dict | None) -> str:
    if provider is None:
        return ""
    vals = {k: ("true" if v else "false") if isinstance(v, bool) else f"{v:g}"
            for k, v in provider.items()}
    return "[phases.provider]\n" + "".join(f"{k} = {v}\n" for k, v in vals.items())


# |estimate error| scale (USD) per mode: off recomputes under the lock (small drift from price
# moves), skip estimates without it
ERROR_SCALE = {"off": 0.5, "skip": 400.0, "skip_reserve": 40.0}


def _by_mode(rng, spec: RunSpec, flows, modes, status) -> dict:
    """The service ledger's `by_mode` for this synthetic run: provider orders are the accepted
    provider records of the mode; estimate errors are lognormal around the mode's scale."""
    out = {}
    for mode in ("off", "skip", "skip_reserve"):
        n = int(((flows == "provider") & (modes == mode) & (status == "success")).sum())
        k = int(spec.overcommits.get(mode, 0))
        entry = {"overcommits": k,
                 "max_overcommit_usd": round(float(150.0 * k ** 0.5), 2) if k else 0.0,
                 "overcommits_within_allowance": 0,
                 "provider_orders": n, "max_abs_estimate_error_usd": 0.0,
                 "mean_estimate_error_usd": 0.0}
        if n:
            err = ERROR_SCALE[mode] * rng.lognormal(0.0, 1.0, n)
            q = np.quantile(err, [0.5, 0.9, 0.95, 0.99])
            entry["max_abs_estimate_error_usd"] = round(float(err.max()), 2)
            entry["mean_estimate_error_usd"] = round(float(err.mean()), 2)
            entry["abs_estimate_error_quantiles_usd"] = {
                "count": n, **{p: round(float(v), 2) for p, v in zip(("p50", "p90", "p95", "p99"), q)}}
        out[mode] = entry
    return out


def write_log(path: Path, *, records: int, split: float, seed: int = 3,
              seed_format: bool = True, before_mode: str = "off", after_mode: str = "skip",
              span_s: float = 3600.0, start: float | None = None) -> Path:
    """A production-style timing log: records over `span_s` seconds, the deploy at `split`
    (epoch seconds). With seed_format, only the seed's fields (no mode, no replica)."""
    rng = np.random.default_rng(seed)
    start = split - span_s / 2 if start is None else start
    ts = np.sort(rng.uniform(start, start + span_s, records))
    flows = np.where(rng.random(records) < 0.5, "provider", "local")
    modes = np.where(ts < split, before_mode, after_mode).astype(object)
    d = sample_records(rng, flows, modes)
    rows = np.stack([np.round(d[k], 3) for k in METRICS], axis=1).tolist()
    with open(path, "wb") as fh:
        for i in range(records):
            rec = {"ts": iso(ts[i]), "component": "python_api", "endpoint": "orders/instant/execute",
                   "status": "success", "order_id": f"o-{i}", "flow": flows[i],
                   "durations_ms": dict(zip(METRICS, rows[i]))}
            if not seed_format:
                rec["mode"] = modes[i]
            fh.write(orjson.dumps(rec) + b"\n")
    return Path(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    write_run(a.out, RunSpec(records=a.records, seed=a.seed))
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


@dataclass
class GenericSpec:
    """A generic HTTP target's run (no timing log, no ledger): flows `checkout` and `search`,
    modes `legacy` and `fast`, server metrics `app_ms` (checkout) and `handler_ms` (search) in
    each response's `server_metrics`, and `served_mode` null (the target does not say)."""

    phases: tuple[tuple[str, float, str], ...] = (("warmup", 10, "legacy"),
                                                  ("baseline", 40, "legacy"),
                                                  ("treatment", 40, "fast"),
                                                  ("rollback", 40, "legacy"))
    rate: float = 40.0  # requests a second, both flows
    seed: int = 5
    start: float = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
    checkout_share: float = 0.75
    # median app_ms of checkout / handler_ms of search per mode (search is unaffected)
    checkout_ms: dict = field(default_factory=lambda: {"legacy": 120.0, "fast": 60.0})
    search_ms: dict = field(default_factory=lambda: {"legacy": 30.0, "fast": 30.0})
    error_rate: float = 0.0  # failures among the requests (HTTP 500)
    reject_rate: float = 0.02  # business rejections (HTTP 409)
    flip_lag_s: float = 0.5  # flip_requested -> flip_applied
    client_overhead_ms: float = 4.0
    checks: str = ""  # TOML appended to experiment.toml
    served_mode: bool = False  # write served_mode (the mode the response reported)


def write_generic_run(out: Path, spec: GenericSpec | None = None) -> Path:
    spec = spec or GenericSpec()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    starts = [spec.start]
    for _, dur, _ in spec.phases:
        starts.append(starts[-1] + dur)
    n = int(rng.poisson(spec.rate * (starts[-1] - starts[0])))
    sent = np.sort(rng.uniform(starts[0], starts[-1], n))
    k = np.searchsorted(np.asarray(starts[1:]), sent, side="right")
    mode_of = np.array([m for _, _, m in spec.phases], dtype=object)[k]
    # in the flip window (requested -> applied) the target still serves the previous mode
    for i in range(1, len(spec.phases)):
        lag = (sent >= starts[i]) & (sent < starts[i] + spec.flip_lag_s)
        mode_of[lag] = spec.phases[i - 1][2]
    checkout = rng.random(n) < spec.checkout_share
    med = np.where(checkout, [spec.checkout_ms[m] for m in mode_of],
                   [spec.search_ms[m] for m in mode_of])
    server = med * rng.lognormal(0.0, SIGMA, n)
    latency = server + spec.client_overhead_ms * rng.lognormal(0.0, 0.3, n)
    u = rng.random(n)
    outcome = np.where(u < spec.error_rate, "failure",
                       np.where(u < spec.error_rate + spec.reject_rate, "expected_rejection",
                                "ok"))
    sched = rng.exponential(1.0, n)
    names = [p for p, _, _ in spec.phases]
    lines = []
    for i in range(n):
        flow = "checkout" if checkout[i] else "search"
        rec = {"intended_ts": iso(sent[i] - sched[i] / 1000), "sent_ts": iso(sent[i]),
               "latency_ms": round(float(latency[i]), 3),
               "latency_from_intended_ms": round(float(latency[i] + sched[i]), 3),
               "status": {"ok": 200, "expected_rejection": 409}.get(outcome[i], 500),
               "outcome": outcome[i], "flow": flow, "name": flow, "phase": names[k[i]],
               "late": False, "served_mode": mode_of[i] if spec.served_mode else None}
        if outcome[i] != "failure":
            key = "app_ms" if checkout[i] else "handler_ms"
            rec["server_metrics"] = {key: round(float(server[i]), 3)}
        lines.append(orjson.dumps(rec))
    (out / "requests.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    events = [{"ts": iso(starts[0]), "event": "run_start", "phase": None, "mode": None}]
    for i, (name, _, mode) in enumerate(spec.phases):
        if i and mode != spec.phases[i - 1][2]:
            events.append({"ts": iso(starts[i]), "event": "flip_requested", "phase": name,
                           "mode": mode})
            events.append({"ts": iso(starts[i] + spec.flip_lag_s), "event": "flip_applied",
                           "phase": name, "mode": mode})
        events.append({"ts": iso(starts[i]), "event": "phase_start", "phase": name, "mode": mode})
        events.append({"ts": iso(starts[i + 1]), "event": "phase_end", "phase": name,
                       "mode": mode})
    events.append({"ts": iso(starts[-1]), "event": "run_end", "phase": None, "mode": None})
    events.sort(key=lambda e: e["ts"])
    (out / "timeline.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    phases = "".join(
        f'\n[[phases]]\nname = "{name}"\nduration_s = {dur:g}\nmode = "{mode}"\n'
        + ("analyse = false\n" if name == "warmup" else "") for name, dur, mode in spec.phases)
    (out / "experiment.toml").write_text(
        'name = "fast-path"\nmodes = ["legacy", "fast"]\n\n[roles]\nbaseline = "legacy"\n'
        'treatment = "fast"\n\n[target]\nbase_url = "http://127.0.0.1:9100"\nhealth = "/health"\n'
        '\n[[target.requests]]\nname = "checkout"\nflow = "checkout"\nmethod = "POST"\n'
        'path = "/api/checkout"\nserver_timing = "header:app"\n\n[[target.requests]]\n'
        'name = "search"\nflow = "search"\nmethod = "GET"\npath = "/api/search"\n'
        'server_timing = "json:/timings/handler_ms"\n\n[flag]\nadapter = "http"\n\n[load]\n'
        f'rate = {spec.rate:g}\n' + phases + spec.checks)
    return out
