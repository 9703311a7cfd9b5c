"""The conductor: the one place (master or local runner) that owns the experiment's clock.

It fixes `t0`, ships the schedule to every worker, and at each phase boundary flips the flag
(the binding's `FlagControl`), sets the phase's switches that change (its `SwitchControl`) and
applies the phase's faults (its `FaultControl`), writing `timeline.jsonl` as it goes.
The boundaries are kept by a greenlet that sleeps until each one, not by the shape's 1 s tick,
so a flip is requested within milliseconds of its boundary.

Custom Locust messages (DESIGN "Process model"):
  master -> workers  `execbench_schedule` {experiment, run_id, t0, schedule, load, generators, workers}
  master -> workers  `execbench_flush`    {}   stop generating, finish in-flight, ship the rest
  worker -> master   `execbench_records`  {worker, records, final}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from gevent.lock import Semaphore
from locust.runners import MasterRunner, WorkerRunner

from loadtests.metrics import LoadtestMetrics
from loadtests.records import RunWriter
from loadtests.seam import FaultControl, FlagControl, SwitchControl
from loadtests.spec import Experiment
from loadtests.state import ProcessState, state_of

log = logging.getLogger("execbench.conductor")

MSG_SCHEDULE = "execbench_schedule"
MSG_FLUSH = "execbench_flush"
MSG_RECORDS = "execbench_records"
SHIP_INTERVAL_S = 1.0
_ship_lock = Semaphore()  # the final batch must not overtake a batch still being sent


class Conductor:
    def __init__(
        self,
        environment,
        experiment: Experiment,
        *,
        flag: FlagControl | None,
        faults: FaultControl | None = None,
        switches: SwitchControl | None = None,
        writer: RunWriter | None,
        metrics: LoadtestMetrics | None = None,
        generators: int = 1,
        workers: int = 1,
        run_id: str = "",
        lead_s: float = 0.5,
    ):
        self.environment = environment
        self.experiment = experiment
        self.flag = flag
        self.faults = faults
        self.switches = switches
        self.applied_switches: dict[str, str] = {}
        self.state: ProcessState = state_of(environment)
        self.writer = writer
        self.metrics = metrics
        self.generators = generators
        self.workers = workers
        self.run_id = run_id
        self.lead_s = lead_s
        self.t0: float | None = None
        self.current: int = -1
        self.errors: list[str] = []
        self.flips: list[dict[str, Any]] = []
        self.greenlet = None
        self.applied_mode: str | None = None
        self.flip_failures: list[str] = []
        # without credentials the flag can only be read: the runner checked that the target
        # is already in the first phase's mode
        self.can_set = True

    @property
    def started(self) -> bool:
        return self.t0 is not None

    @property
    def end(self) -> float:
        return self.t0 + self.experiment.total_s

    @property
    def stop_at(self) -> float:
        return self.end + float(self.experiment.load.get("drain_s", 2.0))

    def timeline(self, event: str, *, ts: float, phase: str | None, mode: str | None, **extra) -> None:
        if self.writer is not None:
            self.writer.timeline(event, ts=ts, phase=phase, mode=mode, **extra)

    def start(self) -> None:
        """Set the first phase's mode and provider, fix t0, ship the schedule, start the clock."""
        first = self.experiment.phases[0]
        self.timeline("run_start", ts=time.time(), phase=None, mode=None,
                      experiment=self.experiment.name, run_id=self.run_id,
                      generators=self.generators, workers=self.workers)
        self._flip(first.mode, first.name, initial=True)
        if first.switches:
            self._switch(first.switches, first.name, initial=True)
        if first.provider is not None:
            self._provider(first.provider, first.name)
        self.t0 = time.time() + self.lead_s
        message = self.schedule_message()
        self.state.configure(message)
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            runner.send_message(MSG_SCHEDULE, message)
        if self.metrics is not None:
            self.metrics.set_schedule(self.experiment.name, message["schedule"])
        self.greenlet = gevent.spawn(self._conduct)

    def schedule_message(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.name,
            "run_id": self.run_id,
            "t0": self.t0,
            "schedule": self.experiment.schedule(),
            "load": {**self.experiment.load, "mix": self.experiment.mix},
            "target": self.experiment.data.get("target"),
            "spec_dir": str(Path(self.experiment.source).resolve().parent),
            "generators": self.generators,
            "workers": self.workers,
        }

    def _conduct(self) -> None:
        phases = self.experiment.phases
        for i, phase in enumerate(phases):
            boundary = self.t0 + phase.start_s
            gevent.sleep(max(0.0, boundary - time.time()))
            if i > 0:
                prev = phases[i - 1]
                self.timeline("phase_end", ts=boundary, phase=prev.name, mode=prev.mode)
            self.current = i
            rate = self.experiment.phase_rate(phase)
            extra = {"block": phase.block} if phase.block is not None else {}
            if phase.switches:
                extra["switches"] = phase.switches
            self.timeline("phase_start", ts=boundary, phase=phase.name, mode=phase.mode,
                          group=phase.group, rate=rate, analyse=phase.analyse,
                          duration_s=phase.duration_s, **extra)
            if self.metrics is not None:
                self.metrics.enter_phase(i, self.state.schedule[i])
            if i > 0 and phase.mode != self.applied_mode:
                gevent.spawn(self._flip, phase.mode, phase.name)
            if i > 0 and phase.switches:
                gevent.spawn(self._switch, phase.switches, phase.name)
            if i > 0 and phase.provider is not None:
                gevent.spawn(self._provider, phase.provider, phase.name)
        last = phases[-1]
        gevent.sleep(max(0.0, self.end - time.time()))
        self.timeline("phase_end", ts=self.end, phase=last.name, mode=last.mode)
        self.current = len(phases)
        if self.metrics is not None:
            self.metrics.enter_phase(len(phases), None)

    def _flip(self, mode: str, phase: str, initial: bool = False) -> None:
        if self.flag is None:
            return
        reason = f"execbench {self.experiment.name} {self.run_id}: phase {phase}"
        if initial and self.flag.needs_credentials and not self.can_set:
            # Allowed only when the target is already in the first phase's mode (checked
            # before the run); record that state as applied, there is nothing to request.
            try:
                self.applied_mode = self.flag.get()
                self.timeline("flip_applied", ts=time.time(), phase=phase, mode=self.applied_mode,
                              initial=True, already=True)
            except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                self.errors.append(f"flag state unknown: {exc}")
            return
        requested = time.time()
        self.timeline("flip_requested", ts=requested, phase=phase, mode=mode, initial=initial)
        try:
            flip = self.flag.set(mode, reason)
        except Exception as exc:  # noqa: BLE001 - the timeline says so; the runner decides
            message = f"flip to {mode} at phase {phase} failed: {exc}"
            self.errors.append(message)
            self.flip_failures.append(message)
            log.error(message)
            self.timeline("flip_failed", ts=time.time(), phase=phase, mode=mode, error=str(exc))
            return
        self.applied_mode = mode
        if self.metrics is not None:
            self.metrics.flips.inc()
        self.flips.append({"phase": phase, "mode": mode, "requested": flip.requested,
                           "applied": flip.applied})
        extra = {"resolution_ms": round(flip.resolution_s * 1000, 3)} if flip.resolution_s else {}
        self.timeline("flip_applied", ts=flip.applied, phase=phase, mode=mode, initial=initial,
                      requested_ts_epoch=round(flip.requested, 6),
                      flip_ms=round((flip.applied - flip.requested) * 1000, 3), **extra)

    def _switch(self, wanted: dict[str, str], phase: str, initial: bool = False) -> None:
        """Set the switches whose value changes into this phase, one after another (a few ms
        each); a failure stops the run like a failed flip: the phase would not be its cell."""
        if self.switches is None:
            return
        reason = f"execbench {self.experiment.name} {self.run_id}: phase {phase}"
        for name, value in wanted.items():
            if self.applied_switches.get(name) == value:
                continue
            try:
                flip = self.switches.set(name, value, reason)
            except Exception as exc:  # noqa: BLE001 - the timeline says so; the runner stops
                message = f"switch {name}={value} at phase {phase} failed: {exc}"
                self.errors.append(message)
                self.flip_failures.append(message)
                log.error(message)
                self.timeline("switch_failed", ts=time.time(), phase=phase, mode=None,
                              switch=name, value=value, error=str(exc))
                return
            self.applied_switches[name] = value
            self.timeline("switch_applied", ts=flip.applied, phase=phase, mode=None, switch=name,
                          value=value, initial=initial, tier=flip.state.get("tier"),
                          requested_ts_epoch=round(flip.requested, 6),
                          flip_ms=round((flip.applied - flip.requested) * 1000, 3))

    def _provider(self, settings: dict[str, Any], phase: str) -> None:
        if self.faults is None:
            return
        try:
            self.faults.apply(settings, f"execbench {self.experiment.name}: phase {phase}")
            self.timeline("provider_set", ts=time.time(), phase=phase, mode=None, provider=settings)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the error is reported
            message = f"provider settings at phase {phase} failed: {exc}"
            self.errors.append(message)
            log.error(message)

    def restore_provider(self) -> None:
        if self.faults is not None:
            try:
                self.faults.restore()
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"provider settings at run_end failed: {exc}")

    def phase_name(self) -> str | None:
        if 0 <= self.current < len(self.experiment.phases):
            return self.experiment.phases[self.current].name
        return None


# --- wiring the record path into a runner ---------------------------------------------------


class RecordCollector:
    """Master / local side: where records arrive, and who has sent its final batch."""

    def __init__(self, sinks: list[Callable[[list[dict[str, Any]]], None]]):
        self.sinks = sinks
        self.final_from: set[str] = set()
        self.count = 0

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self.count += len(records)
        for sink in self.sinks:
            sink(records)


def install_master_or_local(environment, collector: RecordCollector) -> None:
    runner = environment.runner
    state_of(environment).sink = collector
    if isinstance(runner, MasterRunner):
        def on_records(environment, msg, **kw):
            data = msg.data or {}
            collector(data.get("records", []))
            if data.get("final"):
                collector.final_from.add(data.get("worker") or msg.node_id)

        runner.register_message(MSG_RECORDS, on_records)


def install_worker(environment) -> None:
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    state = state_of(environment)
    state.sink = None
    state.worker_id = runner.client_id

    def on_schedule(environment, msg, **kw):
        state.configure(msg.data)
        state.worker_index = max(0, runner.worker_index)

    def on_flush(environment, msg, **kw):
        gevent.spawn(_flush_and_ship, runner, state)

    runner.register_message(MSG_SCHEDULE, on_schedule)
    runner.register_message(MSG_FLUSH, on_flush)
    gevent.spawn(_ship_loop, runner, state)


def _ship_loop(runner, state: ProcessState) -> None:
    while True:
        gevent.sleep(SHIP_INTERVAL_S)
        with _ship_lock:
            records = state.take_outbox()
            if records:
                runner.send_message(MSG_RECORDS, {"worker": runner.client_id,
                                                  "records": records, "final": False})


def _flush_and_ship(runner, state: ProcessState) -> None:
    join_pools(state, timeout=float(state.load.get("timeout_s", 10.0)) + 1)
    with _ship_lock:
        records = state.take_outbox()
        runner.send_message(MSG_RECORDS, {"worker": runner.client_id, "records": records,
                                          "final": True})


def join_pools(state: ProcessState, timeout: float) -> None:
    deadline = time.time() + timeout
    for pool in list(state.pools):
        pool.join(timeout=max(0.0, deadline - time.time()))
