"""`execbench demo`: the main job on the embedded default, on a fresh machine.

A temporary SQLite database is seeded, the executor is started as a child process in its own
process group (profile `seed`, a generated admin token, its timing log written straight into
the run directory), the experiment runs in a second child (`execbench run`: Locust and gevent
never enter this process), then the analysis report is printed, or a per-phase table from the
raw records if the analysis package is not installed. Everything started here is stopped by
its PID on the way out, Ctrl-C included. No Locust import here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console

from execbench.console import fail, make_console
from loadtests import spec as specs
from loadtests.records import utc_stamp
from reference.admin import AdminError
from reference.faults import FaultInjector, ServiceProcess, recovery_record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_problem(port: int) -> str | None:
    """Why the service could not listen on 127.0.0.1:`port`, or None. Checked before anything
    starts: with the port taken, the run would measure whatever else answers there. The probe
    sets SO_REUSEADDR as uvicorn does, so a port only in TIME_WAIT (a demo just finished on it)
    is free, and one another process listens on (any address) is not."""
    if not 1 <= port <= 65535:
        return f"--port {port}: port must be 1-65535"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return (f"port {port} is in use (127.0.0.1:{port}: {exc.strerror}); nothing was "
                    "started: stop what listens there, pick another --port, or leave --port out "
                    "for a free one")
    return None


def _error(message: str, status: int = 2) -> int:
    return fail("demo", message, status)


def stop_process(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """SIGTERM the child we started (a clean shutdown), then SIGKILL its own group if needed."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group id is its PID
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


class Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, CI cancellation, docker stop) takes the same way out as Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated


def demo(args) -> int:
    """Run the demo; SIGTERM is handled like Ctrl-C, and the cleanup (stop the runner and the
    service, remove the temporary database) is shielded from further signals: it is bounded by
    the stop timeouts, and an interrupted cleanup is what left services and files behind."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return _demo(args)
    except KeyboardInterrupt as exc:  # arrived before _demo's own handling took over
        return _interrupted_status(exc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _demo(args) -> int:
    console = make_console()
    quick = bool(args.quick)
    scale = args.duration_scale if args.duration_scale is not None else (0.25 if quick else 1.0)
    try:
        experiment = specs.load(args.experiment, duration_scale=scale)
    except specs.SpecError as exc:
        return _error(f"experiment spec {exc}")
    if experiment.pack != "reference":
        return _error(f"{experiment.source}: `demo` starts the reference service; run your own "
                      "target with `execbench run` (docs/loadtests.md, \"Testing your own service\")")
    if args.port:
        problem = port_problem(args.port)
        if problem:
            return _error(problem)
    pop = experiment.load["population"]
    users = max(args.users or 0, int(pop["first"]) + int(pop["users"]) - 1)
    profile = args.profile or experiment.data.get("profile", "seed")
    run_dir = Path(args.runs_dir) / f"{utc_stamp(time.time())}-{experiment.name}"
    run_dir.mkdir(parents=True, exist_ok=False)
    tmp = Path(tempfile.mkdtemp(prefix="execbench-demo-"))
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'execbench.db'}"
    service_env = {k: str(v) for k, v in experiment.data.get("service", {}).get("env", {}).items()}
    faults = {p.name: p.fault for p in experiment.phases if p.fault}
    env = {
        **os.environ,
        **service_env,
        "EXECBENCH_DATABASE_URL": database_url,
        "EXECBENCH_PROFILE": profile,
        "EXECBENCH_MODE": experiment.phases[0].mode,
        "EXECBENCH_ADMIN_TOKEN": token,
        "EXECBENCH_TIMING_LOG": str((run_dir / "timings.jsonl").absolute()),
    }
    exe = [sys.executable, "-m", "execbench"]
    service = runner = injector = None
    tier: list[ServiceProcess] = []  # the gateway tier's processes (link proxy, gateway)
    status = 1
    started = time.monotonic()
    console.print(f"[bold]execbench demo[/bold]: experiment {experiment.name} "
                  f"({experiment.total_s:.0f} s of load), profile {profile}, {users} accounts per "
                  f"type, service on {url}", highlight=False)
    try:
        console.print("seeding " + ("the database given by --database-url" if args.database_url
                                    else "a temporary SQLite database") + " ...")
        seeded = subprocess.run(
            [*exe, "seed", "--users", str(users), "--orders-per-user", str(args.orders_per_user)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        if seeded.returncode != 0:
            return _error(f"seeding failed (exit {seeded.returncode}):\n{seeded.stderr[-2000:]}", 1)
        serve = [*exe, "serve", "--host", "127.0.0.1", "--port", str(port)]
        if experiment.gateway is not None:
            # the gateway's pool lets an idle connection go after 60 s: the executor keeps it
            # longer (nginx's 75 s), so a pooled connection is never closed under a request
            serve += ["--idle-timeout", "75"]
        service = ServiceProcess(serve, env, run_dir / "service.log", url, token)
        service.start()
        try:
            service.wait_healthy(timeout=60)
        except AdminError as exc:
            return _error(f"the service did not start: {exc}; see "
                          f"{(run_dir / 'service.log').resolve()}", 1)
        gateway_args: list[str] = []
        if experiment.gateway is not None:
            try:
                tier = start_gateway(experiment.gateway, exe, env, run_dir, tmp, url, token,
                                     profile)
                gateway = tier[-1]
                gateway.wait_healthy(timeout=60)
            except AdminError as exc:
                return _error(f"the gateway tier did not start: {exc}; see "
                              f"{(run_dir / 'gateway.log').resolve()}", 1)
            gateway_args = ["--gateway", gateway.url]
            console.print(f"gateway tier on {gateway.url} (orders go through it)", highlight=False)
        if faults:
            injector = FaultInjector(run_dir, faults, service,
                                     lambda text: console.print(text, highlight=False))
            injector.start()
        run_env = {k: v for k, v in env.items() if not k.startswith("EXECBENCH_")}
        run_env["EXECBENCH_ADMIN_TOKEN"] = token
        runner = subprocess.Popen(
            [*exe, "run", args.experiment, "--target", url, "--run-dir", str(run_dir),
             "--duration-scale", str(scale), "--no-table", *gateway_args],
            env=run_env, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only us; we forward exactly one SIGINT
        )
        try:
            run_status = runner.wait()
        except KeyboardInterrupt as exc:
            _ignore_signals()  # from here to the end of the cleanup; demo() restores them
            console.print("interrupted: the runner is writing what it has recorded ...")
            if runner.poll() is None:
                runner.send_signal(signal.SIGINT)
            try:
                runner.wait(timeout=40)
            except subprocess.TimeoutExpired:
                stop_process(runner, timeout=5)
            return _interrupted_status(exc)
        if run_status != 0:
            console.print(f"[yellow]the run exited with status {run_status}[/yellow]")
        if injector is not None:
            injector.stopping.set()
            injector.join(timeout=70)
            if injector.errors:
                console.print("[red]" + "; ".join(injector.errors) + "[/red]", highlight=False)
                run_status = run_status or 1
        if experiment.load.get("client_order_ids"):
            write_recovery(run_dir, database_url, injector.events if injector else [], console)
        status = report(run_dir, console, fallback_status=run_status)
        console.print(f"demo finished in {time.monotonic() - started:.0f} s; run directory: "
                      f"{run_dir.resolve()}", highlight=False)
        if (run_dir / "report.html").exists():
            console.print(f"report: {(run_dir / 'report.html').resolve()}", highlight=False)
        return status
    except KeyboardInterrupt as exc:
        console.print("interrupted")
        return _interrupted_status(exc)
    finally:
        _ignore_signals()  # the cleanup must finish: demo() restores the handlers after it
        stop_process(runner, timeout=10)
        if injector is not None:
            injector.stopping.set()
            injector.join(timeout=70)
        for proc in reversed(tier):
            stop_process(proc.proc)
        stop_process(service.proc if service else None)
        shutil.rmtree(tmp, ignore_errors=True)  # the temporary SQLite file (unused with --database-url)


def start_gateway(conf: dict, exe: list[str], env: dict[str, str], run_dir: Path, tmp: Path,
                  executor_url: str, token: str, profile: str) -> list[ServiceProcess]:
    """The gateway tier (`execbench gateway`) in front of the executor, each process in its own
    session like the service: its timing log goes into the run directory (gateway.jsonl), its
    switches into a temporary database. `[gateway] link` puts the link proxy (`execbench
    linkproxy`: the profile's RTT and TLS unless the spec's rtt_ms/tls say otherwise) between it
    and the executor, as a process of its own: on a thread of the gateway it competed with the
    gateway's event loop for the GIL, and at 24 orders/s on a busy box its delays grew from the
    RTT's 11 ms to a second. Returns the processes started, the gateway last."""
    started: list[ServiceProcess] = []
    upstream = executor_url
    gateway_argv: list[str] = []
    if conf.get("link", True):
        from gateway.settings import link_defaults

        defaults = link_defaults(profile)
        tls = conf.get("tls", defaults["tls"])
        link_port = free_port()
        link_argv = [*exe, "linkproxy", "--upstream", executor_url, "--host", "127.0.0.1",
                     "--port", str(link_port), "--rtt-ms", str(conf.get("rtt_ms", defaults["rtt_ms"])),
                     "--tls" if tls else "--no-tls"]
        ca_dir = tmp / "link-ca"
        if tls:
            link_argv += ["--ca-out", str(ca_dir)]
        link = ServiceProcess(link_argv, env, run_dir / "linkproxy.log",
                              f"{'https' if tls else 'http'}://127.0.0.1:{link_port}", token)
        link.start()
        started.append(link)
        _wait_listening(link, link_port, ca_dir / "ca.pem" if tls else None)
        upstream = link.url
        if tls:
            gateway_argv += ["--upstream-ca", str(ca_dir / "ca.pem")]
    port = free_port()
    argv = [*exe, "gateway", "--upstream", upstream, "--host", "127.0.0.1", "--port", str(port),
            "--timing-log", str((run_dir / "gateway.jsonl").absolute()),
            "--database-url", f"sqlite+aiosqlite:///{tmp / 'gateway.db'}", *gateway_argv]
    if "sink_latency_ms" in conf:
        argv += ["--sink-latency-ms", str(conf["sink_latency_ms"])]
    gateway = ServiceProcess(argv, env, run_dir / "gateway.log", f"http://127.0.0.1:{port}", token)
    gateway.start()
    started.append(gateway)
    return started


def _wait_listening(proc: ServiceProcess, port: int, ca_file: Path | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise AdminError(f"the link proxy exited ({proc.proc.returncode}); see {proc.log_path}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0 and (ca_file is None or ca_file.exists()):
                return
        time.sleep(0.1)
    raise AdminError(f"the link proxy is not listening on 127.0.0.1:{port} after {timeout:.0f} s")


def _interrupted_status(exc: BaseException) -> int:
    return 143 if isinstance(exc, Terminated) else 130


def _ignore_signals() -> None:
    """Hold SIGINT and SIGTERM off while we stop children and remove files. Never restored
    between the interrupt and the end of the cleanup: a gap there let a second signal skip it."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def write_recovery(run_dir: Path, database_url: str, events: list, console: Console) -> None:
    """recovery.json, and the same figures under `recovery` in ledger.json so that
    `ledger_max` checks can gate on them (marked as added by the demo, not the service)."""
    try:
        record = recovery_record(run_dir, database_url, events)
    except Exception as exc:  # noqa: BLE001 - the report still runs; the checks will say so
        console.print(f"[red]recovery record failed:[/red] {exc}", highlight=False)
        return
    (run_dir / "recovery.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
    ledger_path = run_dir / "ledger.json"
    if ledger_path.exists():
        ledger = orjson.loads(ledger_path.read_bytes())
        ledger["recovery"] = {k: v for k, v in record.items() if isinstance(v, int)}
        ledger["recovery"]["added_by"] = "execbench demo (recovery.json)"
        ledger_path.write_bytes(orjson.dumps(ledger, option=orjson.OPT_INDENT_2) + b"\n")
    console.print(
        f"recovery: {record['accepted_client_order_ids_distinct']} accepted client_order_ids, "
        f"{record['database_orders_with_client_order_id']} orders with one in the database, "
        f"{record['client_order_ids_created_twice']} created twice, "
        f"{record['accepted_nonterminal']} accepted still queued, "
        f"{record['retried_arrivals']} arrivals retried ({record['retried_accepted']} accepted), "
        f"{record['connection_errors']} left without a response "
        f"({record['persisted_without_answer']} of them persisted without an answer)",
        highlight=False)


def report(run_dir: Path, console: Console, fallback_status: int) -> int:
    try:
        from analysis.api import analyze_run
    except ImportError as exc:
        from loadtests.summary import print_table

        console.print(f"(analysis not available: {exc}; per-phase table from the raw records)",
                      highlight=False)
        print_table(run_dir, console=console)
        return fallback_status
    status = analyze_run(run_dir, console=console)
    return int(status or 0) if fallback_status == 0 else fallback_status
