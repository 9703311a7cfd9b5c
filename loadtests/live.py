"""The live terminal view of a run: phase, elapsed, rate, client p50/p99 per flow, failures.

Fed by the same raw records as requests.jsonl. On a terminal it is a rich Live panel; when
stdout is not a terminal (CI, a pipe) it prints one status line every few seconds instead.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def secs(x: float) -> str:
    """A planned duration: whole seconds as such, a 7.5 s warmup (a scaled experiment) as 7.5,
    not rounded to 8."""
    x = round(float(x), 1)  # 0.1 x 30 s is 3.0000000000000004 s: "3"
    return f"{x:.0f}" if x.is_integer() else f"{x:.1f}"


class LiveStats:
    def __init__(self):
        self.latencies: dict[tuple[str, str], collections.deque] = {}
        self.sends: collections.deque = collections.deque(maxlen=200_000)
        self.total = 0
        self.failures = 0
        self.rejections = 0
        self.late = 0
        self.skipped = 0
        self.flows: list[str] = []  # in order of first appearance: the target's, whatever they are

    def observe(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            if rec["outcome"] == "skipped":  # an arrival nothing was sent for
                self.skipped += 1
                continue
            self.total += 1
            self.sends.append(rec["sent"])
            if rec["outcome"] == "failure":
                self.failures += 1
            elif rec["outcome"] == "expected_rejection":
                self.rejections += 1
            if rec["late"]:
                self.late += 1
            if rec["outcome"] != "failure":
                key = (rec["phase"], rec["flow"])
                if rec["flow"] not in self.flows:
                    self.flows.append(rec["flow"])
                if key not in self.latencies:
                    self.latencies[key] = collections.deque(maxlen=20_000)
                self.latencies[key].append(rec["latency_ms"])

    def rate(self, window: float = 5.0) -> float:
        now = time.time()
        n = 0
        for ts in reversed(self.sends):
            if ts < now - window:
                break
            n += 1
        return n / window

    def quantiles(self, phase: str | None, flow: str) -> tuple[float, float, int] | None:
        values = self.latencies.get((phase, flow))
        if not values:
            return None
        arr = np.fromiter(values, dtype=float)
        return float(np.quantile(arr, 0.5)), float(np.quantile(arr, 0.99)), arr.size


class LiveView:
    def __init__(self, conductor, stats: LiveStats, console: Console | None = None,
                 interval: float = 5.0):
        self.conductor = conductor
        self.stats = stats
        self.console = console or Console()
        self.interval = interval
        self._live = None
        self._last_line = 0.0

    def __enter__(self):
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self.render(), console=self.console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc):
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.__exit__(*exc)

    def update(self) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
        elif time.time() - self._last_line >= self.interval:
            self._last_line = time.time()
            # one line per status, however narrow the pipe: never wrapped mid-field
            self.console.print(self.line(), highlight=False, soft_wrap=True)

    def _phase(self):
        c = self.conductor
        exp = c.experiment
        if not c.started:
            return None, "starting", 0.0, 0.0
        i = c.current
        if 0 <= i < len(exp.phases):
            p = exp.phases[i]
            return p, p.name, time.time() - (c.t0 + p.start_s), p.duration_s
        return None, "draining" if i >= len(exp.phases) else "starting", 0.0, 0.0

    def line(self) -> str:
        c = self.conductor
        p, name, elapsed, duration = self._phase()
        total = max(0.0, time.time() - c.t0) if c.started else 0.0
        parts = [f"[{total:6.1f}/{secs(c.experiment.total_s)} s] {name}"]
        if p is not None:
            parts.append(f"mode={p.mode} {elapsed:5.1f}/{secs(duration)} s "
                         f"target={c.experiment.phase_rate(p):.1f}/s")
        parts.append(f"rate={self.stats.rate():.1f}/s")
        for flow in self.stats.flows:
            q = self.stats.quantiles(p.name if p else None, flow)
            if q:
                parts.append(f"{flow} p50={q[0]:.0f} p99={q[1]:.0f} ms")
        parts.append(f"fail={self.stats.failures} late={self.stats.late} "
                     f"rejected={self.stats.rejections}")
        flip = self._last_flip()
        if flip:
            parts.append(flip)
        return "  ".join(parts)

    def _last_flip(self) -> str | None:
        flips = self.conductor.flips
        if not flips:
            return None
        f = flips[-1]
        return (f"last flip: {f['mode']} at {f['phase']} "
                f"(applied {(f['applied'] - f['requested']) * 1000:.0f} ms after the request)")

    def render(self) -> Table:
        c = self.conductor
        p, name, elapsed, duration = self._phase()
        table = Table(title=f"execbench run: {c.experiment.name}", show_header=True)
        flows = self.stats.flows[:4]  # a terminal holds a few; the run directory holds all
        for col in ("phase", "mode", "phase time", "run time", "target", "rate (5 s)",
                    *(f"{f} p50/p99" for f in flows), "failures", "late", "rejected"):
            table.add_column(col)
        total = max(0.0, time.time() - c.t0) if c.started else 0.0

        def q(flow):
            v = self.stats.quantiles(p.name if p else None, flow)
            return f"{v[0]:.0f}/{v[1]:.0f} ms (n={v[2]})" if v else "-"

        table.add_row(
            name, p.mode if p else "-", f"{elapsed:.0f}/{secs(duration)} s" if p else "-",
            f"{total:.0f}/{secs(c.experiment.total_s)} s",
            f"{c.experiment.phase_rate(p):.1f}/s" if p else "-", f"{self.stats.rate():.1f}/s",
            *(q(f) for f in flows), str(self.stats.failures), str(self.stats.late),
            str(self.stats.rejections),
        )
        caption = [self._last_flip() or ""] + c.errors[-3:]
        table.caption = "; ".join(x for x in caption if x) or None
        return table
