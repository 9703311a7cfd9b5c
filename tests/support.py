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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", POSTGRES_ADMIN_DSN, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True,
        text=True,
        timeout=30,
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
