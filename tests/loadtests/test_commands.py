"""The CLI registers `run` and `demo` without importing Locust (it monkey-patches on import)."""

from __future__ import annotations

import subprocess
import sys

from tests.loadtests.util import ROOT, cli_env, execbench


def test_cli_does_not_import_locust_or_gevent():
    code = ("import sys; from execbench.cli import build_parser; p = build_parser(); "
            "p.parse_args(['run', 'x', '--target', 'http://h']); p.parse_args(['demo', '--quick']); "
            "import execbench.demo, loadtests.spec, loadtests.summary, reference.admin; "
            "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env=cli_env())
    assert out.stdout.strip() == "[]"


def test_run_usage_errors():
    result = execbench("run", timeout=60)
    assert result.returncode == 2
    assert "EXPERIMENT and --target URL are required" in result.stderr
    # say which one is missing
    result = execbench("run", "provider-skip-ab", timeout=60)
    assert result.returncode == 2
    assert "error: --target URL is required" in result.stderr and "EXPERIMENT" not in result.stderr
    result = execbench("run", "--target", "http://127.0.0.1:9", timeout=60)
    assert result.returncode == 2 and "error: EXPERIMENT is required" in result.stderr
    # an unknown experiment is named with the known ones, before --target is looked at
    result = execbench("run", "nonexistent", timeout=60)
    assert result.returncode == 2
    assert "unknown experiment 'nonexistent'; known: " in result.stderr
    assert "provider-skip-ab" in result.stderr and "--target" not in result.stderr
    result = execbench("run", "nope/x.toml", "--target", "http://127.0.0.1:9", timeout=60)
    assert result.returncode == 2 and "experiment spec nope/x.toml: no such file" in result.stderr
    result = execbench("run", "provider-skip-ab", "--worker", timeout=60)
    assert result.returncode == 2 and "takes its experiment from the master" in result.stderr


def test_unreachable_target_is_a_clear_error(tmp_path):
    result = execbench("run", "provider-skip-ab", "--target", "http://127.0.0.1:9",
                       "--health-timeout", "1", "--run-dir", tmp_path / "run", timeout=60)
    assert result.returncode == 2
    assert "execbench run: error: " in result.stderr and "/healthz not healthy" in result.stderr
    assert not (tmp_path / "run").exists()
