from __future__ import annotations

import os

import pytest

from tests.support import create_postgres_database, drop_postgres_database


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Under xdist (`make test` runs `-n 2 --dist loadgroup`): keep a module's shared fixture
    shared, and start the long tests first.

    A test that uses a module-scoped fixture (one service and run shared by the module's checks)
    joins its module's xdist group, so one worker sets the fixture up once instead of each worker
    building its own. The `slow` tests (real load for seconds) go first, so the suite does not
    end on one worker with a long test left while the other idles.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for item in items:
        fixturedefs = getattr(item, "_fixtureinfo", None)
        defs = fixturedefs.name2fixturedefs.values() if fixturedefs else ()
        # the project's own fixtures (a plugin's, like tmp_path_factory, have no baseid)
        if any(d and d[-1].baseid and d[-1].scope != "function" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
