"""How well the recovery estimate dates a rollback (analysis/recovery.py), by simulation.

A rollback flip at t = 0 from skip (provider executor_ms ~ 88 ms) back to off (~ 253 ms), the
service switching at a true lag L after the flip; provider records arrive as a Poisson stream
at the default experiment's rate (20 req/s, half provider: 10/s). Durations are lognormal around
each level with the spread of the synthetic runs (analysis/synthetic.py: the sum of the seed's
stages, sigma 0.25 each). The target is the baseline's p50 (a 60 s off phase), `before` the p50
of the 60 s skip phase before the flip. Printed per lag: the median error (bias), the median
absolute error, and the share within +-0.5 s, for the coarse rolling-p50 estimate alone and for
the estimate the analysis uses (rolling p50, then the change point).

    .venv/bin/python benchmarks/recovery_bias.py            # 400 runs per lag
    .venv/bin/python benchmarks/recovery_bias.py --runs 100 --rate 4
"""

from __future__ import annotations

import argparse

import numpy as np

from analysis.core import Settings
from analysis.recovery import recovery_time
from analysis.synthetic import sample_records

LAGS_S = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
PHASE_S = 60.0


def provider_durations(rng, mode: str, n: int) -> np.ndarray:
    return sample_records(rng, np.full(n, "provider"), np.full(n, mode))["executor_ms"]


def one_run(rng, lag: float, rate: float, s: Settings) -> tuple[float | None, float | None]:
    base = provider_durations(rng, "off", rng.poisson(rate * PHASE_S))
    prev = provider_durations(rng, "skip", rng.poisson(rate * PHASE_S))
    n = rng.poisson(rate * PHASE_S)
    t = np.sort(rng.uniform(0, PHASE_S, n))
    v = np.where(t < lag, provider_durations(rng, "skip", n), provider_durations(rng, "off", n))
    kw = {"flip_ts": 0.0, "end_ts": PHASE_S, "target": float(np.median(base)),
              "tolerance_pct": s.recovery_tolerance_pct, "window_s": s.recovery_window_s,
              "step_s": s.recovery_step_s, "hold_s": s.recovery_hold_s}
    coarse = recovery_time(t, v, **kw)["recovery_s"]
    fine = recovery_time(t, v, before=float(np.median(prev)), **kw)["recovery_s"]
    return coarse, fine


def summarise(errors: list[float | None]) -> str:
    e = np.array([x for x in errors if x is not None])
    missing = len(errors) - len(e)
    if not len(e):
        return "never recovered in every run"
    return (f"bias {np.median(e):+.2f} s  MAE {np.median(np.abs(e)):.2f} s  "
            f"within 0.5 s {np.mean(np.abs(e) <= 0.5):.0%}"
            + (f"  never {missing}" if missing else ""))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=400)
    p.add_argument("--rate", type=float, default=10.0, help="provider records per second")
    p.add_argument("--seed", type=int, default=20261202)
    args = p.parse_args(argv)
    s = Settings()
    rng = np.random.default_rng(args.seed)
    print(f"recovery estimate error (estimate - true lag), {args.runs} runs per lag, "
          f"{args.rate:g} provider records/s, window {s.recovery_window_s:g} s, step "
          f"{s.recovery_step_s:g} s, hold {s.recovery_hold_s:g} s, tolerance "
          f"{s.recovery_tolerance_pct:g}%")
    print(f"{'lag':>6}  {'rolling p50 alone':<48}  rolling p50 + change point (the analysis)")
    for lag in LAGS_S:
        coarse, fine = [], []
        for _ in range(args.runs):
            c, f = one_run(rng, lag, args.rate, s)
            coarse.append(None if c is None else c - lag)
            fine.append(None if f is None else f - lag)
        print(f"{lag:>5.1f}s  {summarise(coarse):<48}  {summarise(fine)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
