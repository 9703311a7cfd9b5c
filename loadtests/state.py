"""What the users of one Locust process need to know about the running experiment.

The master (or the local runner) owns the schedule: the wall-clock start `t0` and the phase
list. It ships them to every worker in one message, so each process attributes a request to
the phase its *intended* send time falls in, without asking anyone. Records produced here go
either straight to the run directory (local, master) or into an outbox that is shipped to the
master (worker). No Locust import here.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import Any


class ProcessState:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.experiment: str | None = None
        self.run_id: str | None = None
        self.t0: float | None = None
        self.schedule: list[dict[str, Any]] = []
        self._starts: list[float] = []
        self.load: dict[str, Any] = {}
        self.target: dict[str, Any] = {}  # the spec's [target] (generic HTTP targets)
        self.spec_dir: str | None = None  # relative paths of the spec (a population CSV)
        self.generators = 1
        self.sink: Callable[[list[dict[str, Any]]], None] | None = None
        self.outbox: list[dict[str, Any]] = []
        self.pools: list[Any] = []
        self.worker_id: str | None = None
        self.worker_index = 0
        self.workers = 1
        self.lock = threading.Lock()
        self.late_sends = 0
        self.sent = 0
        self.user_instances = 0  # numbers each user for its seeded random stream

    # --- configuration ------------------------------------------------------------------

    def configure(self, message: dict[str, Any]) -> None:
        """Install the schedule message (`schedule_message()` of the master)."""
        self.experiment = message["experiment"]
        self.run_id = message["run_id"]
        self.t0 = float(message["t0"])
        self.schedule = message["schedule"]
        self._starts = [self.t0 + p["start_s"] for p in self.schedule]
        self.load = message["load"]
        self.target = message.get("target") or {}
        self.spec_dir = message.get("spec_dir")
        self.generators = int(message["generators"])
        self.workers = int(message.get("workers", 1))

    @property
    def configured(self) -> bool:
        return self.t0 is not None

    @property
    def end(self) -> float:
        last = self.schedule[-1]
        return self.t0 + last["start_s"] + last["duration_s"]

    def phase_index_at(self, ts: float) -> int | None:
        if not self.configured or ts < self.t0 or ts >= self.end:
            return None
        return bisect.bisect_right(self._starts, ts) - 1

    def phase_at(self, ts: float) -> dict[str, Any] | None:
        i = self.phase_index_at(ts)
        return None if i is None else self.schedule[i]

    def phase_end(self, index: int) -> float:
        """Where phase `index` ends: exactly where the next one starts (the same float
        phase_index_at bisects on), else the schedule's end. t0 + start + duration can fall
        a rounding error short of the next start (0.3 + 0.6 at t0 = 1796280988.8), and an
        arrival clock stepping to that end would find itself in the same phase for ever."""
        if index + 1 < len(self._starts):
            return self._starts[index + 1]
        return self.end

    def share(self, scenario: str) -> float:
        """This scenario's fraction of the arrival rate, per generator user."""
        mix = self.load.get("mix", {"trader_mix": 1.0})
        total = sum(mix.values())
        return mix.get(scenario, 0.0) / total / max(1, self.generators) if total else 0.0

    # --- records -------------------------------------------------------------------------

    def emit(self, record: dict[str, Any]) -> None:
        self.sent += 1
        if record["late"]:
            self.late_sends += 1
        if self.sink is not None:
            self.sink([record])
        else:
            with self.lock:
                self.outbox.append(record)

    def take_outbox(self) -> list[dict[str, Any]]:
        with self.lock:
            out, self.outbox = self.outbox, []
        return out


def state_of(environment) -> ProcessState:
    """The run state of one Locust environment (created on first use)."""
    state = getattr(environment, "execbench_state", None)
    if state is None:
        state = ProcessState()
        environment.execbench_state = state
    return state
