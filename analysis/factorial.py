"""What each flag is worth, alone and together: main effects and two-way interactions of a 2^k
factorial experiment on a latency quantile, with 95% intervals.

The design (issue 13, `latency-plan`): k on/off flags, every one of the 2^k combinations (cells)
run in each of several *blocks*, in a random order inside each block, so slow drift of the
machine falls on every cell alike. Per cell the q-quantile Q_c of the metric (numpy's linear
quantile, as everywhere). Effects use the usual +-1 contrast of factorial designs (Box, Hunter &
Hunter): with s_j(c) = +1 when flag j is on in cell c and -1 when off,

    effect(j)    = (2 / 2^k) * sum_c s_j(c) Q_c          = mean(Q | j on) - mean(Q | j off)
    effect(j, l) = (2 / 2^k) * sum_c s_j(c) s_l(c) Q_c   = half the change in j's effect when l
                                                           is on rather than off

so a main effect is "what turning j on saves (negative) or costs, averaged over the other flags",
and an interaction says the savings do not add up. Beside them, each flag *alone*: its cell with
every other flag off minus the all-off cell (what a rollout of that step first would see), from
two cells only, so its interval is about 2^(k/2 - 1) times wider than the main effect's. On the q-quantile, not the mean: a p95 main
effect is what the flag does to the tail.

Intervals: bootstrap over **blocks** (whole blocks resampled with replacement, the cells'
quantiles recomputed from the records of the drawn blocks), so the interval carries the
block-to-block drift the design is built to average out: the effect +- t(blocks - 1) times its
bootstrap standard error (a percentile interval from 12 blocks covered only 0.92); with fewer than MIN_BLOCKS blocks, over
records within each cell (stratified; drift then shows as bias, and the result says which).
Fixed seed: the same records give the same report. Coverage is measured in
benchmarks/coverage.py (`factorial`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
REPLICATES = 1000
MIN_BLOCKS = 8
SEED = 20261203


@dataclass(frozen=True)
class Design:
    """Which cell each record ran in (a bit per flag) and which block."""

    flags: tuple[str, ...]
    cell: np.ndarray  # int, sum of 1 << j for the flags on
    block: np.ndarray | None  # int block number, or None

    @classmethod
    def from_columns(cls, flags: dict[str, np.ndarray], block: np.ndarray | None = None) -> Design:
        names = tuple(flags)
        cell = np.zeros(len(next(iter(flags.values()))), dtype=np.int64)
        for j, name in enumerate(names):
            cell |= np.asarray(flags[name], dtype=bool).astype(np.int64) << j
        return cls(names, cell, None if block is None else np.asarray(block, dtype=np.int64))


def _contrasts(k: int) -> dict[tuple[int, ...], np.ndarray]:
    """+-1 sign vectors over the 2^k cells for every main effect and two-way interaction."""
    cells = np.arange(1 << k)
    sign = {j: np.where(cells >> j & 1, 1.0, -1.0) for j in range(k)}
    out = {(j,): sign[j] for j in range(k)}
    for j, m in itertools.combinations(range(k), 2):
        out[(j, m)] = sign[j] * sign[m]
    return out


def _cell_quantiles(groups: list[np.ndarray], q: float) -> np.ndarray:
    return np.array([np.quantile(g, q) if len(g) else np.nan for g in groups])


def effects(values: np.ndarray, design: Design, q: float = 0.5, *,
            confidence: float = CONFIDENCE, replicates: int = REPLICATES) -> dict:
    """Main effects and two-way interactions on the q-quantile of `values` (see the module
    docstring). Cells without records make every effect None (an incomplete design)."""
    v = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(v)
    v, cell = v[keep], design.cell[keep]
    block = None if design.block is None else design.block[keep]
    k = len(design.flags)
    ncell = 1 << k
    counts = np.bincount(cell, minlength=ncell)
    out = {"q": q, "flags": list(design.flags), "cells": int(ncell),
           "records_per_cell": {"min": int(counts.min()), "max": int(counts.max())},
           "confidence": confidence, "effects": {}, "cell_quantiles": None}
    if counts.min() == 0:
        out["incomplete"] = [int(c) for c in np.flatnonzero(counts == 0)]
        return out
    order = np.argsort(cell, kind="stable")
    groups = np.split(v[order], np.cumsum(counts)[:-1])
    qc = _cell_quantiles(groups, q)
    out["cell_quantiles"] = {_cell_name(c, design.flags): float(qc[c]) for c in range(ncell)}
    # each estimate is a weighted sum of the cell quantiles: the +-1 contrasts scaled by 2/2^k,
    # and a flag "alone" (its cell with every other flag off, minus the all-off cell)
    weights = {key: 2.0 / ncell * s for key, s in _contrasts(k).items()}
    for j in range(k):
        alone = np.zeros(ncell)
        alone[1 << j], alone[0] = 1.0, -1.0
        weights[("alone", j)] = alone
    point = {key: float(w @ qc) for key, w in weights.items()}

    rng = np.random.default_rng([SEED, k, int(q * 1e6)])
    blocks = np.unique(block) if block is not None else np.array([])
    if len(blocks) >= MIN_BLOCKS:
        method = (f"bootstrap over {len(blocks)} blocks: the effect +- t({len(blocks) - 1}) x "
                  "its block-bootstrap standard error")
        reps = _block_replicates(v, cell, block, blocks, ncell, q, rng, replicates)
    else:
        method = "bootstrap over records within each cell (fewer than " \
                 f"{MIN_BLOCKS} blocks: drift is not in the interval)"
        reps = np.empty((replicates, ncell))
        for c, g in enumerate(groups):
            draw = rng.integers(0, len(g), size=(replicates, len(g)))
            reps[:, c] = np.quantile(g[draw], q, axis=1)
    a = (1 - confidence) / 2
    nb = len(blocks)
    if nb >= MIN_BLOCKS:
        from scipy.special import stdtrit

        t = float(stdtrit(nb - 1, 1 - a))
    for key, w in weights.items():
        dist = reps @ w
        dist = dist[np.isfinite(dist)]
        if not len(dist):
            lo, hi = np.nan, np.nan
        elif nb >= MIN_BLOCKS:
            # the blocks' standard error (the bootstrap's, corrected for its n/(n - 1) shrink)
            # with Student's t on nb - 1: a percentile interval from 12 blocks covered 0.92
            se = float(dist.std(ddof=1)) * (nb / (nb - 1)) ** 0.5
            lo, hi = point[key] - t * se, point[key] + t * se
        else:
            lo, hi = np.quantile(dist, [a, 1 - a])
        if key[0] == "alone":
            flags, kind = [design.flags[key[1]]], "alone"
            name = f"{flags[0]} alone"
        else:
            flags = [design.flags[j] for j in key]
            kind, name = ("main" if len(key) == 1 else "interaction"), " x ".join(flags)
        out["effects"][name] = {"flags": flags, "kind": kind, "value": point[key],
                                "ci_low": float(lo), "ci_high": float(hi)}
    out["interval_method"] = method
    return out


def _block_replicates(v, cell, block, blocks, ncell, q, rng, replicates) -> np.ndarray:
    """Cell quantiles of `replicates` block resamples: each draws len(blocks) blocks with
    replacement and pools their records per cell (a block drawn twice counts twice).

    Vectorized without building the pooled samples: a resample is a weight per block (how often
    it was drawn), so the pooled sample of a cell is its sorted values each repeated by its
    block's weight; numpy's linear quantile of that multiset sits at position h = (N - 1) q and
    interpolates between the values of (0-based) ranks floor(h) and floor(h) + 1, found on the
    cumulative weights."""
    index = {b: i for i, b in enumerate(blocks.tolist())}
    bi = np.array([index[b] for b in block.tolist()])
    nb = len(blocks)
    drawn = rng.integers(0, nb, size=(replicates, nb))
    weights = np.zeros((replicates, nb), dtype=np.int64)
    np.add.at(weights, (np.repeat(np.arange(replicates), nb), drawn.ravel()), 1)
    reps = np.full((replicates, ncell), np.nan)
    for c in range(ncell):
        in_cell = cell == c
        order = np.argsort(v[in_cell], kind="stable")
        values, owner = v[in_cell][order], bi[in_cell][order]
        if not len(values):
            continue
        cum = np.cumsum(weights[:, owner], axis=1)  # replicates x records of the cell
        total = cum[:, -1]
        ok = total > 0
        h = (total - 1) * q
        lo = np.floor(h)
        # the value of 0-based rank k is the first record whose cumulative weight exceeds k
        i_lo = (cum <= lo[:, None]).sum(axis=1)
        i_hi = (cum <= np.minimum(lo + 1, total - 1)[:, None]).sum(axis=1)
        i_lo, i_hi = np.minimum(i_lo, len(values) - 1), np.minimum(i_hi, len(values) - 1)
        reps[ok, c] = (values[i_lo] + (h - lo) * (values[i_hi] - values[i_lo]))[ok]
    return reps


def _cell_name(c: int, flags: tuple[str, ...]) -> str:
    on = [f for j, f in enumerate(flags) if c >> j & 1]
    return "+".join(on) if on else "all off"
