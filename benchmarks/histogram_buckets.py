"""How far Prometheus' `histogram_quantile` lands from the exact quantile, with the client's
default buckets and with the executor's (service/metrics.py LATENCY_BUCKETS), on the latency
shapes of the note (provider off ~253 ms, skip ~88 ms, local ~245 ms) or on a timing log.

    .venv/bin/python benchmarks/histogram_buckets.py                   # the note's shapes
    .venv/bin/python benchmarks/histogram_buckets.py --timings run/timings.jsonl

The estimate is Prometheus' own (promql/quantile.go bucketQuantile): the rank q*count is placed
in the first bucket whose cumulative count reaches it and interpolated linearly between the
bucket's bounds (0 below the first). Each shape is a log-normal with the stated median and
spread, seeded; what is printed is the estimate's error relative to the exact quantile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import Histogram

from execbench.rundir import iter_jsonl
from service.metrics import LATENCY_BUCKETS

DEFAULT_BUCKETS = tuple(b for b in Histogram.DEFAULT_BUCKETS if b != float("inf"))
# (name, median ms, sigma of log): the seed profile's executor_ms medians (docs/DESIGN.md)
SHAPES = (("provider off", 253.0, 0.12), ("provider skip", 88.0, 0.15),
          ("local", 245.0, 0.10), ("provider off, wide tail", 253.0, 0.35))
QUANTILES = (0.5, 0.95, 0.99)


def histogram_quantile(q: float, values_s: np.ndarray, bounds: tuple[float, ...]) -> float:
    """Prometheus' bucketQuantile on the cumulative counts of `values_s` in `bounds` (+Inf added)."""
    upper = np.asarray(bounds, dtype=float)
    cumulative = np.searchsorted(np.sort(values_s), upper, side="right")
    total = len(values_s)
    rank = q * total
    b = int(np.searchsorted(cumulative, rank, side="left"))
    if b >= len(upper):  # the +Inf bucket: Prometheus answers the highest finite bound
        return float(upper[-1])
    start = 0.0 if b == 0 else float(upper[b - 1])
    below = 0 if b == 0 else int(cumulative[b - 1])
    inside = int(cumulative[b]) - below
    return start + (float(upper[b]) - start) * (rank - below) / inside


def errors(values_s: np.ndarray) -> dict[str, dict[float, float]]:
    out = {}
    for name, bounds in (("default", DEFAULT_BUCKETS), ("executor", LATENCY_BUCKETS)):
        out[name] = {}
        for q in QUANTILES:
            exact = float(np.quantile(values_s, q))
            out[name][q] = histogram_quantile(q, values_s, bounds) / exact - 1
    return out


def read_timings(path: Path, metric: str) -> dict[str, np.ndarray]:
    groups: dict[str, list[float]] = {}
    for rec in iter_jsonl(path):  # skips blank, torn and non-object lines
        v = (rec.get("durations_ms") or {}).get(metric, rec.get(metric))  # the seed's nesting
        if isinstance(v, (int, float)) and not isinstance(v, bool) \
                and rec.get("status", "success") == "success":
            groups.setdefault(f"{rec.get('flow', '-')} {rec.get('mode', '-')}", []).append(v / 1000)
    return {k: np.asarray(v) for k, v in groups.items() if len(v) >= 50}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200_000, help="records per shape (default 200,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timings", type=Path, default=None,
                    help="a timing log (JSON lines): its groups (flow, mode) instead of the shapes")
    ap.add_argument("--metric", default="executor_ms", help="the metric of --timings, in ms (a durations_ms key or a top-level field)")
    args = ap.parse_args(argv)
    if args.timings:
        groups = read_timings(args.timings, args.metric)
        if not groups:
            print(f"{args.timings}: no group with 50 records of {args.metric}", file=sys.stderr)
            return 2
    else:
        rng = np.random.default_rng(args.seed)
        groups = {name: rng.lognormal(np.log(median / 1000), sigma, args.samples)
                  for name, median, sigma in SHAPES}
    print(f"buckets: default {len(DEFAULT_BUCKETS)} finite (prometheus-client), executor "
          f"{len(LATENCY_BUCKETS)} (service/metrics.py)")
    columns = [(b, q) for b in ("default", "executor") for q in QUANTILES]
    titles = [f"{b} p{round(q * 100)}" for b, q in columns]
    print(f"{'shape':<26}{'n':>8}" + "".join(f"{t:>14}" for t in titles))
    worst = {"default": 0.0, "executor": 0.0}
    for name, values in groups.items():
        err = errors(values)
        for b, q in columns:
            worst[b] = max(worst[b], abs(err[b][q]))
        print(f"{name:<26}{len(values):>8}" + "".join(f"{err[b][q] * 100:>+13.1f}%" for b, q in columns))
    print(f"largest |error| (%): default buckets {worst['default'] * 100:.1f}, executor buckets "
          f"{worst['executor'] * 100:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
