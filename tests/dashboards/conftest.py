"""The live-Prometheus stack, one for the dashboards' tests that query a real Prometheus.

test_live_prometheus.py (every panel of every dashboard, the alerts, annotate) and
test_latency_plan_dashboard.py (the gateway tier's dashboard, through its 16 flag cells) read the
same stack: executor, provider worker, gateway, Prometheus, and a Locust run followed by orders
through the gateway in each cell. Both modules say `LOADGROUP = "live-prometheus"`, so that
`--dist loadgroup` runs them on one worker (tests/conftest.py) and the stack starts once; it is
stopped as soon as that worker moves on to a test of another module, not at the end of the
session, so its processes do not idle beside the rest of the suite.
"""

from __future__ import annotations

import pytest

STACK_MODULES = ("test_live_prometheus.py", "test_latency_plan_dashboard.py")
_open: list = []

EXPERIMENT_NAME = "dashboards-live.toml"


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    from tests.dashboards.test_latency_plan_dashboard import drive_cells_after_the_live_run
    from tests.dashboards.test_live_prometheus import EXPERIMENT, Stack

    tmp = tmp_path_factory.mktemp("live")
    spec = tmp / EXPERIMENT_NAME
    spec.write_text(EXPERIMENT)
    with Stack(tmp, [str(spec)], after_run=drive_cells_after_the_live_run) as stack:
        _open.append(stack)
        yield stack
        _close()


def _close() -> None:
    while _open:
        _open.pop().__exit__()


def pytest_runtest_teardown(item, nextitem):
    """Stop the stack once the next test is of no module that reads it (under xdist the group
    is scheduled as one unit, so none of its tests follows on this worker)."""
    if _open and (nextitem is None or nextitem.path.name not in STACK_MODULES):
        _close()
