"""Factorial effects on synthetic 2^k designs with known effects (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.factorial import Design, effects

FLAGS = ("provider_skip", "keepalive", "parallel_config", "async_logging")
TRUE = {"provider_skip": -165.0, "keepalive": -30.0, "parallel_config": -20.0, "async_logging": -5.0}


def _experiment(rng, blocks=12, per_cell=40, interaction=0.0, drift=15.0):
    """Every cell in every block; a latency of 296 ms all off, each flag subtracting its saving
    (plus an optional keepalive x parallel_config interaction), block drift, lognormal noise."""
    rows = []
    for b in range(blocks):
        offset = rng.normal(0, drift)
        for cell in rng.permutation(1 << len(FLAGS)):
            on = [(cell >> j) & 1 for j in range(len(FLAGS))]
            mean = 296.0 + sum(TRUE[f] * x for f, x in zip(FLAGS, on)) + offset
            mean += interaction * on[1] * on[2]
            noise = rng.lognormal(0, 0.25, per_cell) * 20 - 20 * np.exp(0.25 ** 2 / 2)
            for y in mean + noise:
                rows.append((y, *on, b))
    a = np.array(rows)
    return a[:, 0], Design.from_columns({f: a[:, 1 + j] for j, f in enumerate(FLAGS)},
                                        block=a[:, -1])


def test_main_effects_are_each_flags_saving_and_their_intervals_cover_it():
    y, design = _experiment(np.random.default_rng(1))
    r = effects(y, design, 0.5, replicates=300)
    assert r["interval_method"].startswith("bootstrap over 12 blocks")
    for flag, saving in TRUE.items():
        e = r["effects"][flag]
        assert e["kind"] == "main"
        assert e["ci_low"] <= saving <= e["ci_high"], (flag, e)
        assert abs(e["value"] - saving) < 4, (flag, e)
    for name, e in r["effects"].items():
        if e["kind"] == "interaction":  # none built in
            assert e["ci_low"] <= 0 <= e["ci_high"], (name, e)
    assert r["cell_quantiles"]["all off"] == pytest.approx(296, abs=8)


def test_an_interaction_is_half_the_change_of_one_flags_effect_with_the_other():
    """keepalive saves 30 ms alone but only 10 with parallel_config on (interaction +20):
    the contrast reads +10, i.e. half of +20."""
    y, design = _experiment(np.random.default_rng(2), interaction=20.0, drift=0.0)
    r = effects(y, design, 0.5, replicates=300)
    e = r["effects"]["keepalive x parallel_config"]
    assert e["kind"] == "interaction" and abs(e["value"] - 10.0) < 3, e
    assert e["ci_low"] > 0
    assert abs(r["effects"]["keepalive"]["value"] - (-30 + 10)) < 3  # averaged over the other


def test_few_blocks_fall_back_to_records_and_say_so_and_an_empty_cell_decides_nothing():
    y, design = _experiment(np.random.default_rng(3), blocks=3)
    r = effects(y, design, 0.95, replicates=200)
    assert "within each cell" in r["interval_method"]
    assert set(r["effects"]) >= set(FLAGS)
    missing = design.cell != 0
    partial = Design(design.flags, design.cell[missing], design.block[missing])
    r = effects(y[missing], partial, 0.5)
    assert r["effects"] == {} and r["incomplete"] == [0]


def test_the_same_records_give_the_same_intervals():
    y, design = _experiment(np.random.default_rng(4), blocks=8, per_cell=10)
    assert effects(y, design, replicates=100) == effects(y, design, replicates=100)
