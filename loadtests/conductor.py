"""The conductor: the one place (master or local runner) that owns the experiment's clock.

It fixes `t0`, ships the schedule to every worker, and at each phase boundary flips the flag
and sets the provider simulator through the admin API, writing `timeline.jsonl` as it goes.
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
from typing import Any

import gevent
from gevent.lock import Semaphore
from locust.runners import MasterRunner, WorkerRunner

from loadtests.admin import AdminClient, AdminError
from loadtests.metrics import LoadtestMetrics
from loadtests.records import RunWriter
from loadtests.spec import Experiment
from loadtests.state import STATE

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
        admin: AdminClient | None,
        writer: RunWriter | None,
        metrics: LoadtestMetrics | None = None,
        generators: int = 1,
        workers: int = 1,
        run_id: str = "",
        lead_s: float = 0.5,
    ):
        self.environment = environment
        self.experiment = experiment
        self.admin = admin
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
        self.provider_touched = False

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
        if first.provider is not None:
            self._provider(first.provider, first.name)
        self.t0 = time.time() + self.lead_s
        message = self.schedule_message()
        STATE.configure(message)
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
            "load": self.experiment.load,
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
            self.timeline("phase_start", ts=boundary, phase=phase.name, mode=phase.mode,
                          group=phase.group, rate=rate, analyse=phase.analyse,
                          duration_s=phase.duration_s)
            if self.metrics is not None:
                self.metrics.enter_phase(i, STATE.schedule[i])
            if i > 0 and phase.mode != self.applied_mode:
                gevent.spawn(self._flip, phase.mode, phase.name)
            if i > 0 and phase.provider is not None:
                gevent.spawn(self._provider, phase.provider, phase.name)
        last = phases[-1]
        gevent.sleep(max(0.0, self.end - time.time()))
        self.timeline("phase_end", ts=self.end, phase=last.name, mode=last.mode)
        self.current = len(phases)
        if self.metrics is not None:
            self.metrics.enter_phase(len(phases), None)

    def _flip(self, mode: str, phase: str, initial: bool = False) -> None:
        if self.admin is None:
            return
        reason = f"execbench {self.experiment.name} {self.run_id}: phase {phase}"
        if initial and not self.admin.token:
            # Allowed only when the service is already in the first phase's mode (checked
            # before the run); record that state as applied, there is nothing to request.
            try:
                state = self.admin.flags()
                self.applied_mode = state.get("mode")
                self.timeline("flip_applied", ts=time.time(), phase=phase, mode=self.applied_mode,
                              initial=True, already=True)
            except AdminError as exc:
                self.errors.append(f"flag state unknown: {exc}")
            return
        requested = time.time()
        self.timeline("flip_requested", ts=requested, phase=phase, mode=mode, initial=initial)
        try:
            requested, applied, state = self.admin.set_mode(mode, reason)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the timeline says so
            message = f"flip to {mode} at phase {phase} failed: {exc}"
            self.errors.append(message)
            log.error(message)
            self.timeline("flip_failed", ts=time.time(), phase=phase, mode=mode, error=str(exc))
            return
        self.applied_mode = mode
        if self.metrics is not None:
            self.metrics.flips.inc()
        self.flips.append({"phase": phase, "mode": mode, "requested": requested, "applied": applied})
        self.timeline("flip_applied", ts=applied, phase=phase, mode=mode, initial=initial,
                      requested_ts_epoch=round(requested, 6),
                      flip_ms=round((applied - requested) * 1000, 3))

    def _provider(self, settings: dict[str, Any], phase: str) -> None:
        if self.admin is None:
            return
        try:
            self.admin.set_provider(settings, f"execbench {self.experiment.name}: phase {phase}")
            self.provider_touched = True
            self.timeline("provider_set", ts=time.time(), phase=phase, mode=None, provider=settings)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the error is reported
            message = f"provider settings at phase {phase} failed: {exc}"
            self.errors.append(message)
            log.error(message)

    def restore_provider(self) -> None:
        if self.provider_touched and self.admin is not None:
            self._provider({"outage": False}, "run_end")  # back to the service's defaults

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
    STATE.sink = collector
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
    STATE.sink = None
    STATE.worker_id = runner.client_id

    def on_schedule(environment, msg, **kw):
        STATE.configure(msg.data)
        STATE.worker_index = max(0, runner.worker_index)

    def on_flush(environment, msg, **kw):
        gevent.spawn(_flush_and_ship, runner)

    runner.register_message(MSG_SCHEDULE, on_schedule)
    runner.register_message(MSG_FLUSH, on_flush)
    gevent.spawn(_ship_loop, runner)


def _ship_loop(runner) -> None:
    while True:
        gevent.sleep(SHIP_INTERVAL_S)
        with _ship_lock:
            records = STATE.take_outbox()
            if records:
                runner.send_message(MSG_RECORDS, {"worker": runner.client_id,
                                                  "records": records, "final": False})


def _flush_and_ship(runner) -> None:
    join_pools(timeout=float(STATE.load.get("timeout_s", 10.0)) + 1)
    with _ship_lock:
        records = STATE.take_outbox()
        runner.send_message(MSG_RECORDS, {"worker": runner.client_id, "records": records,
                                          "final": True})


def join_pools(timeout: float) -> None:
    deadline = time.time() + timeout
    for pool in list(STATE.pools):
        pool.join(timeout=max(0.0, deadline - time.time()))
