from __future__ import annotations

import os

import pytest

from tests.support import create_postgres_database, drop_postgres_database


def _shared_scopes() -> dict[str, str]:
    """Test modules (as node ids) that share a fixture between their tests, each with the
    scheduling unit it belongs to: a module that defines a module-scoped fixture is its own
    unit; modules that read one session-scoped stack say so with the same
    `LOADGROUP = "name"` line and form one unit (tests/dashboards/conftest.py)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    scopes = {}
    for path in (root / "tests").rglob("test_*.py"):
        text = path.read_text()
        module = str(path.relative_to(root))
        group = re.search(r'^LOADGROUP = "([^"]+)"', text, re.MULTILINE)
        if group:
            scopes[module] = f"loadgroup:{group[1]}"
        elif 'scope="module"' in text:
            scopes[module] = module
    return scopes


@pytest.hookimpl(optionalhook=True)  # `-p no:xdist` runs the suite in one process
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` as this suite means it (`make test`): a module with a module-scoped
    fixture runs on one worker, so its fixture is set up once instead of on every worker that
    gets one of its tests, and modules with the same LOADGROUP line run on one worker together;
    every other test is scheduled on its own, like `--dist load`.

    xdist's own loadgroup reads `xdist_group` marks through a node id rename that pytest 9 no
    longer honours (Node.nodeid is built from `_id`; xdist 3.8 sets `_nodeid`), so the grouping
    is done here, in the scheduler, from the files."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    shared = _shared_scopes()

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return shared.get(nodeid.split("::", 1)[0], nodeid)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Under xdist, the `slow` tests (real load for seconds) go first, so the suite does not end
    on one worker with a long test left while the others idle."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
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
