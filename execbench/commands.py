"""CLI commands of the application: `execbench run` and `execbench demo`.

This module is imported by the console script for every command, `serve` included, so it
must not import Locust (gevent monkey-patches the process on import): the handlers import
their heavy modules when they run.
"""

from __future__ import annotations

import argparse

from execbench.console import fail
from service.commands import port_number, port_number_or_zero


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run",
        help="run an experiment (phased load with flag flips) against a service",
        description="Run an experiment spec against a running executor and write a run "
                    "directory (runs/<utc-stamp>-<experiment>/). EXPERIMENT is a bundled name "
                    "(provider-skip-ab, interleaved, capacity, safety, rollback-under-fault, "
                    "flip-storm, crash-recovery: its fault needs `demo`; latency-plan: needs "
                    "--gateway) or "
                    "a path to a TOML file. Distributed: one `--master --expect-workers N` and N "
                    "`--worker --master-host H` processes.",
    )
    run.add_argument("experiment", metavar="EXPERIMENT", nargs="?",
                     help="bundled experiment name or path to a spec (not with --worker)")
    run.add_argument("--target", metavar="URL",
                     help="base URL of the service under test (default: the spec's "
                          "target.base_url)")
    run.add_argument("--gateway", metavar="URL", default=None,
                     help="the gateway tier in front of the executor (`execbench gateway`): orders "
                          "go to it, admin and ledger calls to --target; needed by experiments "
                          "with a [gateway] table (latency-plan)")
    run.add_argument("--gateway-log", action="append", default=None, metavar="PATH",
                     help="the gateway's EXECBENCH_GATEWAY_TIMING_LOG: its records from the run "
                          "window are copied to gateway.jsonl")
    run.add_argument("--admin-token", default=None,
                     help="admin bearer token for flag flips (default: $EXECBENCH_ADMIN_TOKEN)")
    run.add_argument("--run-dir", default=None, help="write here instead of RUNS_DIR/<stamp>-<name>")
    run.add_argument("--runs-dir", default="runs", help="parent of new run directories (default: runs)")
    run.add_argument("--duration-scale", type=float, default=1.0,
                     help="multiply every phase duration (e.g. 0.1 for a smoke run)")
    run.add_argument("--timing-log", action="append", default=None, metavar="PATH",
                     help="the service's EXECBENCH_TIMING_LOG when it runs on this machine: its "
                          "records from the run window are copied to timings.jsonl (repeat it "
                          "for several replicas: merged in time order)")
    run.add_argument("--metrics-port", type=port_number_or_zero, default=0,
                     help="serve loadtest_ metrics for Prometheus on this port (0: off)")
    run.add_argument("--metrics-host", default="0.0.0.0")
    run.add_argument("--status-interval", type=float, default=5.0,
                     help="seconds between status lines when stdout is not a terminal")
    run.add_argument("--health-timeout", type=float, default=30.0)
    run.add_argument("--settle-timeout", type=float, default=30.0,
                     help="seconds to wait for queued orders to finish before reading the ledger")
    run.add_argument("--ledger-interval", type=float, default=None, metavar="SECONDS",
                     help="sample GET /admin/ledger every SECONDS during the run into "
                          "timeline.jsonl (`ledger` events; 0: off; default: the spec's "
                          "load.ledger_interval_s, 1 s)")
    run.add_argument("--no-table", action="store_true", help="skip the per-phase table at the end")
    run.add_argument("--run-dir-file", default=None, help=argparse.SUPPRESS)
    run.add_argument("-v", "--verbose", action="store_true", help="Locust's INFO logging")
    dist = run.add_argument_group("distributed mode")
    dist.add_argument("--master", action="store_true", help="be the Locust master")
    dist.add_argument("--expect-workers", type=int, default=1, help="workers to wait for")
    dist.add_argument("--worker-timeout", type=float, default=60.0,
                      help="seconds to wait for --expect-workers")
    dist.add_argument("--master-bind-host", default="*")
    dist.add_argument("--master-bind-port", type=port_number, default=5557)
    dist.add_argument("--worker", action="store_true", help="be a Locust worker")
    dist.add_argument("--master-host", default="127.0.0.1")
    dist.add_argument("--master-port", type=port_number, default=5557)
    run.set_defaults(handler=_run)

    demo = subparsers.add_parser(
        "demo",
        help="the whole job on the embedded default: service, load, flips, report",
        description="Seed a temporary SQLite database, start the executor (profile seed) on a "
                    "free port, run the default experiment against it, print the report, and "
                    "stop everything it started (also on Ctrl-C).",
    )
    demo.add_argument("--quick", action="store_true",
                      help="short phases (about a minute of load, under 90 s in all)")
    demo.add_argument("--experiment", default="provider-skip-ab",
                      help="bundled name or spec path (default: provider-skip-ab)")
    demo.add_argument("--duration-scale", type=float, default=None,
                      help="multiply phase durations (default 1, or 0.25 with --quick)")
    demo.add_argument("--runs-dir", default="runs")
    demo.add_argument("--port", type=port_number_or_zero, default=0,
                      help="service port, 1-65535; refused if it is in use (default: a free one)")
    demo.add_argument("--users", type=int, default=None,
                      help="seeded accounts per type (default: the experiment's population)")
    demo.add_argument("--orders-per-user", type=int, default=5)
    demo.add_argument("--database-url", default=None,
                      help="an empty database to use instead of a temporary SQLite file, e.g. "
                           "postgresql+asyncpg://postgres@127.0.0.1:5432/execbench_crash (seeded "
                           "by the demo, left in place)")
    demo.add_argument("--profile", default=None,
                      help="latency profile (default: the experiment's, i.e. seed)")
    demo.set_defaults(handler=_demo)


def _run(args) -> int:
    if args.worker and args.experiment:
        return fail("run", "a --worker takes its experiment from the master")
    if not args.worker:
        if args.experiment:
            # an unknown name is reported (with the known ones) before a missing --target
            from loadtests import spec as specs

            try:
                specs.resolve(args.experiment)
            except specs.SpecError as exc:
                if exc.field == "(name)":
                    return fail("run", f"unknown experiment {args.experiment!r}; known: "
                                       f"{', '.join(specs.available())} (or a path to a TOML spec)")
                return fail("run", f"experiment spec {exc.source}: {exc.problem}")
        else:
            # the spec may name its target (target.base_url): only then is --target optional
            missing = ["EXPERIMENT"] + ([] if args.target else ["--target URL"])
            return fail("run", f"{' and '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} required")
    _quiet_gevent_import()
    from execbench import packs
    from loadtests import runner

    if args.worker:
        return runner.run_worker(args, packs.worker_user_classes())
    return runner.run(args, packs.bind)


def _demo(args) -> int:
    from execbench.demo import demo

    return demo(args)


def _quiet_gevent_import() -> None:
    """Locust monkey-patches on import; modules the CLI already imported (ssl via httpx in
    other packages' command modules) make gevent warn. Only that warning is silenced."""
    import warnings

    try:
        from gevent.monkey import MonkeyPatchWarning
    except ImportError:  # pragma: no cover
        return
    warnings.filterwarnings("ignore", category=MonkeyPatchWarning)
