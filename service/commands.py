"""CLI commands of the service: serve, worker, seed, flag. Heavy imports stay inside handlers."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the executor (uvicorn) with provider workers",
        description="Run the order executor (FastAPI under uvicorn) with the provider simulator "
                    "and provider workers in the same process (none with --no-workers: run "
                    "`execbench worker` instead). Settings come from the EXECBENCH_* environment "
                    "(docs/DESIGN.md); the options below override them. Stop it with Ctrl-C or "
                    "SIGTERM (exit 0).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    serve.add_argument("--no-workers", action="store_true", help="run no provider workers in-process")
    serve.add_argument("--workers", type=int, default=1, help="provider worker tasks (default 1)")
    _storage_overrides(serve)
    serve.set_defaults(handler=_serve)

    worker = subparsers.add_parser(
        "worker", help="run provider workers on their own",
        description="Run provider workers without the HTTP service: they claim the orders queued "
                    "in the database, take the simulated provider's answer and confirm, reject "
                    "or time each order out (releasing its margin). Any number of them may run "
                    "beside `execbench serve` (with or without --no-workers).")
    worker.add_argument("--workers", type=int, default=2, help="worker tasks (default: %(default)s)")
    worker.add_argument("--metrics-port", type=int, default=9101,
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


def _storage_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="overrides EXECBENCH_DATABASE_URL")
    parser.add_argument("--profile", help="overrides EXECBENCH_PROFILE (seed | none | file.toml)")
    parser.add_argument("--mode", choices=["off", "skip", "skip_reserve"], help="initial flag mode")


def _settings(args):
    from service.settings import Settings

    overrides = {k: v for k in ("database_url", "profile", "mode") if (v := getattr(args, k, None))}
    return Settings(**overrides)


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        from pathlib import Path

        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


def _serve(args) -> int:
    import logging

    import uvicorn

    from service.app import create_app
    from service.profiles import ProfileError

    settings = _settings(args)
    _ensure_sqlite_dir(settings.database_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings, run_workers=not args.no_workers, worker_count=args.workers)
    except ProfileError as exc:
        print(f"execbench serve: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=10)
    server = _quiet_exit_server_class()(config)
    server.run()
    return 0 if server.started else 3  # uvicorn's STARTUP_FAILURE: the port was taken, say


def _quiet_exit_server_class():
    import contextlib

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

    return QuietExitServer


def _worker(args) -> int:
    import asyncio

    from service.worker_process import run_workers

    settings = _settings(args)
    _ensure_sqlite_dir(settings.database_url)
    asyncio.run(run_workers(settings, args.workers, args.metrics_host, args.metrics_port))
    return 0


def _seed(args) -> int:
    import asyncio

    from service.db import make_engine
    from service.seed import AlreadySeeded, clear_database, seed_database
    from service.settings import Settings

    settings = Settings(**({"database_url": args.database_url} if args.database_url else {}))
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
        print(f"execbench seed: {exc}", file=sys.stderr)
        return 1
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
            print("execbench flag: set EXECBENCH_ADMIN_TOKEN to change the flag", file=sys.stderr)
            return 2
        response = httpx.put(f"{base}/admin/flags/provider_skip", timeout=10,
                             headers={"Authorization": f"Bearer {token}"},
                             json={"mode": args.mode, "reason": args.reason, "actor": args.actor})
    except httpx.HTTPError as exc:
        print(f"execbench flag: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    if response.status_code != 200:
        print(f"execbench flag: refused ({response.status_code}): {response.text}", file=sys.stderr)
        return 1
    new = response.json()["provider_skip"]
    print(f"provider_skip: {current['mode']} -> {new['mode']} (applied {new['applied_at']} "
          f"on the replica that answered; others within the flag TTL)")
    return 0
