"""Statistics on synthetic data with known distributions (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import stats


# Hypothesis tests are derandomized: the same examples on every run, so CI cannot fail on a
# draw it never made before.
@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0]))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_quantiles_equal_numpy_linear(values, p):
    xs = np.sort(np.array(values))
    assert stats.quantile_sorted(xs, p) == np.quantile(xs, p)


def test_describe_quantiles_are_numpys():
    x = np.random.default_rng(3).lognormal(5, 0.3, 10001)
    d = stats.describe(x)
    for name, p in stats.QUANTILES.items():
        assert d[name]["value"] == np.quantile(x, p)
        assert d[name]["ci_low"] <= d[name]["value"] <= d[name]["ci_high"]
    assert d["count"] == 10001 and d["mean"] == pytest.approx(x.mean())


@pytest.mark.parametrize("n,p", [(10, 0.5), (30, 0.5), (100, 0.5), (100, 0.95), (600, 0.99),
                                 (5000, 0.9)])
def test_order_statistic_ranks_hold_their_level_by_the_binomial(n, p):
    """P(X_(l) <= q <= X_(u)) = P(l <= B <= u - 1), B ~ Binomial(n, p): at least 95%, and
    neither rank can move inwards without dropping below it on its side."""
    from scipy.stats import binom

    lo, hi = stats.order_statistic_ranks(n, p)
    assert binom.cdf(lo - 1, n, p) <= 0.025 < binom.cdf(lo, n, p)
    assert binom.cdf(hi - 1, n, p) >= 0.975 > binom.cdf(hi - 2, n, p)
    assert binom.cdf(hi - 1, n, p) - binom.cdf(lo - 1, n, p) >= 0.95


def test_the_textbook_median_ranks_and_the_bounds_too_few_values_cannot_give():
    assert stats.order_statistic_ranks(100, 0.5) == (40, 61)
    # 0.99^100 = 0.37: X_(100) is above p99 with probability 0.63, so there is no upper bound
    assert stats.order_statistic_ranks(100, 0.99) == (97, None)
    assert stats.order_statistic_ranks(30, 0.95)[1] is None
    assert stats.order_statistic_ranks(5, 0.5) == (None, None)  # 2 * 0.5^5 = 0.0625 > 0.05
    e = stats.quantile_with_ci(np.sort(np.random.default_rng(1).lognormal(5, 0.3, 100)), 0.99)
    assert e.ci_low is not None and e.ci_high is None


@pytest.mark.parametrize("p", [0.5, 0.95, 0.99])
def test_quantile_intervals_cover_skewed_data(p):
    rng = np.random.default_rng(2026)
    mu, sigma, n, sims = np.log(250), 0.5, 600, 400
    from scipy.stats import norm

    truth = np.exp(mu + sigma * norm.ppf(p))
    hits = 0
    for _ in range(sims):
        est = stats.quantile_with_ci(np.sort(rng.lognormal(mu, sigma, n)), p)
        hits += est.ci_low <= truth <= est.ci_high
    # at least 95% by construction; with 400 simulations the binomial s.e. is ~0.011
    assert hits / sims >= 0.93, hits / sims


def test_the_ratio_interval_covers_a_known_ratio():
    rng = np.random.default_rng(7)
    hits, sims = 0, 300
    for _ in range(sims):
        x = np.sort(rng.lognormal(np.log(253), 0.3, 120))
        y = np.sort(rng.lognormal(np.log(253), 0.3, 120) * 0.35)
        r = stats.quantile_ratio(x, y, 0.5)
        hits += r["ci_low"] <= 0.35 <= r["ci_high"]
    assert hits / sims >= 0.93, hits / sims
    assert stats.quantile_ratio(np.zeros(50), np.ones(50), 0.5) is None  # no ratio of a 0


@given(st.lists(st.integers(0, 30), min_size=1, max_size=60),
       st.lists(st.integers(0, 30), min_size=1, max_size=60), st.data())
@settings(max_examples=100, deadline=None, derandomize=True)
def test_kth_pairwise_difference_is_exact_with_ties(a, b, data):
    xs, ys = np.sort(np.array(a, float)), np.sort(np.array(b, float))
    diffs = np.sort((ys[:, None] - xs[None, :]).ravel())
    k = data.draw(st.integers(0, len(diffs) - 1))
    old = stats._ENUM_LIMIT
    try:
        stats._ENUM_LIMIT = 3  # force the search path even for small samples
        assert stats.kth_pairwise_difference(xs, ys, k) == diffs[k]
    finally:
        stats._ENUM_LIMIT = old


def test_hodges_lehmann_equals_the_median_of_pairwise_differences():
    rng = np.random.default_rng(4)
    x, y = rng.normal(100, 10, 1500), rng.normal(108, 10, 1700)
    diffs = (y[:, None] - x[None, :]).ravel()
    old = stats._ENUM_LIMIT
    try:
        stats._ENUM_LIMIT = 10_000
        est, (ci,) = stats.hodges_lehmann(x, y)
    finally:
        stats._ENUM_LIMIT = old
    assert est == pytest.approx(np.median(diffs), abs=1e-9)
    lo_k, hi_k = stats.hl_ranks(len(x), len(y), 0.95)
    s = np.sort(diffs)
    assert ci.ci_low == pytest.approx(s[lo_k]) and ci.ci_high == pytest.approx(s[hi_k])
    assert ci.ci_low < 8 < ci.ci_high


def test_hodges_lehmann_large_samples_are_exact():
    """200k x 200k = 4e10 pairs: the estimate is exactly the median pair difference, which the
    rank counts prove without forming the pairs."""
    rng = np.random.default_rng(5)
    x = np.sort(rng.lognormal(np.log(253), 0.2, 200_001))
    y = np.sort(rng.lognormal(np.log(88), 0.2, 199_999))  # n*m odd: one middle pair
    est, (ci,) = stats.hodges_lehmann(x, y, presorted=True)
    total = len(x) * len(y)
    # est is the middle difference: just below it at most half the differences, just above it
    # more than half (up to float rounding: +-1e-9 relative, a few dozen of 4e10 pairs)
    def brackets(d, k):
        eps = 1e-9 * abs(d)
        return stats._count_le(x, y, d - eps) <= k < stats._count_le(x, y, d + eps)

    assert brackets(est, total // 2)
    lo_k, hi_k = stats.hl_ranks(len(x), len(y), 0.95)
    assert brackets(ci.ci_low, lo_k) and brackets(ci.ci_high, hi_k)
    assert ci.ci_low <= est <= ci.ci_high and ci.ci_high - ci.ci_low < 1.0
    assert -170 < est < -160


def test_small_sample_hl_ranks_come_from_the_exact_null_distribution():
    """Below 50 per sample the interval's ranks are R's (qwilcox), from P(U <= u) that equals
    scipy's exact Mann-Whitney p; the interval then covers a true shift at least nominally."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(21)
    for n, m in ((3, 3), (7, 9), (12, 20), (30, 41)):
        x, y = rng.normal(size=n), rng.normal(size=m)
        res = mannwhitneyu(y, x, alternative="less", method="exact")
        assert stats._u_null_cdf(n, m)[int(res.statistic)] == pytest.approx(res.pvalue, rel=1e-9)
    assert stats.hl_ranks(10, 10, 0.95) == (23, 76)  # R: qwilcox(0.025, 10, 10) = 24
    covered, sims = 0, 400
    for _ in range(sims):
        x, y = rng.normal(100, 10, 12), rng.normal(105, 10, 15)
        _, (ci,) = stats.hodges_lehmann(x, y)
        covered += ci.ci_low <= 5 <= ci.ci_high
    assert 0.93 <= covered / sims <= 0.99, covered / sims  # 95 % (0.945 in this draw), +- noise


def test_equivalence_is_the_90_percent_ratio_interval_inside_the_margin():
    rng = np.random.default_rng(3)
    verdicts = []
    for _ in range(150):
        x = np.sort(rng.lognormal(np.log(100), 0.2, 60))
        y = np.sort(rng.lognormal(np.log(100), 0.2, 80) * rng.uniform(0.85, 1.15))
        eq = stats.compare_samples(x, y, margin_pct=12)["equivalence"]
        lo, hi = eq["ci90"]
        assert (0.88 < lo and hi < 1.12) == eq["equivalent"], eq
        verdicts.append(eq["verdict"])
    assert {"equivalent", "inconclusive"} <= set(verdicts)  # both outcomes were exercised


def _mwu_rejections(shift_factor, sims=200, n=200):
    rng = np.random.default_rng(7)
    rej = 0
    for _ in range(sims):
        x = rng.lognormal(np.log(250), 0.2, n)
        y = rng.lognormal(np.log(250), 0.2, n) * shift_factor
        rej += stats.mann_whitney(x, y)["p"] < 0.05
    return rej / sims


def test_mann_whitney_detects_a_ten_percent_shift():
    assert _mwu_rejections(1.10) > 0.95


def test_mann_whitney_does_not_detect_a_null_shift():
    assert _mwu_rejections(1.0) < 0.09  # nominal 0.05


def test_equivalence_of_equal_samples_and_difference_of_shifted_ones():
    rng = np.random.default_rng(8)
    x = np.sort(rng.lognormal(np.log(250), 0.2, 3000))
    same = np.sort(rng.lognormal(np.log(250), 0.2, 3000))
    eq = stats.ratio_equivalence(x, same, margin_pct=5)
    assert eq["verdict"] == "equivalent" and 0.95 < eq["ci90"][0] and eq["ci90"][1] < 1.05
    ne = stats.ratio_equivalence(x, same * 1.10, margin_pct=5)
    assert ne["verdict"] == "different" and ne["ci95"][0] > 1.05


def test_equivalence_at_the_margin_is_claimed_at_most_alpha():
    """A true ratio of medians exactly 1.05 at +-5%: 'equivalent' <= 5% of the time (0.043 at
    n = 600 in benchmarks/coverage.py); 200 simulations, so the bound here has room."""
    rng = np.random.default_rng(9)
    claims, sims = 0, 200
    for _ in range(sims):
        x = np.sort(rng.lognormal(np.log(250), 0.2, 600))
        y = np.sort(rng.lognormal(np.log(250), 0.2, 600) * 1.05)
        claims += stats.ratio_equivalence(x, y, margin_pct=5)["equivalent"]
    assert claims / sims < 0.09


@pytest.mark.parametrize("n1,n2,rounding", [(5, 40, 1), (40, 300, 1), (500, 700, 0), (2000, 90, 3)])
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_one_sided_mann_whitney_equals_scipy(n1, n2, rounding, alternative):
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(n1 + n2)
    x = np.round(rng.normal(100, 10, n1), rounding)
    y = np.round(rng.normal(102, 10, n2), rounding)
    method = "auto" if min(n1, n2) <= 8 else "asymptotic"
    want = mannwhitneyu(y, x, alternative=alternative, method=method).pvalue
    got = stats.mwu_one_sided(np.sort(x), np.sort(y), alternative)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-300)


def test_kth_pairwise_difference_stops_at_the_datas_resolution(monkeypatch):
    """Values on a 0.001 grid (like the logs' latencies): one tied difference holds more pairs
    than _ENUM_LIMIT, and its pairs differ in the last bits (253.417 - 88.102 and 253.418 -
    88.103 round apart). The search must return the exact order statistic after a few counting
    passes, not bisect the tie down to 1e-12 (the former search took 436 passes here)."""
    rng = np.random.default_rng(11)
    xs = np.sort(np.round(rng.lognormal(np.log(253), 0.0005, 1500), 3))
    ys = np.sort(np.round(rng.lognormal(np.log(88), 0.0005, 1700), 3))
    diffs = np.sort((ys[:, None] - xs[None, :]).ravel())
    total = len(diffs)
    monkeypatch.setattr(stats, "_ENUM_LIMIT", 1000)
    mid = total // 2
    assert np.count_nonzero(np.isclose(diffs, diffs[mid], rtol=0, atol=1e-6)) > 5 * 1000
    lo_k, hi_k = stats.hl_ranks(len(xs), len(ys), 0.95)
    ks = [mid - 1, mid, lo_k, hi_k, *rng.integers(0, total, 4).tolist()]
    passes = []
    count_le = stats._count_le
    monkeypatch.setattr(stats, "_count_le", lambda *a, **kw: passes.append(1) or count_le(*a, **kw))
    got = stats.kth_pairwise_differences(xs, ys, ks)
    assert {k: got[k] for k in ks} == {k: float(diffs[k]) for k in ks}
    assert len(passes) <= 6 * len(ks), len(passes)
    est, (ci,) = stats.hodges_lehmann(xs, ys, presorted=True)
    assert est == (diffs[mid - 1] + diffs[mid]) / 2
    assert (ci.ci_low, ci.ci_high) == (diffs[lo_k], diffs[hi_k])


@pytest.mark.parametrize("n1,n2,rounding", [(3, 5, 3), (5, 40, 0), (40, 300, 1), (700, 500, 0),
                                            (60, 60, 2)])
def test_two_sided_mann_whitney_equals_scipy(n1, n2, rounding):
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(n1 * 7 + n2)
    x = np.round(rng.normal(100, 10, n1), rounding)
    y = np.round(rng.normal(103, 10, n2), rounding)
    want = mannwhitneyu(y, x, alternative="two-sided")
    got = stats.mann_whitney(x, y)
    assert got["u"] == float(want.statistic)
    assert got["p"] == pytest.approx(float(want.pvalue), rel=1e-9)


@pytest.mark.parametrize("decimals", [0, 1, 3])
def test_kth_pairwise_difference_on_a_decimal_grid_is_the_exact_decimal(monkeypatch, decimals):
    """Above _GRID_ABOVE pairs, samples on a decimal grid are counted on the grid's integers:
    each answer is the double nearest the exact difference of the two decimals, the float
    subtraction's order statistic to within an ulp, with no counting pass over every value."""
    rng = np.random.default_rng(decimals + 20)
    xs = np.sort(np.round(rng.lognormal(np.log(253), 0.2, 1300), decimals))
    ys = np.sort(np.round(rng.lognormal(np.log(88), 0.2, 1100), decimals))
    scale = 10.0 ** decimals
    X, Y = np.rint(xs * scale).astype(np.int64), np.rint(ys * scale).astype(np.int64)
    exact = np.sort((Y[:, None] - X[None, :]).ravel())
    floats = np.sort((ys[:, None] - xs[None, :]).ravel())
    total = len(exact)
    lo_k, hi_k = stats.hl_ranks(len(xs), len(ys), 0.95)
    ks = [0, total - 1, total // 2 - 1, total // 2, lo_k, hi_k, *rng.integers(0, total, 4).tolist()]
    monkeypatch.setattr(stats, "_ENUM_LIMIT", 1000)
    monkeypatch.setattr(stats, "_GRID_ABOVE", 1000)
    monkeypatch.setattr(stats, "_count_le", None)  # the float search is not used
    got = stats.kth_pairwise_differences(xs, ys, ks)
    for k in ks:
        assert got[k] == exact[k] / scale
        assert got[k] == pytest.approx(floats[k], rel=1e-12, abs=1e-12)


def test_the_grid_path_leaves_continuous_data_to_the_search():
    rng = np.random.default_rng(21)
    xs, ys = np.sort(rng.lognormal(5, 0.2, 500)), np.sort(rng.lognormal(5, 0.2, 400))
    assert stats._grid(xs, ys) is None
    assert stats._grid(np.round(xs, 3), np.round(ys, 3))[0] == 1000.0


def test_mann_whitney_counts_from_runs_equal_the_per_value_ones():
    rng = np.random.default_rng(22)
    for rounding in (0, 1, 3):
        xs = np.sort(np.round(rng.lognormal(5, 0.3, 2000), rounding))
        ys = np.sort(np.round(rng.lognormal(5.05, 0.3, 1500), rounding))
        u, t = stats._u_and_ties(xs, ys)
        left, right = np.searchsorted(xs, ys, "left"), np.searchsorted(xs, ys, "right")
        assert u == float(left.sum()) + 0.5 * float((right - left).sum())
        assert np.array_equal(t, np.unique(np.concatenate((xs, ys)), return_counts=True)[1])
