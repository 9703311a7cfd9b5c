"""Exact statistics on raw samples.

Quantiles: numpy's default `linear` method (Hyndman & Fan type 7), on the raw values.

Confidence intervals of quantiles: distribution-free order-statistic intervals. For any
continuous distribution the number of values below the true p-quantile is Binomial(n, p), so
[X_(l), X_(u)] with binomial ranks l, u covers it with probability >= 95% at every n (no
resampling, no seed, no asymptotics; ties only widen it). Where n is too small for a side (an
upper bound of p99 needs about 300 values, of p95 about 60), that bound is None and the reports
say so instead of printing one. Their coverage on skewed latency-like data, and the coverage of
everything built on them, is measured by benchmarks/coverage.py and quoted in docs/analysis.md.

Ratio of two quantiles (a reduction, an equivalence, `compare`): MOVER (Zou & Donner) on the log
scale from the two order-statistic intervals; equivalence of a quantile within 1 +- m is the 90%
ratio interval inside (1 - m, 1 + m), m fixed before the data (two one-sided tests at 5%).

Shift between two samples: the Hodges-Lehmann estimator (median of all n*m pairwise differences
y_j - x_i) with its distribution-free confidence interval (order statistics of the pairwise
differences at the Mann-Whitney critical ranks, normal approximation). The k-th pairwise difference
is found exactly without forming the n*m differences: count(d) = #{y_j - x_i <= d} is O(m log n)
with searchsorted (exact as the float differences compare), an interpolation search on d narrows
the bracket until it holds a single difference value (ties: values on a 0.001 ms grid) or a few
million candidate pairs, which are enumerated and partitioned. Exact for any n; O((n+m) log n) per
rank, a handful of counting passes each however tied the data.
Above _GRID_ABOVE pairs (~130k x 130k), samples whose every value is a decimal of at most 6
places (a log's latencies: 3) are counted on that grid's integers instead: count(D) over the
distinct values only (their counts as weights), an interpolation search on the integer
difference D per rank (bisection after a step that did not halve the bracket), and the answer
the double nearest the exact decimal D / 10^d (the float subtraction's order statistic may
differ from it by an ulp). Exact on the decimals; a pass over the distinct values costs a few
milliseconds at 2.5 M values of 0.001 ms resolution (HL of 2.5 M x 2.5 M: 0.75 s).

Mann-Whitney U: scipy.stats.mannwhitneyu (two-sided; scipy picks exact or asymptotic with tie
correction); `mwu_one_sided` computes the one-sided p from sorted samples by binary search.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
CONFIDENCE = 0.95
TOST_ALPHA = 0.05
_ENUM_LIMIT = 1 << 21
# more pairs than this (about 130k x 130k) on a decimal grid: the pairwise differences are
# counted on the grid's integers (`_grid_kth`), a pass over the distinct values only
_GRID_ABOVE = 1 << 34


# ---------------------------------------------------------------- quantiles and their intervals


def quantile_sorted(xs: np.ndarray, p: float) -> float:
    """numpy's 'linear' quantile, bit for bit: np.quantile of the two order statistics around
    (n - 1) p at the fraction between them (the same interpolation numpy does on the whole
    array, without its partition of every value: n log n of work for a sorted sample that
    needs none). An empty sample or one holding NaN (sorted last) goes to np.quantile."""
    n = len(xs)
    if n == 0 or np.isnan(xs[-1]):
        return float(np.quantile(xs, p, method="linear"))
    h = (n - 1) * p
    lo = math.floor(h)
    return float(np.quantile(xs[lo:lo + 2], h - lo, method="linear"))


def order_statistic_ranks(n: int, p: float, level: float = CONFIDENCE
                          ) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics bounding the p-quantile with confidence at
    least `level`, equal tails: the number B of values below the true quantile is Binomial(n, p)
    for any continuous distribution, X_(l) <= q <=> B >= l and q <= X_(u) <=> B <= u - 1, so
    P(X_(l) <= q <= X_(u)) = F(u - 1) - F(l - 1) >= level when F(l - 1) <= a and F(u - 1) >= 1 - a,
    a = (1 - level) / 2. l is the largest such rank, u the smallest. A side that no order
    statistic can bound at that confidence (an upper bound for p99 from 100 values: even X_(100)
    lies above p99 only with probability 1 - 0.99^100 = 0.63) is None."""
    return _order_statistic_ranks(int(n), float(p), float(level))


@functools.lru_cache(maxsize=1024)
def _order_statistic_ranks(n: int, p: float, level: float) -> tuple[int | None, int | None]:
    from scipy.special import bdtr

    if n < 1:
        return None, None
    a = (1 - level) / 2
    sd = math.sqrt(n * p * (1 - p))
    k0 = max(0, math.floor(n * p - 12 * sd - 10))
    k1 = min(n, math.ceil(n * p + 12 * sd + 10))

    def cdf(k: int) -> float:  # P(B <= k), nondecreasing in k; below k0 ~0, above k1 ~1
        return float(bdtr(k, n, p))

    # binary searches on the monotone CDF over [k0, k1] (a few dozen evaluations where the
    # whole range is 24 sd wide: 27k at n = 5e6): the last k with cdf <= a, the first with
    # cdf >= 1 - a
    if cdf(k0) <= a:
        lo_k, hi_k = k0, k1  # cdf(lo_k) <= a
        if cdf(k1) <= a:
            lo_k = k1
        else:
            while hi_k - lo_k > 1:  # cdf(hi_k) > a
                mid = (lo_k + hi_k) // 2
                lo_k, hi_k = (mid, hi_k) if cdf(mid) <= a else (lo_k, mid)
        lower = lo_k + 1  # l - 1 = the last such k
    else:
        lower = k0 if k0 > 0 else None
    if cdf(k1) >= 1 - a:
        lo_k, hi_k = k0, k1  # cdf(hi_k) >= 1 - a
        if cdf(k0) >= 1 - a:
            hi_k = k0
        else:
            while hi_k - lo_k > 1:  # cdf(lo_k) < 1 - a
                mid = (lo_k + hi_k) // 2
                lo_k, hi_k = (lo_k, mid) if cdf(mid) >= 1 - a else (mid, hi_k)
        upper = hi_k + 1
    else:
        upper = None
    if lower is not None and lower < 1:
        lower = None
    if upper is not None and upper > n:
        upper = None
    return lower, upper


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


def quantile_with_ci(xs_sorted: np.ndarray, p: float, *, level: float = CONFIDENCE) -> Estimate:
    """numpy's linear p-quantile with its distribution-free order-statistic interval (either
    bound None when the sample is too small to give it at `level`)."""
    value = quantile_sorted(xs_sorted, p)
    lo, hi = order_statistic_ranks(len(xs_sorted), p, level)
    return Estimate(value, None if lo is None else float(xs_sorted[lo - 1]),
                    None if hi is None else float(xs_sorted[hi - 1]))


def quantile_ratio(xs_sorted: np.ndarray, ys_sorted: np.ndarray, p: float, *,
                   level: float = CONFIDENCE) -> dict | None:
    """Q_p(y) / Q_p(x) with an interval by MOVER on the log scale (Zou & Donner's method of
    variance estimates recovery) from the two order-statistic intervals at `level`:
    log r = log qy - log qx, and each side of the interval combines the matching distances of
    the two quantiles' own bounds, L = log r - sqrt((log qy - log ly)^2 + (log ux - log qx)^2),
    U = log r + sqrt((log uy - log qy)^2 + (log qx - log lx)^2). Distribution-free in its parts,
    asymmetric where the quantiles' intervals are (a tail quantile's upper bound is far);
    its coverage is measured in benchmarks/coverage.py. A bound needing a missing quantile bound
    (too few values for that tail at that level) is None; a quantile <= 0 gives no ratio."""
    if len(xs_sorted) < 1 or len(ys_sorted) < 1:
        return None
    ex, ey = quantile_with_ci(xs_sorted, p, level=level), quantile_with_ci(ys_sorted, p, level=level)
    if ex.value <= 0 or ey.value <= 0:
        return None
    lr = math.log(ey.value) - math.log(ex.value)

    def dist(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or a <= 0 or b <= 0:
            return None
        return abs(math.log(a) - math.log(b))

    d_ly, d_ux = dist(ey.value, ey.ci_low), dist(ex.ci_high, ex.value)
    d_uy, d_lx = dist(ey.ci_high, ey.value), dist(ex.value, ex.ci_low)
    lo = None if d_ly is None or d_ux is None else math.exp(lr - math.hypot(d_ly, d_ux))
    hi = None if d_uy is None or d_lx is None else math.exp(lr + math.hypot(d_uy, d_lx))
    return {"ref": ex.value, "value": ey.value, "ratio": math.exp(lr), "ci_low": lo,
            "ci_high": hi, "level": level, "n": min(len(xs_sorted), len(ys_sorted))}


def describe(values: np.ndarray) -> dict | None:
    """count, mean, std, min, max and p50/p90/p95/p99 with 95% order-statistic intervals.
    NaN values (a stage the record did not report) are left out."""
    xs = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    n = len(xs)
    if n == 0:
        return None
    # the order statistics the quantiles and their intervals read, by one partition on those
    # ranks (no full sort: half its time at 2.5 M values); the same values as from the sorted
    # sample, the quantiles interpolated between them as np.quantile does (quantile_sorted)
    plan = {}
    kth = {0, n - 1}
    for name, p in QUANTILES.items():
        h = (n - 1) * p
        f = math.floor(h)
        lo, hi = order_statistic_ranks(n, p)
        plan[name] = (h - f, f, min(f + 1, n - 1), lo, hi)
        kth |= {f, min(f + 1, n - 1)} | {r - 1 for r in (lo, hi) if r is not None}
    part = np.partition(xs, sorted(kth))
    out = {
        "count": int(n),
        "mean": float(part.mean()),
        "std": float(part.std(ddof=1)) if n > 1 else None,
        "min": float(part[0]),
        "max": float(part[-1]),
    }
    for name, (frac, a, b, lo, hi) in plan.items():
        value = float(np.quantile(part[[a, b]] if b > a else part[a:a + 1], frac,
                                  method="linear"))
        out[name] = Estimate(value, None if lo is None else float(part[lo - 1]),
                             None if hi is None else float(part[hi - 1])).as_dict()
    return out


# ---------------------------------------------------------------- proportions


def wilson(k: int, n: int, level: float = CONFIDENCE, *, corrected: bool = False
           ) -> tuple[float, float]:
    """The two-sided Wilson score interval of k/n (scipy's binomtest(...).proportion_ci(
    method="wilson") to the last digit, without its import); `corrected`: with continuity
    correction (Newcombe 1998, method 4), wider by about 1/(2n) on each side."""
    if n <= 0:
        return 0.0, 1.0
    z = _norm_ppf(1 - (1 - level) / 2)
    p = k / n
    if corrected:
        zz = z * z
        lo = (2 * n * p + zz - 1 - z * math.sqrt(max(0.0, zz - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))))
        hi = (2 * n * p + zz + 1 + z * math.sqrt(max(0.0, zz + 2 - 1 / n + 4 * p * (n * (1 - p) - 1))))
        lo, hi = lo / (2 * (n + zz)), hi / (2 * (n + zz))
    else:
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        lo, hi = centre - half, centre + half
    return (0.0 if k <= 0 else max(0.0, lo)), (1.0 if k >= n else min(1.0, hi))


def rate_difference(k1: int, n1: int, k2: int, n2: int, level: float = CONFIDENCE) -> dict:
    """p2 - p1 with Newcombe's hybrid score interval with continuity correction (MOVER from
    the two corrected Wilson intervals, his method 11): it keeps its level at the margin (the
    uncorrected method 10 read 0.053 for a nominal 0.05 in benchmarks/coverage.py) and down
    to zero counts, where a Wald interval collapses to a point."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, level, corrected=True)
    l2, u2 = wilson(k2, n2, level, corrected=True)
    d = p2 - p1
    return {"rise": d, "ci_low": d - math.hypot(p2 - l2, u1 - p1),
            "ci_high": d + math.hypot(u2 - p2, p1 - l1), "level": level}


# ---------------------------------------------------------------- Hodges-Lehmann


def _count_le(xs: np.ndarray, ys: np.ndarray, d: float, full: bool = False):
    """#{(i, j): y_j - x_i <= d}, exactly as the float differences compare (one counting pass:
    a searchsorted of every y_j - d, the rows where y_j - d rounded across an x fixed up).

    With `full`, (count, below, above, idx): the largest difference <= d (None if none), the
    smallest difference > d (None if none) and, per y_j, the first i with y_j - x_i <= d."""
    n, m = len(xs), len(ys)
    idx = np.searchsorted(xs, ys - d, side="left")
    # for each y_j the differences y_j - x_i fall as i grows (rounding is monotone), so the
    # pairs counted are a suffix i >= idx_j; searchsorted on y_j - d can miss its start by the
    # rounding of that subtraction: check both neighbours of the boundary
    d_left = ys - xs[np.maximum(idx - 1, 0)]  # the smallest difference not counted, per row
    d_right = ys - xs[np.minimum(idx, n - 1)]  # the largest counted
    wrong = np.flatnonzero(((d_left <= d) & (idx > 0)) | ((d_right > d) & (idx < n)))
    if len(wrong):
        rows, y = idx[wrong], ys[wrong]
        while True:  # step over whole tie runs of x until both neighbours agree
            left = (rows > 0) & (y - xs[np.maximum(rows - 1, 0)] <= d)
            rows[left] = np.searchsorted(xs, xs[rows[left] - 1], side="left")
            right = (rows < n) & (y - xs[np.minimum(rows, n - 1)] > d)
            rows[right] = np.searchsorted(xs, xs[rows[right]], side="right")
            if not left.any() and not right.any():
                break
        idx[wrong] = rows
        d_left[wrong] = y - xs[np.maximum(rows - 1, 0)]
        d_right[wrong] = y - xs[np.minimum(rows, n - 1)]
    count = n * m - int(idx.sum())
    if not full:
        return count
    has_le, has_gt = idx < n, idx > 0
    below = float(d_right[has_le].max()) if has_le.any() else None
    above = float(d_left[has_gt].min()) if has_gt.any() else None
    return count, below, above, idx


def kth_pairwise_difference(xs: np.ndarray, ys: np.ndarray, k: int) -> float:
    """The k-th smallest (0-based) of the n*m differences y_j - x_i; xs and ys sorted."""
    return kth_pairwise_differences(xs, ys, [k])[k]


def _grid(xs: np.ndarray, ys: np.ndarray):
    """(scale, X, Y): both sorted samples as integers on the decimal grid 10^-d (d = 0..6, the
    smallest that holds them) when every value is exactly the double nearest X / 10^d (a log's
    latencies, written with 3 decimals and parsed to the nearest double), else None."""
    lim = float(1 << 50)  # |X|, |Y| and their differences exact in int64 and as doubles
    for d in range(7):
        scale = 10.0 ** d
        ok = True
        for v in (xs[:: max(1, len(xs) // 1000)], ys[:: max(1, len(ys) // 1000)], xs, ys):
            w = np.rint(v * scale)
            if not (np.abs(w) < lim).all() or not np.array_equal(w / scale, v):
                ok = False
                break
        if ok:
            return (scale, np.rint(xs * scale).astype(np.int64),
                    np.rint(ys * scale).astype(np.int64))
    return None


def _runs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted array and how many times each occurs."""
    if len(a) == 0:
        return a, np.zeros(0, dtype=np.int64)
    start = np.concatenate(([0], np.flatnonzero(a[1:] != a[:-1]) + 1))
    return a[start], np.diff(np.append(start, len(a)))


def _grid_kth(scale: float, X: np.ndarray, Y: np.ndarray, ks) -> dict[int, float]:
    """{k: k-th smallest (0-based) of the differences Y_j - X_i} / scale, the integers exact:
    count(D) = #{Y - X <= D} = sum over the distinct y of their count times #{X >= y - D}, a
    searchsorted of the distinct y into the distinct x (a log's 2.5 M latencies on a 0.001 ms
    grid hold ~100-300 k distinct values), and a search on the integer D per rank:
    interpolation on the counts, a bisection after any step that did not halve the bracket,
    each rank starting from the bracket the passes before it left. The value reported is the double nearest
    the exact decimal difference D / 10^d, which the float subtraction y - x may miss by an ulp
    (the search path's answers are those float differences)."""
    ux, cx = _runs(X)
    uy, cy = _runs(Y)
    n = len(X)
    cum = np.concatenate(([0], np.cumsum(cx)))  # cum[i] = #{X < ux[i]}

    def count(d: int) -> int:
        return int((cy * (n - cum[np.searchsorted(ux, uy - d, side="left")])).sum())

    out: dict[int, float] = {}
    known = {int(uy[0] - ux[-1]) - 1: 0, int(uy[-1] - ux[0]): n * len(Y)}  # D -> count(D)
    for k in ks:
        # the tightest bracket the passes so far give: count(lo) <= k < count(hi)
        lo = max(d for d, c in known.items() if c <= k)
        hi = min(d for d, c in known.items() if c > k)
        bisect = False
        while hi - lo > 1:
            c_lo, c_hi = known[lo], known[hi]
            if bisect:
                mid = (lo + hi) // 2
            else:  # interpolation on the counts (their CDF is smooth), kept inside
                mid = lo + round((k + 0.5 - c_lo) / (c_hi - c_lo) * (hi - lo))
                mid = min(max(mid, lo + 1), hi - 1)
            c = known[mid] = count(mid)
            span = hi - lo
            lo, hi = (lo, mid) if c > k else (mid, hi)
            # an interpolation that did not halve the bracket is followed by a bisection
            bisect = not bisect and (hi - lo) * 2 > span
        out[k] = hi / scale
    return out


_SUB = 1200  # points per sample in the sketch that seeds the search


def _sketch(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sorted differences of evenly spaced order statistics: an approximation of the
    distribution of all pairwise differences, to start each search close to its answer."""
    sx = xs[np.linspace(0, len(xs) - 1, min(len(xs), _SUB)).astype(np.int64)]
    sy = ys[np.linspace(0, len(ys) - 1, min(len(ys), _SUB)).astype(np.int64)]
    return np.sort((sy[:, None] - sx[None, :]).ravel())


@dataclass
class _Bracket:
    """count(lo) = c_lo <= k < c_hi = count(hi); `above` is the smallest difference > lo and hi
    is itself a difference, so the k-th difference lies in [above, hi]; idx_* from _count_le."""
    lo: float
    c_lo: int
    above: float
    idx_lo: np.ndarray
    hi: float
    c_hi: int
    idx_hi: np.ndarray

    def probe(self, xs: np.ndarray, ys: np.ndarray, d: float, k: int) -> None:
        c, below, above, idx = _count_le(xs, ys, d, full=True)
        if c > k:  # some difference lies in (lo, d]: `below` is one, with d's count
            self.hi, self.c_hi, self.idx_hi = below, c, idx
        else:
            self.lo, self.c_lo, self.above, self.idx_lo = d, c, above, idx


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
    if total > _GRID_ABOVE:
        grid = _grid(xs, ys)
        if grid is not None:
            return _grid_kth(*grid, ks)
    sketch = _sketch(xs, ys)
    smallest, largest = float(ys[0] - xs[-1]), float(ys[-1] - xs[0])
    floor = smallest - max(1.0, abs(smallest))  # strictly below every difference: count = 0
    out: dict[int, float] = {}
    for k in ks:
        if k in out:
            continue
        # bracket from the sketch: guesses a little either side of the k-th sketch quantile,
        # widened geometrically if the sketch was off; then interpolation on the counts
        b = _Bracket(floor, 0, smallest, np.full(m, n, dtype=np.intp),
                     largest, total, np.zeros(m, dtype=np.intp))
        ns = len(sketch)
        f = (k + 0.5) / total
        for widen in (0.002, 0.02, 0.2):
            g_lo = float(sketch[max(int((f - widen) * ns), 0)])
            g_hi = float(sketch[min(int((f + widen) * ns), ns - 1)])
            for g in (g_lo, g_hi):
                if b.lo < g < b.hi:
                    b.probe(xs, ys, g, k)
            if b.lo > floor and b.hi < largest:
                break
        _search(xs, ys, k, b, out, ks)
    return out


def _search(xs, ys, k, b: _Bracket, out, ks) -> float:
    """Narrow the bracket until one difference value or few pairs remain in it, enumerate
    those; other pending ranks that fall among them are answered on the way."""
    bisect = False
    while b.above < b.hi and b.c_hi - b.c_lo > _ENUM_LIMIT:
        span = b.c_hi - b.c_lo
        if bisect:
            frac = 0.5  # the counts jump (ties): halve the values instead
        else:
            frac = (k + 0.5 - b.c_lo) / span
            frac = min(max(frac, 1 / 256), 255 / 256)
        d = b.above + frac * (b.hi - b.above)
        if not b.above <= d < b.hi:  # adjacent floats: probe the smaller one
            d = b.above
        b.probe(xs, ys, d, k)
        # interpolation that did not halve the pairs left is met by a bisection next
        bisect = not bisect and (b.c_hi - b.c_lo) * 2 > span
    if b.above == b.hi:
        # a single difference value holds every rank in [c_lo, c_hi): the data's resolution
        for j in ks:
            if b.c_lo <= j < b.c_hi:
                out[j] = b.hi
        return b.hi
    # enumerate the pairs with lo < y - x <= hi: for each y_j, idx_hi[j] <= i < idx_lo[j]
    start, counts = b.idx_hi, b.idx_lo - b.idx_hi
    nz = counts > 0
    start, counts, yv = start[nz], counts[nz], ys[nz]
    offsets = np.repeat(start - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    xi = np.arange(int(counts.sum())) + offsets
    cand = np.repeat(yv, counts) - xs[xi]
    inside = [j for j in ks if b.c_lo <= j < b.c_hi and j not in out]
    part = np.partition(cand, [j - b.c_lo for j in inside])
    for j in inside:
        out[j] = float(part[j - b.c_lo])
    return out[k]


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
    """Two-sided Mann-Whitney U of y vs x, with the common-language effect P(Y > X) + P(=)/2:
    the same numbers as scipy.stats.mannwhitneyu(y, x, "two-sided") (its `auto` method: exact
    below 9 values without ties, which goes to scipy; else the tie-corrected normal
    approximation with continuity correction, computed here without importing scipy.stats)."""
    xs, ys = np.sort(x), np.sort(y)
    n1, n2 = len(ys), len(xs)
    u, t = _u_and_ties(xs, ys)
    if min(n1, n2) <= 8 and len(t) == n1 + n2:
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(ys, xs, alternative="two-sided").pvalue)
    else:
        from scipy.special import ndtr

        n = n1 + n2
        tie = float((t.astype(np.float64) ** 3 - t).sum())
        sd = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie / (n * (n - 1))))
        mu = n1 * n2 / 2.0
        p = 1.0 if sd == 0 else min(1.0, 2.0 * float(ndtr(-(max(u, n1 * n2 - u) - mu - 0.5) / sd)))
    return {"u": u, "p": p, "prob_y_greater": u / (len(x) * len(y))}


def _u_and_ties(xs: np.ndarray, ys: np.ndarray) -> tuple[float, np.ndarray]:
    """U = #{x < y} + #{x = y} / 2 and the tie counts of the pooled sample (every distinct
    value's count, in increasing value) from the sorted samples' runs of equal values: the
    same integers as a searchsorted of every y and np.unique of the sorted concatenation, on
    the distinct values only (a log's latencies are on a 0.001 ms grid: many ties)."""
    ux, cx = _runs(xs)
    uy, cy = _runs(ys)
    cum = np.concatenate(([0], np.cumsum(cx)))
    left = cum[np.searchsorted(ux, uy, side="left")]  # #{x < y} per distinct y
    right = cum[np.searchsorted(ux, uy, side="right")]
    u = float(int((cy * left).sum())) + 0.5 * float(int((cy * (right - left)).sum()))
    vals = np.concatenate((ux, uy))
    counts = np.concatenate((cx, cy))
    order = np.argsort(vals, kind="stable")
    uv, first = _runs(vals[order])
    t = np.add.reduceat(counts[order], np.concatenate(([0], np.cumsum(first)[:-1]))) \
        if len(uv) else counts[:0]
    return u, t


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

    u1, t = _u_and_ties(xs, ys)
    n = n1 + n2
    tie = float((t.astype(np.float64) ** 3 - t).sum())
    sd = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie / (n * (n - 1))))
    mu = n1 * n2 / 2.0
    if sd == 0:
        return 1.0
    if alternative == "greater":
        return float(ndtr(-(u1 - mu - 0.5) / sd))
    return float(ndtr((u1 - mu + 0.5) / sd))


def ratio_equivalence(xs_sorted: np.ndarray, ys_sorted: np.ndarray, *, margin_pct: float,
                      q: float = 0.5, alpha: float = TOST_ALPHA) -> dict | None:
    """Is Q_q(y) / Q_q(x) within 1 +- margin? The margin is a fixed fraction of the estimand
    itself (never a figure taken from the sample), so the test's error rate at the boundary is
    the interval's: equivalent when the (1 - 2 alpha) ratio interval lies inside
    (1 - m, 1 + m) (two one-sided tests at alpha each); different when the 95% interval lies
    wholly outside it; otherwise undecided. benchmarks/coverage.py measures the rate of
    'equivalent' at a true ratio of exactly 1 +- m."""
    m = margin_pct / 100.0
    r90 = quantile_ratio(xs_sorted, ys_sorted, q, level=1 - 2 * alpha)
    r95 = quantile_ratio(xs_sorted, ys_sorted, q, level=CONFIDENCE)
    if r90 is None or r95 is None:
        return None
    lo90, hi90, lo95, hi95 = r90["ci_low"], r90["ci_high"], r95["ci_low"], r95["ci_high"]
    equivalent = lo90 is not None and hi90 is not None and 1 - m < lo90 and hi90 < 1 + m
    different = (lo95 is not None and lo95 > 1 + m) or (hi95 is not None and hi95 < 1 - m)
    return {"estimand": f"ratio of {_qname(q)}", "q": q, "margin_pct": margin_pct,
            "bounds": [1 - m, 1 + m], "alpha": alpha, "ratio": r90["ratio"],
            "ci90": [_f(lo90), _f(hi90)], "ci95": [_f(lo95), _f(hi95)],
            "equivalent": bool(equivalent),
            "verdict": "equivalent" if equivalent else "different" if different
            else "inconclusive"}


def _qname(q: float) -> str:
    return "medians" if abs(q - 0.5) < 1e-12 else f"p{q * 100:g}s"


def compare_samples(x: np.ndarray, y: np.ndarray, *, margin_pct: float) -> dict:
    """Everything the reports say about y relative to x (x the reference): the HL shift with its
    95% interval, Mann-Whitney, and equivalence of the medians within +-margin_pct
    (`ratio_equivalence`)."""
    xs, ys = np.sort(x), np.sort(y)
    if len(xs) == 0 or len(ys) == 0:
        return {"n_ref": len(xs), "n": len(ys), "usable": False}
    ref_median = quantile_sorted(xs, 0.5)
    _, (ci95,) = hodges_lehmann(xs, ys, (CONFIDENCE,), presorted=True)
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
        out["equivalence"] = ratio_equivalence(xs, ys, margin_pct=margin_pct)
    return out
