from __future__ import annotations

import pytest

from tests.support import create_postgres_database, drop_postgres_database


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'execbench.db'}"


@pytest.fixture
def postgres_url():
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """Every storage test runs on both backends through the one code path."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'execbench.db'}"
        return
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def running_service(tmp_path):
    """Factory: start real `execbench serve` processes; every one is stopped at teardown."""
    from tests.support import start_service

    started = []

    def start(**kwargs):
        handle = start_service(tmp_path, **kwargs)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
