"""Recovery after a flip: how long until a flow is back at the level it should return to.

The level is the *baseline's* when the flip returns to the baseline's mode (a rollback), else the
target phase's own steady level (its second half; a flip into a new mode has no other reference).
A rollback whose latency never comes back to the baseline's level never recovers, and FAILs.

Two stages:

1. Coarse: a centred rolling p50 over windows of `window_s` every `step_s` (windows hold only
   post-flip records: a window straddling the flip mixes the two regimes). The first window in
   the band (+-tolerance of the target) that no out-of-band window follows within `hold_s`
   says *that* the flow recovered and roughly when. Alone it reads late: a window's median
   enters the band only once clearly more than half of its records are in the new regime, and
   how much more depends on the two levels' spread (a median bias of +1.0 s at the default
   5 s window and 10 records/s, measured by benchmarks/recovery_bias.py).
2. Fine: with the level before the flip known (the previous phase's p50), each record in the
   span up to the coarse recovery plus one window is classed by which level it is nearer on a
   log scale, and the change point is the time that misclasses the fewest records (a step
   fitted by 0/1 loss, exact over every record time). For a step change its error is a few
   inter-arrival times, whatever the window. When the two levels lie within the band of each
   other (nothing to recover from), or the previous level is unknown, the coarse figure stands,
   with its resolution: the first window says only "at most w/4".

`resolution_s` is printed with each estimate: the median absolute error the method showed at
this record rate in benchmarks/recovery_bias.py's simulation is what a reader should expect;
the field itself states the method's granularity (the mean gap between records for the fine
stage, w/4 or `step_s` for the coarse).
"""

from __future__ import annotations

import math

import numpy as np


def rolling_median(t: np.ndarray, v: np.ndarray, centers: np.ndarray, width: float,
                   min_count: int) -> np.ndarray:
    """Median of v over the time window [c - width/2, c + width/2) for each centre c
    (NaN where fewer than min_count samples). t must be sorted."""
    lo = np.searchsorted(t, centers - width / 2, side="left")
    hi = np.searchsorted(t, centers + width / 2, side="left")
    out = np.full(len(centers), np.nan)
    for i, (a, b) in enumerate(zip(lo, hi)):
        if b - a >= min_count:
            out[i] = np.median(v[a:b])
    return out


def change_point(t: np.ndarray, v: np.ndarray, *, old: float, new: float, start: float) -> float:
    """The time c >= start that best splits the records into `old` before and `new` after:
    each record is classed by the nearer level on a log scale, and c minimises the records on
    the wrong side (ties: the earliest). t sorted."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lv = np.log(np.maximum(v, 1e-9))
    is_new = np.abs(lv - math.log(max(new, 1e-9))) < np.abs(lv - math.log(max(old, 1e-9)))
    # a split just before record i: new-like records before it + old-like records from it on
    new_before = np.concatenate(([0], np.cumsum(is_new)))
    old_after = np.concatenate((np.cumsum((~is_new)[::-1])[::-1], [0]))
    cost = new_before + old_after
    i = int(np.argmin(cost))
    if i == 0:
        return start
    if i == len(t):
        return float(t[-1])
    return float((t[i - 1] + t[i]) / 2)  # between the last old-like and the first new-like


def recovery_time(
    t: np.ndarray, v: np.ndarray, *, flip_ts: float, end_ts: float, target: float,
    tolerance_pct: float, window_s: float, step_s: float, hold_s: float, min_count: int = 10,
    before: float | None = None, target_phase: str | None = None,
) -> dict:
    """Seconds from `flip_ts` until the post-flip series settles within +-tolerance of `target`
    and stays there for `hold_s` (or until `end_ts`, if that comes first); None if it never
    does. `before`: the level before the flip, for the fine stage (see the module docstring)."""
    after = t >= flip_ts
    t, v = t[after], v[after]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    centers = np.arange(flip_ts, end_ts + 1e-9, step_s)
    band = abs(target) * tolerance_pct / 100.0
    med = rolling_median(t, v, centers, window_s, min_count)
    ok = np.abs(med - target) <= band
    known = ~np.isnan(med)
    result = {"target_p50": float(target), "target_phase": target_phase,
              "before_p50": None if before is None else float(before),
              "tolerance_pct": tolerance_pct, "window_s": window_s,
              "step_s": step_s, "hold_s": hold_s, "recovery_s": None, "at_most_s": None,
              "resolution_s": None, "method": None,
              "recovered_at": None, "excursions_after": None,
              "series": {"t": (centers - flip_ts).round(6).tolist(),
                         "p50": [None if math.isnan(x) else round(float(x), 4) for x in med]}}
    n = len(centers)
    hold_steps = max(round(hold_s / step_s), 0)
    # bad[i]: a known window outside the band; a candidate start must be ok itself and no bad
    # window may follow it within the hold (windows with too few samples neither count nor break)
    bad = known & ~ok
    bad_cum = np.concatenate(([0], np.cumsum(bad)))
    for i in range(n):
        if not (known[i] and ok[i]):
            continue
        j = min(n, i + hold_steps + 1)
        if bad_cum[j] - bad_cum[i] != 0:
            continue
        r = float(centers[i] - flip_ts)
        result["excursions_after"] = int(bad_cum[n] - bad_cum[i])
        if before is not None and abs(before - target) > band:
            span = t < flip_ts + r + window_s
            if span.sum() >= min_count:
                c = change_point(t[span], v[span], old=before, new=target, start=flip_ts)
                gap = (float(t[span][-1] - t[span][0]) / max(int(span.sum()) - 1, 1))
                result.update(recovery_s=max(c - flip_ts, 0.0), method="change point",
                              resolution_s=round(gap, 3))
                break
        half = window_s / 2
        if r <= 1e-9:
            result.update(recovery_s=0.0, at_most_s=window_s / 4, resolution_s=window_s / 4)
        else:
            result.update(recovery_s=(r + half) / 2 if r < half else r,
                          resolution_s=step_s)
        result["method"] = "rolling p50"
        break
    if result["recovery_s"] is not None:
        result["recovered_at"] = float(flip_ts + result["recovery_s"])
    return result


def recovery_text(r: dict) -> str:
    """A recovery result for people: 'never', '<= w/4' when the first post-flip window was
    already in the band (the method cannot resolve finer), else seconds with one decimal."""
    rs = r["recovery_s"]
    if r.get("resolvable") is False:
        return "not resolvable (too few records)"
    if rs is None:
        return "never"
    if r.get("at_most_s"):
        return f"<= {r['at_most_s']:.2f}".rstrip("0").rstrip(".")
    return f"{rs:.1f}"
