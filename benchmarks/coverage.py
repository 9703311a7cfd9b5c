"""Error rates of the analysis' intervals and tests, by simulation on latency-like data.

    .venv/bin/python benchmarks/coverage.py [--reps 4000] [--seed 1] [--only NAME ...]

Tables (each cell is a rate over --reps simulated experiments; its Monte Carlo standard error is
about sqrt(r (1 - r) / reps), 0.0034 at r = 0.95 and 0.0034 at r = 0.05 with reps = 4000):

- `quantile`: coverage of the 95% order-statistic interval of p50/p95/p99 (analysis/stats.py
  `quantile_with_ci`) at n = 30, 100, 600; "n/a" where n is too small for the interval (the
  analysis prints no interval there, and says so).
- `ratio`: coverage of the 95% ratio-of-quantiles interval (`quantile_ratio`, MOVER) at a true
  ratio of 0.35 (the note's 253 -> 88 ms), per quantile and n.
- `compare`: the rate of "worse" from `execbench compare` (analysis/compare.py `judge`) for
  identical runs and for a B exactly on the +5% margin (false alarms, <= 0.025), and its power.
- `error_rise`: analyze-log's error-rate non-inferiority (0.5 pp): PASS at a true rise of exactly
  the margin (type-I) and FAIL at no rise, and PASS with no errors at all (power).
- `cluster`: the safety section's over-commit rate interval, resampling accounts, on bursts
  that over-commit together, beside Clopper-Pearson over orders (which treats them as
  independent and under-covers by the design effect).
- `factorial`: the latency-plan's main effects and interactions (analysis/factorial.py) on a
  2^4 design with known savings, block drift and the latency-like noise: coverage of their 95%
  block-bootstrap intervals and the half-width a given number of blocks buys.
- `tost`: the rate of "equivalent" (`ratio_equivalence`) when the true ratio of medians sits
  exactly on the margin (1.05 at +-5%, 1.10 at +-10%, 0.95 at +-5%): the type-I error, which
  must stay <= 0.05; and the rate at a true ratio of 1 (power).

The data: a provider-like latency, lognormal around 250 ms (sigma 0.25) with 4% of a slow mode
(lognormal around 900 ms, sigma 0.4), rounded to 0.001 ms as a timing log writes it. A second
sample for a ratio r is the first distribution times r, so every quantile's ratio is exactly r.
A benchmark, not a test: it prints and asserts nothing (tests/analysis check the rules on small
data; docs/analysis.md quotes these tables).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import stats

NS = (30, 100, 600)
QS = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
MU, SIGMA, SLOW_MU, SLOW_SIGMA, SLOW_SHARE = math.log(250), 0.25, math.log(900), 0.4, 0.04


def draw(rng: np.random.Generator, size, scale: float = 1.0) -> np.ndarray:
    slow = rng.random(size) < SLOW_SHARE
    v = np.where(slow, rng.lognormal(SLOW_MU, SLOW_SIGMA, size), rng.lognormal(MU, SIGMA, size))
    return np.round(v * scale, 3)


def true_quantile(p: float) -> float:
    from scipy.optimize import brentq
    from scipy.stats import lognorm

    def cdf(x):
        return ((1 - SLOW_SHARE) * lognorm.cdf(x, SIGMA, scale=math.exp(MU))
                + SLOW_SHARE * lognorm.cdf(x, SLOW_SIGMA, scale=math.exp(SLOW_MU)))

    return brentq(lambda x: cdf(x) - p, 1e-3, 1e5, xtol=1e-9)


def _rate(hits: int, tried: int) -> str:
    return "n/a" if tried == 0 else f"{hits / tried:.3f}"


def quantile_table(rng, reps: int) -> None:
    print("\n95% order-statistic interval of a quantile: coverage (n/a: n too small for it)")
    print(f"{'n':>5} " + " ".join(f"{q:>8}" for q in QS))
    for n in NS:
        cells = []
        for p in QS.values():
            truth = true_quantile(p)
            hits = tried = 0
            for _ in range(reps):
                e = stats.quantile_with_ci(np.sort(draw(rng, n)), p)
                if e.ci_low is None or e.ci_high is None:
                    continue
                tried += 1
                hits += e.ci_low <= truth <= e.ci_high
            cells.append(_rate(hits, tried))
        print(f"{n:5d} " + " ".join(f"{c:>8}" for c in cells))


def ratio_table(rng, reps: int, ratio: float = 0.35) -> None:
    print(f"\n95% interval of a ratio of quantiles (MOVER): coverage at a true ratio of {ratio}")
    print(f"{'n':>5} " + " ".join(f"{q:>8}" for q in QS))
    for n in NS:
        cells = []
        for p in QS.values():
            hits = tried = 0
            for _ in range(reps):
                r = stats.quantile_ratio(np.sort(draw(rng, n)), np.sort(draw(rng, n, ratio)), p)
                if r is None or r["ci_low"] is None or r["ci_high"] is None:
                    continue
                tried += 1
                hits += r["ci_low"] <= ratio <= r["ci_high"]
            cells.append(_rate(hits, tried))
        print(f"{n:5d} " + " ".join(f"{c:>8}" for c in cells))


def tost_table(rng, reps: int) -> None:
    cases = ((1.05, 5.0), (0.95, 5.0), (1.10, 10.0), (1.0, 5.0), (1.0, 10.0))
    print("\nequivalence of medians (90% ratio interval inside 1 +- margin): rate of 'equivalent'")
    print("(true ratio on the margin: the type-I error, <= 0.05; at 1.0: the power)")
    print(f"{'n':>5} " + " ".join(f"{f'{r:g} @ +-{m:g}%':>14}" for r, m in cases))
    for n in NS:
        cells = []
        for ratio, margin in cases:
            hits = 0
            for _ in range(reps):
                e = stats.ratio_equivalence(np.sort(draw(rng, n)), np.sort(draw(rng, n, ratio)),
                                            margin_pct=margin)
                hits += bool(e and e["equivalent"])
            cells.append(f"{hits / reps:.3f}")
        print(f"{n:5d} " + " ".join(f"{c:>14}" for c in cells))


def compare_table(rng, reps: int) -> None:
    from analysis.compare import judge

    cases = ((1.0, "identical"), (1.05, "on the margin"), (1.10, "10% slower"))
    print("\ncompare at +-5% on p50: rate of 'worse' (identical runs and a run exactly on the "
          "margin: a false alarm, <= 0.025)")
    print(f"{'n':>5} " + " ".join(f"{f'{r:g} ({w})':>20}" for r, w in cases))
    for n in (50, 150, 600):
        cells = []
        for ratio, _ in cases:
            worse = 0
            for _ in range(reps):
                j = judge(np.sort(draw(rng, n)), np.sort(draw(rng, n, ratio)), q=0.5,
                          margin_pct=5.0, min_n=30)
                worse += j["answer"] == "worse"
            cells.append(f"{worse / reps:.3f}")
        print(f"{n:5d} " + " ".join(f"{c:>20}" for c in cells))


def error_rise_table(rng, reps: int) -> None:
    from analysis.checks import _error_rise_check

    print("\nerror rate rise within 0.5 pp (analyze-log): rate of PASS at a true rise of exactly "
          "0.5 pp (type-I, <= 0.05) and of FAIL at no rise (<= 0.05)")
    print(f"{'requests':>9} {'1.0% -> 1.5% PASS':>18} {'0.1% -> 0.6% PASS':>18} "
          f"{'1.0% -> 1.0% FAIL':>18} {'0% -> 0% PASS':>14}")
    for n in (1000, 5000, 20000):
        cells = []
        for p1, p2, want in ((0.01, 0.015, "pass"), (0.001, 0.006, "pass"),
                             (0.01, 0.01, "fail"), (0.0, 0.0, "pass")):
            hits = 0
            for _ in range(reps):
                c = _error_rise_check((int(rng.binomial(n, p1)), n), (int(rng.binomial(n, p2)), n),
                                      0.5)
                hits += c["verdict"] == want
            cells.append(f"{hits / reps:.3f}")
        print(f"{n:9d} {cells[0]:>18} {cells[1]:>18} {cells[2]:>18} {cells[3]:>14}")


def _bursty_ledger(rng, accounts: int, fail_share: float):
    """Accounts sending bursts of 1-6 provider orders; a failing account's burst over-commits
    on all but its first order (they race for one margin), the ledger's triples."""
    sizes = rng.integers(1, 7, accounts)
    fails = rng.random(accounts) < fail_share
    k = np.where(fails, sizes - 1, 0)
    triples = {}
    for n_, k_ in zip(sizes.tolist(), k.tolist()):
        triples[(n_, k_)] = triples.get((n_, k_), 0) + 1
    return [[n_, k_, m] for (n_, k_), m in sorted(triples.items())]


def cluster_table(rng, reps: int) -> None:
    from analysis.safety import cluster_rate_interval, rate_interval

    reps = max(1, reps // 4)  # each cell bootstraps: a quarter of the reps
    mean_n = 3.5
    print(f"\nover-commits per order, bursts that fail together ({reps} experiments a cell): "
          "coverage of the 95% interval over accounts (cluster) and over orders (independent)")
    print(f"{'accounts':>9} {'share failing':>14} {'true /10k':>10} {'cluster':>8} {'orders':>8}")
    for accounts in (60, 200, 1000):
        for share in (0.0, 0.05, 0.3):
            truth = 10_000 * share * (mean_n - 1) / mean_n
            hit_c = hit_o = 0
            for _ in range(reps):
                tr = _bursty_ledger(rng, accounts, share)
                c = cluster_rate_interval(tr)
                o = rate_interval(c["k"], c["n"])
                hit_c += c["ci_low"] <= truth <= c["ci_high"]
                hit_o += o["ci_low"] <= truth <= o["ci_high"]
            print(f"{accounts:9d} {share:14.2f} {truth:10.0f} {hit_c / reps:8.3f} "
                  f"{hit_o / reps:8.3f}")


def factorial_table(rng, reps: int) -> None:
    from analysis.factorial import Design, effects

    flags = ("provider_skip", "keepalive", "parallel_config", "async_logging")
    saving = (-165.0, -30.0, -20.0, -5.0)
    sims = max(1, reps // 40)
    print(f"\nfactorial 2^4 (latency-plan), block bootstrap, {sims} experiments a row: coverage of "
          "the 95% intervals of the 4 main effects and 6 interactions (all 0), pooled; mean "
          "half-width of a main effect")
    print(f"{'blocks':>7} {'per cell':>9} {'q':>5} {'main':>6} {'inter.':>7} {'half-width ms':>14}")
    # (8, 560): the bundled latency-plan (8 blocks x 3.5 s x 20 orders/s a cell)
    for blocks, per_cell in ((8, 20), (12, 40), (24, 20), (8, 560)):
        for q in (0.5, 0.95):
            hit_m = hit_i = 0
            widths = []
            for _ in range(sims):
                rows = []
                for b in range(blocks):
                    offset = rng.normal(0, 15)
                    for cell in rng.permutation(16):
                        on = np.array([(cell >> j) & 1 for j in range(4)])
                        base = 296.0 + float(np.dot(saving, on)) + offset
                        noise = draw(rng, per_cell) - 250.0  # the latency-like shape, centred
                        rows.append(np.column_stack([base + noise, np.tile(on, (per_cell, 1)),
                                                     np.full(per_cell, b)]))
                a = np.vstack(rows)
                design = Design.from_columns({f: a[:, 1 + j] for j, f in enumerate(flags)},
                                             block=a[:, -1])
                r = effects(a[:, 0], design, q, replicates=400)
                for name, e in r["effects"].items():
                    if e["kind"] == "alone":
                        continue  # two cells' difference: not what this table measures
                    truth = saving[flags.index(name)] if e["kind"] == "main" else 0.0
                    ok = e["ci_low"] <= truth <= e["ci_high"]
                    if e["kind"] == "main":
                        hit_m += ok
                        widths.append((e["ci_high"] - e["ci_low"]) / 2)
                    else:
                        hit_i += ok
            print(f"{blocks:7d} {per_cell:9d} {q:5.2f} {hit_m / (4 * sims):6.3f} "
                  f"{hit_i / (6 * sims):7.3f} {np.mean(widths):14.1f}")


TABLES = {"quantile": quantile_table, "cluster": cluster_table, "factorial": factorial_table, "ratio": ratio_table, "tost": tost_table,
          "compare": compare_table, "error_rise": error_rise_table}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", nargs="*", choices=sorted(TABLES), default=None)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(f"coverage.py: {args.reps} simulated experiments per cell, seed {args.seed}")
    for name, table in TABLES.items():
        if args.only is None or name in args.only:
            table(rng, args.reps)
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
