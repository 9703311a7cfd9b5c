"""Exact statistics on raw samples.

Quantiles: numpy's default `linear` method (Hyndman & Fan type 7), on the raw values.

Bootstrap confidence intervals of quantiles: the percentile bootstrap (not BCa: the jackknife
acceleration is inconsistent for quantiles), Monte Carlo with B replicates and a fixed seed derived
from the statistic's name, so a report is reproducible. The replicates are drawn *exactly* from the
bootstrap distribution without materialising resamples: a resample of size n from the empirical
distribution F_n is F_n^-1(U_1..U_n) with U iid uniform, so its k-th order statistic is
F_n^-1(U_(k)) with U_(k) ~ Beta(k, n+1-k), and the next one is U_(k+1) = U_(k) + (1-U_(k)) V with
V ~ Beta(1, n-k). numpy's linear quantile interpolates between those two order statistics, so each
replicate costs O(1) after one sort instead of O(n): B = 4000 replicates on a million records cost
less than the sort. (tests/analysis check this against brute-force resampling.)

Shift between two samples: the Hodges-Lehmann estimator (median of all n*m pairwise differences
y_j - x_i) with its distribution-free confidence interval (order statistics of the pairwise
differences at the Mann-Whitney critical ranks, normal approximation). The k-th pairwise difference
is found exactly without forming the n*m differences: count(d) = #{y_j - x_i <= d} is O(m log n)
with searchsorted, an interpolation search on d narrows the bracket until a few million candidate
pairs remain, and those are enumerated and partitioned. Exact for any n; O((n+m) log n) per rank.

Mann-Whitney U: scipy.stats.mannwhitneyu (two-sided; scipy picks exact or asymptotic with tie
correction). Equivalence (TOST): two one-sided Mann-Whitney tests of H0: shift <= -delta and
H0: shift >= +delta at alpha = 0.05 each, delta a stated margin (a fraction of the reference
median); equivalent when both reject, i.e. p_TOST = max(p_lower, p_upper) < alpha. The matching
90% Hodges-Lehmann interval is reported beside it (equivalence <=> it lies inside +-delta).
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np

QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
BOOTSTRAP_REPLICATES = 4000
CONFIDENCE = 0.95
SEED = 20261125
TOST_ALPHA = 0.05
_ENUM_LIMIT = 1 << 21


def rng_for(*key: str) -> np.random.Generator:
    """A generator seeded from SEED and the statistic's name: reproducible and order-independent.
    The key names the statistic, never the run's path: the same records give the same intervals
    wherever the run directory lies, and `compare` quotes each run's own figures."""
    return np.random.default_rng([SEED, zlib.crc32("\x1f".join(key).encode())])


# ---------------------------------------------------------------- quantiles and bootstrap


def quantile_sorted(xs: np.ndarray, p: float) -> float:
    """numpy's 'linear' quantile (bit for bit: it is np.quantile; sorted input keeps its
    partition cheap)."""
    return float(np.quantile(xs, p, method="linear"))


def bootstrap_quantile_replicates(
    xs: np.ndarray, p: float, rng: np.random.Generator, b: int = BOOTSTRAP_REPLICATES
) -> np.ndarray:
    """B bootstrap replicates of the linear p-quantile of sorted `xs` (see module docstring)."""
    n = len(xs)
    h = (n - 1) * p
    j = math.floor(h)
    g = h - j
    k = j + 1  # 1-based rank of the lower order statistic
    u_lo = rng.beta(k, n + 1 - k, size=b)
    lo = xs[np.clip(np.ceil(n * u_lo).astype(np.int64) - 1, 0, n - 1)]
    if g == 0.0 or k >= n:
        return lo.astype(np.float64, copy=True)
    v = rng.beta(1.0, n - k, size=b)
    u_hi = u_lo + (1.0 - u_lo) * v
    hi = xs[np.clip(np.ceil(n * u_hi).astype(np.int64) - 1, 0, n - 1)]
    return lo + g * (hi - lo)


@dataclass
class Estimate:
    value: float
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict:
        return {"value": _f(self.value), "ci_low": _f(self.ci_low), "ci_high": _f(self.ci_high)}


def _f(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def quantile_with_ci(
    xs_sorted: np.ndarray, p: float, rng: np.random.Generator, *, level: float = CONFIDENCE,
    b: int = BOOTSTRAP_REPLICATES,
) -> Estimate:
    value = quantile_sorted(xs_sorted, p)
    if len(xs_sorted) < 2:
        return Estimate(value, None, None)
    reps = bootstrap_quantile_replicates(xs_sorted, p, rng, b)
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return Estimate(value, float(lo), float(hi))


def describe(values: np.ndarray, *key: str, b: int = BOOTSTRAP_REPLICATES) -> dict | None:
    """count, mean, std, min, max and p50/p90/p95/p99 with percentile-bootstrap CIs.
    NaN values (a stage the record did not report) are left out."""
    xs = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    n = len(xs)
    if n == 0:
        return None
    xs = np.sort(xs)
    out = {
        "count": int(n),
        "mean": float(xs.mean()),
        "std": float(xs.std(ddof=1)) if n > 1 else None,
        "min": float(xs[0]),
        "max": float(xs[-1]),
    }
    for name, p in QUANTILES.items():
        out[name] = quantile_with_ci(xs, p, rng_for(*key, name), b=b).as_dict()
    return out


# ---------------------------------------------------------------- Hodges-Lehmann


def _count_le(xs: np.ndarray, ys: np.ndarray, d: float) -> int:
    """#{(i, j): y_j - x_i <= d}, as #{x_i >= y_j - d}."""
    return len(xs) * len(ys) - int(np.searchsorted(xs, ys - d, side="left").sum())


def kth_pairwise_difference(xs: np.ndarray, ys: np.ndarray, k: int) -> float:
    """The k-th smallest (0-based) of the n*m differences y_j - x_i; xs and ys sorted."""
    return kth_pairwise_differences(xs, ys, [k])[k]


_SUB = 1200  # points per sample in the sketch that seeds the search


def _sketch(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sorted differences of evenly spaced order statistics: an approximation of the
    distribution of all pairwise differences, to start each search close to its answer."""
    sx = xs[np.linspace(0, len(xs) - 1, min(len(xs), _SUB)).astype(np.int64)]
    sy = ys[np.linspace(0, len(ys) - 1, min(len(ys), _SUB)).astype(np.int64)]
    return np.sort((sy[:, None] - sx[None, :]).ravel())


def kth_pairwise_differences(xs: np.ndarray, ys: np.ndarray, ks) -> dict[int, float]:
    """{k: k-th smallest (0-based) pairwise difference y_j - x_i} for each rank in ks."""
    n, m = len(xs), len(ys)
    total = n * m
    ks = sorted({int(k) for k in ks})
    if any(not 0 <= k < total for k in ks):
        raise ValueError("rank out of range")
    if total <= _ENUM_LIMIT:
        diffs = np.partition((ys[:, None] - xs[None, :]).ravel(), ks)
        return {k: float(diffs[k]) for k in ks}
    sketch = _sketch(xs, ys)
    floor = float(ys[0] - xs[-1])
    floor = floor - max(1.0, abs(floor))  # strictly below every difference: count = 0
    ceil = float(ys[-1] - xs[0])
    out: dict[int, float] = {}
    for k in ks:
        if k in out:
            continue
        # bracket from the sketch: guesses a little either side of the k-th sketch quantile,
        # widened geometrically if the sketch was off; then interpolation on the counts
        ns = len(sketch)
        f = (k + 0.5) / total
        lo, c_lo, hi, c_hi = floor, 0, ceil, total
        for widen in (0.002, 0.02, 0.2):
            g_lo = float(sketch[max(int((f - widen) * ns), 0)])
            g_hi = float(sketch[min(int((f + widen) * ns), ns - 1)])
            if lo < g_lo < hi:
                c = _count_le(xs, ys, g_lo)
                if c <= k:
                    lo, c_lo = g_lo, c
                else:
                    hi, c_hi = g_lo, c
            if lo < g_hi < hi:
                c = _count_le(xs, ys, g_hi)
                if c > k:
                    hi, c_hi = g_hi, c
                else:
                    lo, c_lo = g_hi, c
            if lo > floor and hi < ceil:
                break
        value = _search(xs, ys, k, lo, c_lo, hi, c_hi, out, ks)
        out[k] = value
    return out


def _search(xs, ys, k, lo, c_lo, hi, c_hi, out, ks) -> float:
    """Narrow (lo, hi] (count(lo) <= k < count(hi)) until few pairs remain, enumerate them;
    other pending ranks that fall among the enumerated pairs are answered on the way."""
    step = 0
    while c_hi - c_lo > _ENUM_LIMIT:
        step += 1
        width = hi - lo
        if step % 4 == 0:
            d = lo + width / 2  # bisection keeps the worst case (heavy ties) bounded
        else:
            frac = (k + 0.5 - c_lo) / (c_hi - c_lo)
            frac = min(max(frac, 1 / 256), 255 / 256)
            d = lo + frac * width
        if not lo < d < hi or width <= 1e-12 * max(abs(lo), abs(hi), 1e-300):
            return _nearest_difference(xs, ys, hi)  # the rank sits on a tie at hi
        c = _count_le(xs, ys, d)
        if c > k:
            hi, c_hi = d, c
        else:
            lo, c_lo = d, c
    # enumerate the pairs with lo < y - x <= hi, i.e. y - hi <= x < y - lo
    start = np.searchsorted(xs, ys - hi, side="left")
    stop = np.searchsorted(xs, ys - lo, side="left")
    counts = stop - start
    nz = counts > 0
    start, counts, yv = start[nz], counts[nz], ys[nz]
    offsets = np.repeat(start - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    xi = np.arange(int(counts.sum())) + offsets
    cand = np.repeat(yv, counts) - xs[xi]
    r = k - c_lo
    if r >= len(cand):  # rounding at the bracket's edge
        return _nearest_difference(xs, ys, hi)
    inside = [j for j in ks if c_lo <= j < c_lo + len(cand) and j not in out]
    part = np.partition(cand, [j - c_lo for j in inside])
    for j in inside:
        out[j] = float(part[j - c_lo])
    return out[k]


def _nearest_difference(xs: np.ndarray, ys: np.ndarray, d: float) -> float:
    """The actual pairwise difference closest to d (snaps a bracket bound to a data value)."""
    i = np.searchsorted(xs, ys - d)
    best = np.inf
    for idx in (np.clip(i, 0, len(xs) - 1), np.clip(i - 1, 0, len(xs) - 1)):
        diffs = ys - xs[idx]
        j = int(np.argmin(np.abs(diffs - d)))
        if abs(diffs[j] - d) < abs(best - d):
            best = float(diffs[j])
    return best


def _norm_ppf(q: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(q))


@dataclass
class Shift:
    value: float
    ci_low: float
    ci_high: float
    level: float

    def as_dict(self) -> dict:
        return {"value": _f(self.value), "ci_low": _f(self.ci_low), "ci_high": _f(self.ci_high),
                "level": self.level}


EXACT_HL_BELOW = 50  # both samples smaller: the exact null distribution of U, as R's wilcox.test


@functools.lru_cache(maxsize=64)
def _u_null_cdf(n: int, m: int) -> np.ndarray:
    """P(U <= u), u = 0..n*m, for the Mann-Whitney U of samples of n and m without ties. The
    largest of the n + m values is a y with probability m/(n+m), adding n to U, else an x:
    p(n, m, u) = m/(n+m) p(n, m-1, u-n) + n/(n+m) p(n-1, m, u)."""
    prev = [np.ones(1)] * (m + 1)  # p(0, j): U = 0
    for i in range(1, n + 1):
        cur = [np.ones(1)]  # p(i, 0): U = 0
        for j in range(1, m + 1):
            r = np.zeros(i * j + 1)
            r[: len(prev[j])] += prev[j] * (i / (i + j))
            r[i: i + len(cur[j - 1])] += cur[j - 1] * (j / (i + j))
            cur.append(r)
        prev = cur
    return np.cumsum(prev[m])


def hl_ranks(n: int, m: int, level: float) -> tuple[int, int]:
    """0-based ranks of the pairwise differences bounding the HL interval: from the exact null
    distribution of U when both samples have fewer than EXACT_HL_BELOW values (ties, rare in
    latencies, are ignored there, as R's wilcox.test would not), else its normal approximation."""
    total = n * m
    if 0 < n < EXACT_HL_BELOW and 0 < m < EXACT_HL_BELOW:
        # R: qu = qwilcox(alpha/2, n, m), the smallest u with P(U <= u) >= alpha/2; the interval
        # is [D(qu), D(nm - qu + 1)] in 1-based order statistics of the differences
        cdf = _u_null_cdf(n, m)
        qu = max(int(np.searchsorted(cdf, (1 - level) / 2 - 1e-12)), 1)
        return qu - 1, max(total - qu, qu - 1)
    z = _norm_ppf(1 - (1 - level) / 2)
    c = math.floor(total / 2 - z * math.sqrt(total * (n + m + 1) / 12.0))
    c = max(c, 0)
    return c, max(total - 1 - c, c)


def hodges_lehmann(
    x: np.ndarray, y: np.ndarray, levels: tuple[float, ...] = (CONFIDENCE,),
    *, presorted: bool = False,
) -> tuple[float, list[Shift]]:
    """HL shift of y relative to x (positive: y larger) and its intervals at each level."""
    xs = x if presorted else np.sort(x)
    ys = y if presorted else np.sort(y)
    n, m = len(xs), len(ys)
    total = n * m
    mid = [total // 2] if total % 2 else [total // 2 - 1, total // 2]
    ranks = {lv: hl_ranks(n, m, lv) for lv in levels}
    vals = kth_pairwise_differences(xs, ys, mid + [k for r in ranks.values() for k in r])
    est = sum(vals[k] for k in mid) / len(mid)
    shifts = [Shift(est, vals[ranks[lv][0]], vals[ranks[lv][1]], lv) for lv in levels]
    return est, shifts


# ---------------------------------------------------------------- tests


def mann_whitney(x: np.ndarray, y: np.ndarray) -> dict:
    """Two-sided Mann-Whitney U of y vs x, with the common-language effect P(Y > X) + P(=)/2."""
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(y, x, alternative="two-sided")
    u = float(res.statistic)
    return {"u": u, "p": float(res.pvalue), "prob_y_greater": u / (len(x) * len(y))}


def mwu_one_sided(xs: np.ndarray, ys: np.ndarray, alternative: str) -> float:
    """One-sided Mann-Whitney p of y vs x: the same number as scipy.stats.mannwhitneyu(y, x,
    alternative, method="asymptotic") (tie-corrected normal approximation with continuity
    correction), computed from the sorted samples by binary search instead of a full ranking.
    Small samples go to scipy: below EXACT_HL_BELOW per sample without ties its exact
    distribution (the one the HL interval's ranks come from, so TOST and the 90% interval agree),
    and with ties under 9 values its own choice."""
    n1, n2 = len(ys), len(xs)
    small = max(n1, n2) < EXACT_HL_BELOW
    if min(n1, n2) <= 8 or small:
        from scipy.stats import mannwhitneyu

        no_ties = len(np.unique(np.concatenate((xs, ys)))) == n1 + n2
        method = "exact" if small and no_ties else "auto"
        if method == "exact" or min(n1, n2) <= 8:
            return float(mannwhitneyu(ys, xs, alternative=alternative, method=method).pvalue)
    from scipy.special import ndtr

    left = np.searchsorted(xs, ys, side="left")
    right = np.searchsorted(xs, ys, side="right")
    u1 = float(left.sum()) + 0.5 * float((right - left).sum())
    both = np.concatenate((xs, ys))
    both.sort(kind="stable")
    _, t = np.unique(both, return_counts=True)
    n = n1 + n2
    tie = float((t.astype(np.float64) ** 3 - t).sum())
    sd = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie / (n * (n - 1))))
    mu = n1 * n2 / 2.0
    if sd == 0:
        return 1.0
    if alternative == "greater":
        return float(ndtr(-(u1 - mu - 0.5) / sd))
    return float(ndtr((u1 - mu + 0.5) / sd))


def tost(x: np.ndarray, y: np.ndarray, delta: float, alpha: float = TOST_ALPHA) -> dict:
    """Equivalence of y and x within +-delta (absolute units) by two one-sided MWU tests."""
    xs, ys = np.sort(x), np.sort(y)
    p_lower = mwu_one_sided(xs, ys + delta, "greater")  # H0: shift <= -delta
    p_upper = mwu_one_sided(xs, ys - delta, "less")  # H0: shift >= +delta
    p = max(p_lower, p_upper)
    return {"delta": float(delta), "alpha": alpha, "p_lower": p_lower, "p_upper": p_upper,
            "p": p, "equivalent": bool(p < alpha)}


def compare_samples(x: np.ndarray, y: np.ndarray, *, margin_pct: float) -> dict:
    """Everything the reports say about y relative to x (x the reference)."""
    xs, ys = np.sort(x), np.sort(y)
    if len(xs) == 0 or len(ys) == 0:
        return {"n_ref": len(xs), "n": len(ys), "usable": False}
    ref_median = quantile_sorted(xs, 0.5)
    _, (ci95, ci90) = hodges_lehmann(xs, ys, (CONFIDENCE, 1 - 2 * TOST_ALPHA), presorted=True)
    delta = abs(ref_median) * margin_pct / 100.0
    out = {
        "usable": True,
        "n_ref": len(xs),
        "n": len(ys),
        "ref_p50": ref_median,
        "p50": quantile_sorted(ys, 0.5),
        "shift_ms": ci95.as_dict(),
        "shift_pct": {k: (None if v is None or ref_median == 0 else 100.0 * v / ref_median)
                      for k, v in ci95.as_dict().items() if k != "level"},
        "mann_whitney": None,
        "equivalence": None,
    }
    if len(xs) >= 2 and len(ys) >= 2:
        out["mann_whitney"] = mann_whitney(xs, ys)
        eq = tost(xs, ys, delta)
        eq.update({"margin_pct": margin_pct, "ci90_ms": [_f(ci90.ci_low), _f(ci90.ci_high)]})
        out["equivalence"] = eq
    return out
