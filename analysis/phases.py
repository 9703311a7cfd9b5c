"""Phase windows from the timeline (or the spec), and each record's phase.

A record belongs to the phase whose [start, end) window holds its `ts`. Within a phase that has
a flag mode, a record that reports a different mode is not the phase's: it was read the flag just
before a flip reached the service (or after, in the previous phase). Such records are counted per
phase as the *flip window* and left out of the phase's statistics, so every statistic is about one
mode exactly. Records without a mode (a production log, a generic target's client records) are
attributed to their phase's mode by time, except those sent between a flip's `flip_requested`
and its `flip_applied` (or after the request of a flip that failed, `flip_failed`): which mode
served them is unknown, so they are the phase's flip window too (mixed), left out of its
statistics like the records of the other mode. Warmup
(phases with analyse = false) and records outside every phase are counted and reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from execbench import rundir as rd

from .ingest import Table
from .spec import Phase, Spec


@dataclass
class PhaseWindow:
    name: str
    mode: str | None
    analysed: bool
    start: float
    end: float
    flip_requested: float | None = None
    flip_applied: float | None = None
    source: str = "timeline"
    group: str | None = None
    rate: float | None = None
    flip_failed: float | None = None  # the flip into the phase was never confirmed

    @property
    def unit(self) -> str:
        return self.group or self.name

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass
class Attribution:
    windows: list[PhaseWindow]
    phase_index: np.ndarray  # per record: index into windows, -1 outside every window
    kept: np.ndarray  # bool per record: counted in its phase's statistics
    counts: dict = field(default_factory=dict)  # per phase: total, kept, flip_window, ...
    outside: int = 0
    notes: list[str] = field(default_factory=list)
    # bool per record: in a phase and run in that phase's mode, analysed or not (`kept` is
    # this for the analysed phases); what a phase's status counts are counted over
    own_mode: np.ndarray | None = None


def windows_from_timeline(spec: Spec | None, events: list[dict], first_ts: float,
                          last_ts: float) -> tuple[list[PhaseWindow], list[str]]:
    """Phase windows from phase_start/phase_end events; the spec fills what the timeline lacks."""
    notes: list[str] = []
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    modes: dict[str, str | None] = {}
    groups: dict[str, str | None] = {}
    flips_req: dict[str, float] = {}
    flips_app: dict[str, float] = {}
    flips_failed: dict[str, float] = {}
    order: list[str] = []
    run_start = next((e["ts"] for e in events if e["event"] == rd.EV_RUN_START), None)
    run_end = next((e["ts"] for e in events if e["event"] == rd.EV_RUN_END), None)
    for e in events:
        ph, ev = e.get("phase"), e["event"]
        if ph is None:
            continue
        if ev == rd.EV_PHASE_START:
            starts.setdefault(ph, e["ts"])
            modes.setdefault(ph, e.get("mode"))
            groups.setdefault(ph, e.get("group"))
            if ph not in order:
                order.append(ph)
        elif ev == rd.EV_PHASE_END:
            ends[ph] = e["ts"]
        elif ev == rd.EV_FLIP_REQUESTED:
            flips_req.setdefault(ph, e["ts"])
        elif ev == rd.EV_FLIP_APPLIED:
            flips_app.setdefault(ph, e["ts"])
        elif ev == rd.EV_FLIP_FAILED:
            flips_failed.setdefault(ph, e["ts"])
    spec_phases = {p.name: p for p in (spec.phases if spec else [])}
    windows: list[PhaseWindow] = []
    if order:
        for i, name in enumerate(order):
            sp: Phase | None = spec_phases.get(name)
            start = starts[name]
            if name in ends:
                end = ends[name]
            elif i + 1 < len(order):
                end = starts[order[i + 1]]
            else:
                end = run_end if run_end is not None else last_ts + 1e-6
                notes.append(f"phase {name!r} has no phase_end: it ends at the run's end")
            mode = modes.get(name) or (sp.mode if sp else None)
            analysed = sp.analysed if sp else name.lower() not in ("warmup", "warm-up")
            if sp is None and spec is not None:
                notes.append(f"phase {name!r} is in the timeline but not in the spec")
            group = (sp.group if sp else None) or groups.get(name) or name
            # a flip into the first phase only sets the starting mode: not a flip to judge
            fr = flips_req.get(name) if i > 0 else None
            fa = flips_app.get(name) if i > 0 else None
            windows.append(PhaseWindow(name, mode, analysed, start, end, fr, fa,
                                       group=group, rate=sp.rate if sp else None,
                                       flip_failed=flips_failed.get(name) if i > 0 else None))
            if windows[-1].flip_failed is not None and fa is None:
                notes.append(f"the flip into {name!r} failed (never confirmed): its records "
                             "without a mode of their own are left out of its statistics")
        missing = [p.name for p in (spec.phases if spec else []) if p.name not in starts]
        if missing:
            notes.append(f"phases in the spec that never started: {', '.join(missing)}")
    elif spec and spec.phases:
        # no timeline: lay the spec's phases end to end from the run's start
        t = run_start if run_start is not None else first_ts
        notes.append("no phase events in the timeline: phases placed from the spec's durations")
        for p in spec.phases:
            dur = p.duration_s if p.duration_s is not None else math.inf
            end = t + dur if math.isfinite(dur) else last_ts + 1e-6
            windows.append(PhaseWindow(p.name, p.mode, p.analysed, t, end, source="spec",
                                       group=p.group, rate=p.rate))
            t = end
    windows.sort(key=lambda w: w.start)
    # a flip is the change of mode into a phase; without flip events, its phase start
    prev = None
    for w in windows:
        if (prev is not None and w.mode != prev.mode and w.mode is not None
                and w.flip_requested is None):
            w.flip_requested = w.start
        prev = w
    return windows, notes


def attribute(t: Table, windows: list[PhaseWindow]) -> Attribution:
    ts = t.times["ts"]
    n = t.n
    starts = np.array([w.start for w in windows])
    ends = np.array([w.end for w in windows])
    idx = np.searchsorted(starts, ts, side="right") - 1 if len(windows) else np.full(n, -1)
    valid = (idx >= 0) & ~np.isnan(ts)
    idx = np.where(valid, idx, -1)
    inside = np.zeros(n, bool)
    inside[valid] = ts[valid] < ends[idx[valid]]
    idx = np.where(inside, idx, -1)
    kept = np.zeros(n, bool)
    own_mode = np.zeros(n, bool)
    counts: dict[str, dict] = {}
    mode_codes = t.cats.get("mode")
    for k, w in enumerate(windows):
        in_phase = idx == k
        total = int(in_phase.sum())
        ok = in_phase.copy()
        mismatched = 0
        no_mode = 0
        if w.mode is not None:
            has_mode = mode_codes >= 0 if mode_codes is not None else np.zeros(n, bool)
            wrong = np.zeros(n, bool)
            if mode_codes is not None:
                wrong = in_phase & has_mode & (mode_codes != t.code("mode", w.mode))
            if w.flip_requested is not None and w.flip_applied is not None:
                # no mode of their own, sent while the flip was on its way: either mode
                wrong |= (in_phase & ~has_mode & (ts >= w.flip_requested)
                          & (ts < w.flip_applied))
            elif w.flip_requested is not None and w.flip_failed is not None:
                # the flip was never confirmed: from its request on, the mode is unknown
                wrong |= in_phase & ~has_mode & (ts >= w.flip_requested)
            mismatched = int(wrong.sum())
            no_mode = int((in_phase & ~has_mode).sum()) if mode_codes is not None else total
            ok &= ~wrong
        counts[w.name] = {"records": total, "flip_window": mismatched, "without_mode": no_mode,
                          "analysed": w.analysed, "kept": int(ok.sum()) if w.analysed else 0}
        own_mode |= ok
        if w.analysed:
            kept |= ok
    return Attribution(windows, idx, kept, counts, outside=int((idx < 0).sum()),
                       own_mode=own_mode)


def split_windows(first_ts: float, last_ts: float, split: float) -> list[PhaseWindow]:
    """`before` and `after` a deploy time, for production logs."""
    return [PhaseWindow("before", None, True, min(first_ts, split), split, source="split"),
            PhaseWindow("after", None, True, split, max(last_ts, split) + 1e-6,
                        flip_requested=split, source="split")]
