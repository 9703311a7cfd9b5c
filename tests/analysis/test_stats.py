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
    d = stats.describe(x, "t")
    for name, p in stats.QUANTILES.items():
        assert d[name]["value"] == np.quantile(x, p)
        assert d[name]["ci_low"] <= d[name]["value"] <= d[name]["ci_high"]
    assert d["count"] == 10001 and d["mean"] == pytest.approx(x.mean())


def test_bootstrap_is_reproducible():
    x = np.random.default_rng(3).lognormal(5, 0.3, 1000)
    assert stats.describe(x, "a", "b") == stats.describe(x, "a", "b")
    assert stats.describe(x, "a", "b")["p50"] != stats.describe(x, "a", "c")["p50"]


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_order_statistic_bootstrap_matches_brute_force_resampling(p):
    """The Beta shortcut draws from the same distribution as resampling with replacement."""
    rng = np.random.default_rng(11)
    xs = np.sort(rng.lognormal(5.5, 0.25, 400))
    fast = stats.bootstrap_quantile_replicates(xs, p, np.random.default_rng(1), 20000)
    brute = np.quantile(rng.choice(xs, (20000, len(xs)), replace=True), p, axis=1)
    probe = [0.025, 0.1, 0.5, 0.9, 0.975]
    spread = np.quantile(brute, 0.975) - np.quantile(brute, 0.025)
    assert np.allclose(np.quantile(fast, probe), np.quantile(brute, probe), atol=0.05 * spread)
    from scipy.stats import ks_2samp

    assert ks_2samp(fast, brute).pvalue > 1e-3


@pytest.mark.parametrize("p", [0.5, 0.9, 0.95])
def test_bootstrap_intervals_cover_at_about_the_nominal_rate(p):
    rng = np.random.default_rng(2026)
    mu, sigma, n, sims = np.log(250), 0.2, 400, 400
    from scipy.stats import norm

    truth = np.exp(mu + sigma * norm.ppf(p))
    hits = 0
    for i in range(sims):
        x = np.sort(rng.lognormal(mu, sigma, n))
        est = stats.quantile_with_ci(x, p, np.random.default_rng(i), b=2000)
        hits += est.ci_low <= truth <= est.ci_high
    coverage = hits / sims
    # nominal 0.95; with 400 simulations the binomial s.e. is ~0.011
    assert 0.91 <= coverage <= 0.99, coverage


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


def test_small_sample_tost_agrees_with_its_90_percent_hl_interval():
    """Below 50 per sample both the TOST p and the interval's ranks come from the exact null
    distribution: equivalent exactly when the 90% HL interval lies inside +-delta."""
    rng = np.random.default_rng(3)
    verdicts = []
    for _ in range(150):
        x, y = rng.normal(100, 10, 20), rng.normal(100 + rng.uniform(-8, 8), 10, 25)
        eq = stats.compare_samples(x, y, margin_pct=12)["equivalence"]
        inside = -eq["delta"] < eq["ci90_ms"][0] and eq["ci90_ms"][1] < eq["delta"]
        assert inside == eq["equivalent"], eq
        verdicts.append(eq["equivalent"])
    assert 0 < sum(verdicts) < len(verdicts)  # both outcomes were exercised


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


def test_tost_passes_for_equal_samples_and_fails_for_shifted():
    rng = np.random.default_rng(8)
    x = rng.lognormal(np.log(250), 0.2, 3000)
    same = rng.lognormal(np.log(250), 0.2, 3000)
    shifted = same * 1.10
    eq = stats.compare_samples(x, same, margin_pct=5)["equivalence"]
    assert eq["equivalent"] and eq["p"] < 0.05
    assert -eq["delta"] < eq["ci90_ms"][0] and eq["ci90_ms"][1] < eq["delta"]
    ne = stats.compare_samples(x, shifted, margin_pct=5)["equivalence"]
    assert not ne["equivalent"] and ne["p"] > 0.05


def test_tost_false_equivalence_rate_at_the_margin_is_at_most_alpha():
    """At a true shift equal to the margin, equivalence must be claimed <= ~5% of the time."""
    rng = np.random.default_rng(9)
    claims = 0
    sims = 200
    for _ in range(sims):
        x = rng.normal(250, 20, 400)
        y = rng.normal(250, 20, 400) + 12.5  # margin: 5% of 250
        claims += stats.tost(x, y, 12.5)["equivalent"]
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
