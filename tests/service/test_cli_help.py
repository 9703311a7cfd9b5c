"""`execbench serve|worker|seed|flag --help` say what each command does and what its defaults are."""

from __future__ import annotations

import pytest

from execbench.cli import build_parser


def help_of(monkeypatch, capsys, *argv: str, env: dict | None = None) -> str:
    monkeypatch.delenv("EXECBENCH_TARGET", raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps at $COLUMNS: one line per option
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command, words", [
    ("serve", "Run the order executor"),
    ("worker", "Run provider workers without the HTTP service"),
    ("seed", "N live and N demo accounts"),
    ("flag", "Show the provider_skip mode of a running service"),
])
def test_every_service_command_has_a_description(monkeypatch, capsys, command, words):
    out = help_of(monkeypatch, capsys, command)
    assert words in out


def test_flag_help_shows_its_defaults(monkeypatch, capsys):
    out = help_of(monkeypatch, capsys, "flag", env={"USER": "alice"})
    assert "status to show the current one (default: status)" in out
    assert "here http://127.0.0.1:8000" in out
    assert "why, recorded in the audit trail (default: 'changed from the execbench CLI')" in out
    assert "who, recorded in the audit trail (default: $USER or cli; here alice)" in out
    out = help_of(monkeypatch, capsys, "flag", env={"EXECBENCH_TARGET": "http://svc:9000"})
    assert "here http://svc:9000" in out
