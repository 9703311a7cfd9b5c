"""Plain Locust entry point: `locust -f reference/locustfile.py --host URL`.

The web UI opens with the class picker on: the three scenarios (TraderMix, SameUserBurst,
MarginEdge) and one shape per bundled experiment (ProviderSkipAbShape, InterleavedShape, ...)
are selectable. With the "Default" shape you drive load by hand: each user is an open-model
generator at EXECBENCH_RATE_PER_USER requests/s (default 2), and you flip the flag yourself
(`execbench flag skip`). With an experiment shape the phases run and the flag is flipped at each
boundary if EXECBENCH_ADMIN_TOKEN is set.

Headless: `EXECBENCH_EXPERIMENT=provider-skip-ab locust -f reference/locustfile.py --headless
--host URL` runs that experiment's shape; without EXECBENCH_EXPERIMENT, headless runs the
manual mode with `-u/-r`. EXECBENCH_RUN_DIR=dir also writes timeline.jsonl and requests.jsonl
there, and EXECBENCH_DURATION_SCALE=0.1 shortens every phase (a shape ignores `-t`). The web UI serves the `loadtest_` metrics at /metrics; distributed (`--master` /
`--worker`) works as usual, records flowing to the master.
"""

from __future__ import annotations

import os
import re
import time
import uuid

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtests import spec as specs
from loadtests.conductor import Conductor, RecordCollector, install_master_or_local, install_worker
from loadtests.metrics import LoadtestMetrics
from loadtests.records import RunWriter
from loadtests.shape import ExperimentShape
from loadtests.state import state_of
from reference.pack import ReferenceFaults, ReferenceFlag
from reference.scenarios import BY_NAME, MarginEdge, SameUserBurst, TraderMix

__all__ = ["MarginEdge", "SameUserBurst", "TraderMix"]

METRICS = LoadtestMetrics()
_WRITER: list[RunWriter] = []


def _class_name(experiment: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", experiment)) + "Shape"


def _make_conductor(self) -> Conductor:
    scale = float(os.environ.get("EXECBENCH_DURATION_SCALE", "1"))
    experiment = specs.load(self.experiment_name, duration_scale=scale)
    runner = self.runner
    workers = runner.worker_count if isinstance(runner, MasterRunner) else 1
    host = runner.environment.host
    token = os.environ.get("EXECBENCH_ADMIN_TOKEN")
    flag = ReferenceFlag(host, token) if host and token else None
    faults = ReferenceFaults(host, token) if host and token else None
    if _WRITER:  # the analysis needs the spec as run next to the records
        (_WRITER[0].run_dir / "experiment.toml").write_text(specs.dumps(
            experiment, header=f"experiment {experiment.name} as run from the locustfile "
                               f"(duration scale {scale}); schema: docs/loadtests.md"))
    return Conductor(runner.environment, experiment, flag=flag, faults=faults,
                     writer=_WRITER[0] if _WRITER else None, metrics=METRICS,
                     generators=int(experiment.load["generators"]) * max(1, workers),
                     workers=max(1, workers), run_id=uuid.uuid4().hex[:8])


def _reset_time(self) -> None:
    ExperimentShape.reset_time(self)
    self.conductor = None  # a new start from the UI is a new run


for _name in specs.available():
    _cls = type(_class_name(_name), (ExperimentShape,), {
        "abstract": False, "experiment_name": _name, "make_conductor": _make_conductor,
        "user_classes": dict(BY_NAME),
        "reset_time": _reset_time, "__module__": __name__,
        "__doc__": f"The `{_name}` experiment (loadtests/experiments/{_name}.toml).",
    })
    globals()[_cls.__name__] = _cls


def manual_schedule() -> dict:
    """Free-running configuration for hand-driven load: one long phase, a fixed per-user rate."""
    per_user = float(os.environ.get("EXECBENCH_RATE_PER_USER", "2"))
    load = specs.validate({"name": "manual", "load": {"rate": per_user * len(specs.SCENARIOS)},
                           "phases": [{"name": "manual", "duration_s": 10 * 365 * 86400,
                                       "mode": "off"}]}, "(manual)").load
    load["mix"] = {name: 1.0 for name in specs.SCENARIOS}
    return {"experiment": "manual", "run_id": "manual", "t0": time.time(),
            "schedule": [{"name": "manual", "group": "manual", "start_s": 0.0,
                          "duration_s": 10 * 365 * 86400, "mode": None,
                          "rate": per_user * len(specs.SCENARIOS), "analyse": True,
                          "provider": None}],
            "load": load, "generators": 1, "workers": 1}


@events.init.add_listener
def _on_init(environment, **kw):
    wanted = os.environ.get("EXECBENCH_EXPERIMENT")
    available = environment.available_shape_classes or {}
    if wanted:
        environment.shape_class = available.get(_class_name(wanted))
        if environment.shape_class is None:
            raise SystemExit(f"EXECBENCH_EXPERIMENT={wanted}: no such experiment "
                             f"(have {', '.join(specs.available())})")
        environment.shape_class.runner = environment.runner
    elif environment.shape_class is not None:
        environment.shape_class = None  # hand-driven by default; pick a shape in the UI
    if environment.web_ui is not None:
        environment.web_ui.userclass_picker_is_active = True
        _add_metrics_route(environment.web_ui.app)

    state_of(environment).configure(manual_schedule())
    if isinstance(environment.runner, WorkerRunner):
        install_worker(environment)
        return
    sinks = [METRICS.observe]
    run_dir = os.environ.get("EXECBENCH_RUN_DIR")
    if run_dir:
        writer = RunWriter(run_dir)
        _WRITER.append(writer)
        sinks.append(writer.add_requests)
    install_master_or_local(environment, RecordCollector(sinks))
    gevent.spawn(_users_gauge, environment.runner)


def _users_gauge(runner) -> None:
    while True:
        METRICS.users.set(runner.user_count)
        gevent.sleep(1.0)


@events.test_stop.add_listener
def _on_test_stop(environment, **kw):
    """A shape run started from the UI or headless ends like `execbench run` ends a run:
    provider back to its defaults, `run_end` in the timeline, the ledger saved."""
    shape = environment.shape_class
    conductor = getattr(shape, "conductor", None)
    if isinstance(environment.runner, WorkerRunner) or conductor is None or not conductor.started:
        return
    conductor.restore_provider()
    conductor.timeline("run_end", ts=time.time(), phase=None, mode=conductor.applied_mode,
                       interrupted=time.time() < conductor.end, errors=conductor.errors)
    if _WRITER and conductor.flag is not None:
        try:
            _WRITER[0].write_json("ledger.json", conductor.flag.admin.ledger())
        except Exception as exc:  # noqa: BLE001 - a missing ledger must not break Locust's stop
            conductor.errors.append(f"ledger not saved: {exc}")


def _add_metrics_route(app) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    def metrics():
        return generate_latest(METRICS.registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    app.add_url_rule("/metrics", "execbench_metrics", metrics)


@events.quitting.add_listener
def _on_quitting(environment, **kw):
    for writer in _WRITER:
        writer.close()
