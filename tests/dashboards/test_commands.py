"""`execbench annotate` and `dashboards push`: --grafana-url is optional in the usage, as its
help says ($GRAFANA_URL is the default), and a missing URL is named when the command runs."""

from __future__ import annotations

import pytest

from execbench.cli import build_parser, main


@pytest.mark.parametrize("argv", [["annotate"], ["dashboards", "push"]])
def test_grafana_url_usage_agrees_with_its_help(monkeypatch, capsys, argv):
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    out = capsys.readouterr().out
    assert "[--grafana-url URL]" in out
    assert "(default: $GRAFANA_URL; one of the two is required)" in out


@pytest.mark.parametrize("argv, name", [(["annotate", "RUN"], "annotate"),
                                        (["dashboards", "push"], "dashboards push")])
def test_a_missing_grafana_url_is_named(monkeypatch, capsys, argv, name):
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.setenv("GRAFANA_TOKEN", "t")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (f"execbench {name}: error: no Grafana URL: pass --grafana-url URL or set "
            "$GRAFANA_URL") in err
