"""`execbench run`: one experiment, headless, into one run directory.

Importing this module imports Locust (and gevent's monkey-patching): only the `run`
handler does, never the CLI at large.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import gevent
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadtests import spec as specs
from loadtests.conductor import (
    MSG_FLUSH,
    Conductor,
    RecordCollector,
    install_master_or_local,
    install_worker,
    join_pools,
)
from loadtests.live import LiveStats, LiveView
from loadtests.metrics import LoadtestMetrics
from loadtests.records import RunWriter, copy_timings, utc_stamp
from loadtests.seam import Binding, FlagError, TargetError
from loadtests.shape import ExperimentShape
from loadtests.state import state_of
from loadtests.summary import print_table

log = logging.getLogger("execbench.run")


def default_run_dir(runs_dir: str | Path, experiment: str, now: float | None = None) -> Path:
    return Path(runs_dir) / f"{utc_stamp(now or time.time())}-{experiment}"


def _console():
    from execbench.console import make_console

    return make_console()


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def error(message: str, status: int = 2) -> int:
    """The one error style of the command line: `execbench run: error: ...` on stderr, exit
    status 2 unless told."""
    from execbench.console import fail

    return fail("run", message, status)


def freeze_startup_objects() -> None:
    """Move everything alive before the load (Locust, gevent, pyarrow, the spec: ~105,000
    objects) out of the garbage collector's generations (gc.freeze). A full collection walked
    all of them: 50-90 ms with the event loop held (gc.callbacks, 2,000 req/s, 2026-12-03),
    every arrival due meanwhile late. They hold no garbage a run makes; what the run
    allocates is collected as before."""
    gc.collect()
    gc.freeze()


def run_worker(args, user_classes: list[type]) -> int:
    """A Locust worker: its user classes are every pack's (the master's schedule says which
    run), since a worker learns the experiment only from the master."""
    _setup_logging(args.verbose)
    env = Environment(user_classes=user_classes, host=args.target)
    runner = env.create_worker_runner(args.master_host, args.master_port)
    install_worker(env)
    stopped: list[bool] = []

    def on_signal() -> None:
        stopped.append(True)
        runner.quit()

    gevent.signal_handler(signal.SIGINT, on_signal)
    gevent.signal_handler(signal.SIGTERM, on_signal)
    freeze_startup_objects()
    runner.greenlet.join()
    return 130 if stopped else 0


def run(args, bind: Callable[[specs.Experiment, str, str | None], Binding]) -> int:
    """Run one experiment (local or as the master) against the target `bind` gives for it
    (the application layer chooses the pack). Returns the exit status."""
    _setup_logging(args.verbose)
    console = _console()
    try:
        experiment = specs.load(args.experiment, duration_scale=args.duration_scale)
    except specs.SpecError as exc:
        return error(f"experiment spec {exc}")
    interval = getattr(args, "ledger_interval", None)
    if interval is None:
        interval = float(experiment.load.get("ledger_interval_s", 0.0))
    if interval != 0 and not interval >= specs.LEDGER_INTERVAL_MIN_S:
        return error(f"--ledger-interval: must be 0 (no sampling) or >= "
                     f"{specs.LEDGER_INTERVAL_MIN_S}, got {interval}")
    if "ledger_interval_s" in experiment.load:
        experiment.load["ledger_interval_s"] = interval  # experiment.toml records it as run
    target_url = args.target or experiment.data["target"].get("base_url")
    if not target_url:
        return error("--target URL is required (or target.base_url in the experiment)")
    if not re.match(r"^https?://[^/\s]+", target_url):
        return error(f"--target {target_url!r}: give an http:// or https:// URL, "
                     "e.g. http://127.0.0.1:8000")
    target_url = target_url.rstrip("/")
    gateway_url = getattr(args, "gateway", None)
    if gateway_url:
        if experiment.pack != "reference":
            return error("--gateway: only for the reference pack (its gateway tier)")
        if not re.match(r"^https?://[^/\s]+", gateway_url):
            return error(f"--gateway {gateway_url!r}: give an http:// or https:// URL")
        experiment.data["target"]["gateway_url"] = gateway_url.rstrip("/")
    elif experiment.gateway is not None and not experiment.data["target"].get("gateway_url"):
        return error(f"{experiment.source} sends its orders through the gateway tier ([gateway]): "
                     "give its URL with --gateway (`execbench demo` starts one)")
    token = args.admin_token or os.environ.get("EXECBENCH_ADMIN_TOKEN")
    binding = bind(experiment, target_url, token)
    target, flag = binding.target, binding.flag
    can_set = True
    try:
        target.health(args.health_timeout)
        if binding.switches is not None:
            binding.switches.check()
        if flag is not None:
            if getattr(flag, "has_credentials", True):
                flag.check()
            else:
                # Without credentials the run may only read the flag: allowed when it needs
                # no flip and no fault, and the target is already in the first phase's mode.
                can_set = False
                needs = len({p.mode for p in experiment.phases}) > 1 or any(
                    p.provider for p in experiment.phases)
                current = flag.get()
                if needs or current != experiment.phases[0].mode:
                    return error("the experiment changes the flag or the provider; give the "
                                 "admin token (--admin-token or EXECBENCH_ADMIN_TOKEN)")
        notes = target.prepare()
    except (TargetError, FlagError) as exc:
        target.close()
        return error(str(exc))
    for note in notes:
        console.print(f"note: {note}", highlight=False)

    run_id = uuid.uuid4().hex[:8]
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.runs_dir, experiment.name)
    writer = RunWriter(run_dir)
    (run_dir / "experiment.toml").write_text(specs.dumps(
        experiment,
        header=f"experiment {experiment.name} as run ({run_id}); source: {experiment.source}"
               + (f"; durations scaled by {args.duration_scale}" if args.duration_scale != 1 else "")
               + "\nschema: docs/loadtests.md",
    ))
    metrics = LoadtestMetrics()
    if args.metrics_port:
        metrics.serve(args.metrics_port, addr=args.metrics_host)
    stats = LiveStats()
    collector = RecordCollector([writer.add_requests, metrics.observe, stats.observe])

    user_classes = target.user_classes()
    env = Environment(user_classes=list(user_classes.values()), host=target_url)
    workers = 1
    if args.master:
        runner = env.create_master_runner(args.master_bind_host, args.master_bind_port)
        workers = args.expect_workers
    else:
        runner = env.create_local_runner()
    install_master_or_local(env, collector)
    generators = int(experiment.load["generators"]) * workers
    conductor = Conductor(env, experiment, flag=flag, faults=binding.faults,
                          switches=binding.switches, writer=writer,
                          metrics=metrics, generators=generators, workers=workers, run_id=run_id)
    conductor.can_set = can_set
    shape = ExperimentShape(conductor, user_classes=user_classes)
    env.shape_class = shape
    shape.runner = runner

    csv_writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(run_dir / "locust"),
                                    full_history=True)
    csv_greenlet = gevent.spawn(csv_writer)
    sampler = None

    interrupted = False
    stop_requested: list[str] = []

    def on_signal(name: str) -> None:
        # SIGINT (Ctrl-C, or demo forwarding it) and SIGTERM end the load early, never the
        # finish: the run directory is always closed with run_end and the ledger.
        if not stop_requested:
            console.print(f"{name}: stopping the load and writing what was recorded")
        stop_requested.append(name)
        if runner.shape_greenlet is not None:
            runner.shape_greenlet.kill(block=False)

    gevent.signal_handler(signal.SIGINT, on_signal, "interrupted")
    gevent.signal_handler(signal.SIGTERM, on_signal, "terminated")
    started = time.time()
    console.print(f"execbench run [bold]{experiment.name}[/bold] -> {target_url}  "
                  f"({experiment.total_s:.0f} s of phases)  run dir: {run_dir}", highlight=False)
    faulted = [p.name for p in experiment.phases if p.fault]
    if faulted:  # `demo` applies them (it owns the service); a run against a URL cannot
        console.print(f"note: faults of phases {', '.join(faulted)} are recorded, not applied: "
                      "only `execbench demo` restarts the service it started", highlight=False)
    try:
        if args.master:
            deadline = time.time() + args.worker_timeout
            while runner.worker_count < workers:
                if stop_requested:
                    runner.quit()
                    return 130
                if time.time() > deadline:
                    runner.quit()
                    return error(f"only {runner.worker_count} of {workers} workers connected "
                                 f"after {args.worker_timeout:.0f} s")
                gevent.sleep(0.2)
        freeze_startup_objects()
        runner.start_shape()
        # its first sample waits for the conductor's run_start
        sampler = target.sampler(writer.timeline, phase=conductor.phase_name,
                                 mode=lambda: conductor.applied_mode,
                                 ready=lambda: conductor.started)
        if sampler is not None:
            sampler.start()
        shape_greenlet = runner.shape_greenlet
        with LiveView(conductor, stats, console=console, interval=args.status_interval) as view:
            while not shape_greenlet.dead and not stop_requested:
                shape_greenlet.join(timeout=1.0)
                if conductor.flip_failures:
                    # the phases would no longer run the modes they are named for
                    console.print("[red]stopping:[/red] a flip failed; the load stops and the "
                                  "run directory is closed", highlight=False)
                    shape_greenlet.kill(block=False)
                    break
                metrics.users.set(runner.user_count)
                view.update()
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # noqa: BLE001 - the run directory must still be closed
        interrupted = True
        error(f"the run failed: {exc!r}", 1)

    interrupted = interrupted or bool(stop_requested)
    # Users are stopped; finish in-flight arrivals and collect every record.
    if runner.state not in ("stopped", "stopping"):
        runner.stop()
    if conductor.greenlet is not None:
        conductor.greenlet.kill(block=True)
    timeout = float(experiment.load["timeout_s"]) + 5
    if args.master:
        runner.send_message(MSG_FLUSH, {})
        deadline = time.time() + timeout
        while len(collector.final_from) < runner.worker_count and time.time() < deadline:
            gevent.sleep(0.1)
        missing = runner.worker_count - len(collector.final_from)
        if missing > 0:
            conductor.errors.append(f"{missing} worker(s) did not send their final records")
    else:
        join_pools(state_of(env), timeout=timeout)
    sampled = {}
    if sampler is not None:
        sampler.stop()  # before run_end: the timeline ends with it
        sampler.close()
        sampled = sampler.counts()
        if not sampler.stopped:
            conductor.errors.append("the ledger sampler did not stop")
    ended = time.time()
    conductor.restore_provider()
    writer.timeline("run_end", ts=ended, phase=None, mode=conductor.applied_mode,
                    interrupted=interrupted, requests=collector.count,
                    late_sends=stats.late, failures=stats.failures, errors=conductor.errors,
                    **sampled)
    try:
        for name, data in target.settle(args.settle_timeout).items():
            writer.write_json(name, data)
    except Exception as exc:  # noqa: BLE001 - what the target keeps is lost, the run is not
        conductor.errors.append(f"the target's settle files not saved: {exc}")
    dest = run_dir / "timings.jsonl"
    sources = [Path(p) for p in (args.timing_log or []) if Path(p).resolve() != dest.resolve()]
    missing = [str(p) for p in sources if not p.exists()]
    if missing:
        conductor.errors.append(f"timing log not found: {', '.join(missing)}")
    if sources and not missing:
        copy_timings(sources, dest, started - 1, ended + 1)
    elif not sources and binding.pack == "reference":
        console.print("note: no --timing-log given: the run has client records only (the "
                      "report will have no server-side stage timings)", highlight=False)
    gateway_logs = [Path(p) for p in (getattr(args, "gateway_log", None) or [])]
    gateway_dest = run_dir / "gateway.jsonl"
    gateway_logs = [p for p in gateway_logs if p.resolve() != gateway_dest.resolve()]
    missing = [str(p) for p in gateway_logs if not p.exists()]
    if missing:
        conductor.errors.append(f"gateway log not found: {', '.join(missing)}")
    elif gateway_logs:
        copy_timings(gateway_logs, gateway_dest, started - 1, ended + 1)
    runner.quit()
    gevent.sleep(1.2)  # one more CSV cycle with the final (worker) stats
    csv_greenlet.kill(block=True)
    csv_writer.close_files()
    writer.close()
    target.close()
    if flag is not None:
        flag.close()
    if binding.switches is not None:
        binding.switches.close()

    if not args.no_table:
        print_table(run_dir, console=console)
    for problem in conductor.errors:
        error(problem, 1)
    console.print(f"run directory: {run_dir.resolve()}", highlight=False)
    if args.run_dir_file:
        Path(args.run_dir_file).write_text(str(run_dir))
    if interrupted:
        return 130
    return 1 if conductor.errors or collector.count == 0 else 0
