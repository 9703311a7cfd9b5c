"""CLI commands of the service: serve, worker, seed, flag. Heavy imports stay inside handlers."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the executor (uvicorn) with provider workers",
        description="Run the order executor (FastAPI under uvicorn) with the provider simulator "
                    "and provider workers in the same process (none with --no-workers: run "
                    "`execbench worker` instead). Settings come from the EXECBENCH_* environment "
                    "(docs/DESIGN.md); the options below override them. Stop it with Ctrl-C or "
                    "SIGTERM (exit 0).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=port_number, default=8000,
                       help="port to listen on, 1-65535 (default: %(default)s)")
    serve.add_argument("--no-workers", action="store_true", help="run no provider workers in-process")
    serve.add_argument("--workers", type=int, default=1, help="provider worker tasks (default 1)")
    limits = serve.add_argument_group("connection limits (hostile or broken clients)")
    limits.add_argument("--max-header-bytes", type=_positive(int), default=32_768, metavar="N",
                        help="a request head (request line and headers) above N bytes is answered "
                             "431 and its connection closed (default: %(default)s)")
    limits.add_argument("--header-timeout", type=_positive(float), default=10.0, metavar="S",
                        help="close a connection that has not sent a complete request head S seconds "
                             "after opening or after its last response (default: %(default)s)")
    limits.add_argument("--idle-timeout", type=_positive(float), default=5.0, metavar="S",
                        help="close a keep-alive connection idle for S seconds (default: %(default)s)")
    limits.add_argument("--max-connections", type=_positive(int), default=1024, metavar="N",
                        help="above N open connections or requests in flight, answer 503 "
                             "(default: %(default)s)")
    _storage_overrides(serve)
    serve.set_defaults(handler=_serve)

    worker = subparsers.add_parser(
        "worker", help="run provider workers on their own",
        description="Run provider workers without the HTTP service: they claim the orders queued "
                    "in the database, take the simulated provider's answer and confirm, reject "
                    "or time each order out (releasing its margin). Any number of them may run "
                    "beside `execbench serve` (with or without --no-workers).")
    worker.add_argument("--workers", type=int, default=2, help="worker tasks (default: %(default)s)")
    worker.add_argument("--metrics-port", type=port_number_or_zero, default=9101,
                        help="/metrics port (0: none; default: %(default)s)")
    worker.add_argument("--metrics-host", default="127.0.0.1",
                        help="/metrics address (default: %(default)s)")
    _storage_overrides(worker)
    worker.set_defaults(handler=_worker)

    seed = subparsers.add_parser(
        "seed", help="fill the database with accounts and open orders",
        description="Fill the database ($EXECBENCH_DATABASE_URL or --database-url) with N live "
                    "and N demo accounts (user ids 1..N for each type), each with K open orders "
                    "over several symbols. A database that already has accounts is refused "
                    "(exit 1) unless --replace or --if-empty.")
    seed.add_argument("--users", type=int, default=200,
                      help="N: live and demo accounts each, ids 1..N (default: %(default)s)")
    seed.add_argument("--orders-per-user", type=int, default=10,
                      help="K: open orders per account (default: %(default)s)")
    seed.add_argument("--replace", action="store_true", help="drop existing data first")
    seed.add_argument("--if-empty", action="store_true",
                      help="succeed without changes when the database already has accounts")
    seed.add_argument("--database-url", help="overrides EXECBENCH_DATABASE_URL")
    seed.set_defaults(handler=_seed)

    flag = subparsers.add_parser(
        "flag", help="show or change the provider_skip flag of a running service",
        description="Show the provider_skip mode of a running service (`status`, the default), or "
                    "change it to off, skip or skip_reserve at runtime. A change needs "
                    "$EXECBENCH_ADMIN_TOKEN, is written to the audit trail with --reason and "
                    "--actor, and prints the old and new mode and when the answering replica "
                    "applied it (the others follow within the flag TTL).")
    flag.add_argument("mode", choices=["off", "skip", "skip_reserve", "status"], nargs="?", default="status",
                      help="the mode to set, or status to show the current one (default: %(default)s)")
    flag.add_argument("--target", default=os.environ.get("EXECBENCH_TARGET", "http://127.0.0.1:8000"),
                      help="base URL of the service (default: $EXECBENCH_TARGET or "
                           "http://127.0.0.1:8000; here %(default)s)")
    flag.add_argument("--reason", default="changed from the execbench CLI",
                      help="why, recorded in the audit trail (default: %(default)r)")
    flag.add_argument("--actor", default=os.environ.get("USER", "cli"),
                      help="who, recorded in the audit trail (default: $USER or cli; here %(default)s)")
    flag.set_defaults(handler=_flag)


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value}")
    return value


def port_number_or_zero(text: str) -> int:
    if text.strip() == "0":
        return 0
    try:
        return port_number(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("1-65535", "0-65535")) from None


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _storage_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="overrides EXECBENCH_DATABASE_URL")
    parser.add_argument("--profile", help="overrides EXECBENCH_PROFILE (seed | none | file.toml)")
    parser.add_argument("--mode", choices=["off", "skip", "skip_reserve"], help="initial flag mode")


def fail(command: str, message: str, status: int = 2) -> int:
    """The one error style of the commands: `execbench <command>: error: …`, exit 2."""
    from execbench.console import fail as print_error

    return print_error(command, message, status)


class SettingsError(Exception):
    pass


def _settings(args):
    from pydantic import ValidationError

    from service.settings import Settings

    overrides = {k: v for k in ("database_url", "profile", "mode") if (v := getattr(args, k, None))}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"EXECBENCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise SettingsError(problems) from None


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        from pathlib import Path

        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_path(url: str) -> str | None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        return None if path in ("", ":memory:") else path
    return None


def lock_sqlite_file(url: str):
    """One `serve` per SQLite file: SQLite has no cross-process user lock, so a second executor
    on the same file over-commits in `off` (15 of 160 in the issue). An exclusive flock on
    `<file>.serve.lock`, held for the process's life (the kernel drops it when the process dies,
    even by SIGKILL). Returns the open file, or raises SettingsError naming the holder."""
    import fcntl
    import os

    path = _sqlite_path(url)
    if path is None:
        return None
    lock = open(f"{path}.serve.lock", "a+")  # noqa: SIM115 -- held open until the process exits
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise SettingsError(f"{path} is already served by {holder}; one `execbench serve` per SQLite "
                            "file (run replicas on PostgreSQL)") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"execbench serve pid {os.getpid()}\n")
    lock.flush()
    return lock


def _serve(args) -> int:
    import logging

    import uvicorn

    from service.app import create_app
    from service.http_server import guarded_protocol
    from service.profiles import ProfileError

    try:
        settings = _settings(args)
        _ensure_sqlite_dir(settings.database_url)
        lock = lock_sqlite_file(settings.database_url)  # noqa: F841 -- held until exit
    except SettingsError as exc:
        return fail("serve", str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings, run_workers=not args.no_workers, worker_count=args.workers)
    except ProfileError as exc:
        return fail("serve", str(exc))
    protocol = guarded_protocol(args.max_header_bytes, args.header_timeout)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10, timeout_keep_alive=args.idle_timeout,
                            limit_concurrency=args.max_connections,
                            h11_max_incomplete_event_size=args.max_header_bytes,
                            **({"http": protocol} if protocol is not None else {}))
    server = _quiet_exit_server_class(0 if args.no_workers else args.workers)(config)
    server.run()
    if not server.started:  # uvicorn's STARTUP_FAILURE: the port was taken, say
        return fail("serve", f"could not listen on {args.host}:{args.port} (see the log above)", 3)
    return 0


def describe(settings, host: str, port: int, mode: str, workers: int) -> str:
    """The line `serve` logs once it listens: where, on what, how."""
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).render_as_string(hide_password=True)
    return (f"listening on http://{host}:{port}; database {database}; "
            f"profile {settings.profile}; mode {mode}; provider workers {workers}")


def _quiet_exit_server_class(workers: int = 0):
    import contextlib
    import logging

    import uvicorn

    class QuietExitServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT on itself after a graceful shutdown, so a clean stop
        exits -15 (or prints a KeyboardInterrupt traceback). Compose, systemd and our own runner
        read that as a crash; forget the captured signals once the shutdown has finished."""

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self._captured_signals.clear()

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if not self.started:
                return
            app = self.config.loaded_app
            while not hasattr(app, "state") and hasattr(app, "app"):  # uvicorn's wrappers
                app = app.app
            services = app.state.services
            port = self.servers[0].sockets[0].getsockname()[1] if self.servers else self.config.port
            logging.getLogger("execbench.serve").info(
                describe(services.settings, self.config.host, port, services.flags.mode, workers))

    return QuietExitServer


def _worker(args) -> int:
    import asyncio

    from service.worker_process import run_workers

    try:
        settings = _settings(args)
    except SettingsError as exc:
        return fail("worker", str(exc))
    _ensure_sqlite_dir(settings.database_url)
    asyncio.run(run_workers(settings, args.workers, args.metrics_host, args.metrics_port))
    return 0


def _seed(args) -> int:
    import asyncio

    from service.db import make_engine
    from service.seed import AlreadySeeded, clear_database, seed_database
    try:
        settings = _settings(args)
    except SettingsError as exc:
        return fail("seed", str(exc))
    _ensure_sqlite_dir(settings.database_url)

    async def main():
        engine = make_engine(settings.database_url)
        try:
            if args.replace:
                await clear_database(engine)
            return await seed_database(engine, users=args.users, orders_per_user=args.orders_per_user,
                                       price_seed=settings.price_seed)
        finally:
            await engine.dispose()

    try:
        counts = asyncio.run(main())
    except AlreadySeeded as exc:
        if args.if_empty:
            print(f"execbench seed: {settings.database_url} already has accounts; left as it is")
            return 0
        return fail("seed", str(exc))
    print(f"seeded {counts['accounts']} accounts and {counts['orders']} open orders "
          f"into {settings.database_url}")
    return 0


def _flag(args) -> int:
    import httpx

    token = os.environ.get("EXECBENCH_ADMIN_TOKEN")
    base = args.target.rstrip("/")
    try:
        current = httpx.get(f"{base}/admin/flags", timeout=10).raise_for_status().json()["provider_skip"]
        if args.mode == "status":
            print(f"provider_skip = {current['mode']} (changed {current['changed_at']} by "
                  f"{current['changed_by']}; applied here {current['applied_at']})")
            return 0
        if not token:
            return fail("flag", "set EXECBENCH_ADMIN_TOKEN to change the flag")
        response = httpx.put(f"{base}/admin/flags/provider_skip", timeout=10,
                             headers={"Authorization": f"Bearer {token}"},
                             json={"mode": args.mode, "reason": args.reason, "actor": args.actor})
    except httpx.HTTPError as exc:
        return fail("flag", f"cannot reach {base}: {exc}")
    if response.status_code != 200:
        return fail("flag", f"the flag change was refused ({response.status_code}): {response.text}")
    new = response.json()["provider_skip"]
    print(f"provider_skip: {current['mode']} -> {new['mode']} (applied {new['applied_at']} "
          f"on the replica that answered; others within the flag TTL)")
    return 0
