"""Helpers shared by the test packages: missing-dependency policy, ports, databases.

A skipped test is a failing test in CI: on a newcomer's machine a missing
PostgreSQL, Prometheus or Chromium skips with the reason, but with CI=true set
the same condition fails the test, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_ADMIN_DSN = os.environ.get(
    "EXECBENCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def missing(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        missing(f"`{name}` not found; install the Debian package `{package}` (see .ci/run)")
    return path


# Ports for the servers the tests start. Below Linux's ephemeral range (32768-60999), so no
# outgoing connection (to PostgreSQL, between test processes) takes one between the check here
# and the server's own bind, which the port 0 the OS hands out could not promise. Under xdist
# each worker draws from its own slice, so two workers never pick the same port; the start in
# the slice is random, so two suites on one machine rarely walk the same ports either.
PORT_RANGE = (20000, 32000)
_next_port: list[int] = []


def _port_slice() -> tuple[int, int]:
    low, high = PORT_RANGE
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    if worker.startswith("gw"):
        count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        span = (high - low) // count
        low += int(worker[2:]) % count * span
        high = low + span
    return low, high


def free_port() -> int:
    """A port nothing listens on now, from this worker's slice (see PORT_RANGE)."""
    import random

    low, high = _port_slice()
    if not _next_port:
        _next_port.append(random.randrange(low, high))
    for _ in range(high - low):
        port = _next_port[0]
        _next_port[0] = low + (port + 1 - low) % (high - low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering): the next one
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", POSTGRES_ADMIN_DSN, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # callers read returncode and stderr and say what failed
    )


def postgres_available() -> bool:
    if shutil.which("psql") is None:
        return False
    return _psql("select 1").returncode == 0


def create_postgres_database() -> str:
    """Create a fresh database for one test and return its SQLAlchemy URL."""
    if not postgres_available():
        missing("PostgreSQL is not reachable on 127.0.0.1:5432 (see .ci/run to start it)")
    name = f"execbench_test_{uuid.uuid4().hex[:12]}"
    result = _psql(f'create database "{name}"')
    assert result.returncode == 0, result.stderr
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _psql(f'drop database if exists "{name}" with (force)')


class ServiceHandle:
    """A real `execbench serve` process on a free port (see `running_service`)."""

    def __init__(self, url: str, admin_token: str, database_url: str, timing_log, process, log_path):
        self.url = url
        self.admin_token = admin_token
        self.database_url = database_url
        self.timing_log = timing_log
        self.process = process
        self.log_path = log_path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def drained_ledger(self, timeout: float = 30.0) -> dict:
        """Poll GET /admin/ledger until no order is non-terminal (or the timeout); return it."""
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while True:
            ledger = httpx.get(f"{self.url}/admin/ledger", headers=self.admin_headers, timeout=5).json()
            if ledger["orders_nonterminal"] == 0 or time.monotonic() > deadline:
                return ledger
            time.sleep(0.1)

    def stop(self, sig: int | None = None, timeout: float = 20.0) -> int:
        """Stop the process we started, by its PID (SIGTERM: a clean shutdown by default)."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def seed_in_process(env: dict[str, str], users: int, orders_per_user: int) -> None:
    """What `execbench seed --users N --orders-per-user M` does (service/commands.py), in this
    process: the same settings from the same environment, the same seed_database. A subprocess
    for it cost every service a test starts a second interpreter importing the service stack
    (~1 s of CPU); the command itself is tested as a newcomer runs it (tests/test_front_door.py,
    tests/service/test_commands.py)."""
    import asyncio
    import threading

    from service.db import make_engine
    from service.seed import seed_database
    from service.settings import Settings

    overrides = {k: v for k, v in env.items() if k.startswith("EXECBENCH_")}
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)  # Settings reads EXECBENCH_* as `execbench seed` would
    try:
        settings = Settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    async def main():
        engine = make_engine(settings.database_url)
        try:
            await seed_database(engine, users=users, orders_per_user=orders_per_user,
                                price_seed=settings.price_seed)
        finally:
            await engine.dispose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    errors: list[BaseException] = []  # called from a running loop: seed on a thread of its own

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def start_service(
    tmp_path,
    *,
    database_url: str | None = None,
    profile: str = "none",
    mode: str = "off",
    admin_token: str = "test-admin-token",
    seed_users: int | None = 20,
    orders_per_user: int = 5,
    workers: bool = True,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    name: str = "service",
    serve_args: list[str] | None = None,
) -> ServiceHandle:
    """Seed a database (unless seed_users is None) and start `execbench serve` on it."""
    import sys
    import time

    import httpx

    database_url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'execbench.db'}"
    port = port or free_port()
    timing_log = tmp_path / f"{name}-timings.jsonl"
    env = {
        **os.environ,
        "EXECBENCH_DATABASE_URL": database_url,
        "EXECBENCH_PROFILE": profile,
        "EXECBENCH_MODE": mode,
        "EXECBENCH_ADMIN_TOKEN": admin_token,
        "EXECBENCH_TIMING_LOG": str(timing_log),
        **(extra_env or {}),
    }
    exe = [sys.executable, "-m", "execbench"]
    if seed_users is not None:
        seed_in_process(env, seed_users, orders_per_user)
    log_path = tmp_path / f"{name}.log"
    args = [*exe, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if not workers:
        args.append("--no-workers")
    args += serve_args or []
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    # 60 s: a start-up is ~1 s of imports, but a 2-core box at load 8 (a benchmark beside the
    # suite) once took over 30 s before the service logged a line
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=1) as poll:  # one client: httpx.get() builds one (SSL context too) a call
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{log_path.read_text()}")
            try:
                if poll.get(f"{url}/healthz").status_code == 200:
                    return ServiceHandle(url, admin_token, database_url, timing_log, process, log_path)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"service did not become healthy:\n{log_path.read_text()}")
