"""The plots drawn in forked workers are the same files as drawn in one process, and a plot
that fails in a worker is reported like one that fails here."""

from __future__ import annotations

import pytest

from analysis import plots
from analysis.api import load_run
from analysis.core import build_summary
from analysis.synthetic import RunSpec, write_run


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    a = load_run(write_run(tmp_path_factory.mktemp("run") / "r", RunSpec(records=1080)))
    build_summary(a)
    return a


def test_forked_workers_draw_the_same_files(analysed, tmp_path):
    one_errors, two_errors = [], []
    one = plots.make_plots(analysed, tmp_path / "one", one_errors, workers=1)
    two = plots.make_plots(analysed, tmp_path / "two", two_errors, workers=3)
    assert one_errors == two_errors == []
    assert list(one) == list(two) and len(one) >= 5  # in PLOTS order either way
    for name in one:
        assert one[name].read_bytes() == two[name].read_bytes(), name


def test_a_plot_failing_in_a_worker_is_reported_and_the_rest_drawn(analysed, tmp_path,
                                                                    monkeypatch):
    def broken(a, path):
        raise ValueError("no data")

    monkeypatch.setattr(plots, "PLOTS", tuple((n, broken if n == "cdf" else f)
                                              for n, f in plots.PLOTS))
    for workers in (1, 2):
        errors = []
        out = plots.make_plots(analysed, tmp_path / str(workers), errors, workers=workers)
        assert errors == ["plot cdf failed: ValueError: no data"]
        assert "cdf" not in out and "latency_over_time" in out


def test_plot_workers_follow_the_environment(monkeypatch):
    monkeypatch.setenv("EXECBENCH_PLOT_WORKERS", "1")
    assert plots.plot_workers() == 1
    monkeypatch.setenv("EXECBENCH_PLOT_WORKERS", "64")
    assert 1 <= plots.plot_workers() <= len(plots.PLOTS)
