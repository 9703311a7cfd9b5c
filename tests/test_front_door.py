"""Issue 14, the front door: what a newcomer meets following the README, through the real CLI.

`serve` says where it listens and refuses an impossible port; the README's "Run it by hand"
seeds what its `run` then needs; `demo --port` refuses a port in use before it starts anything;
a target URL without a scheme, or one answering 404 on its health path, is refused at once;
plain SQLAlchemy URLs (`sqlite:///x.db`) work; every command's errors read
`execbench <command>: error: ...`.

No wall-clock assertion: "at once" is checked as "well within a health timeout of 600 s".
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from execbench.cli import main
from tests.support import free_port, start_service

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "front-door-token"
LONG_HEALTH = "600"  # a refusal that waited on the health check would hit the subprocess timeout


def execbench(*args, env: dict | None = None, timeout: float = 120, cwd=None):
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("EXECBENCH_")}
    return subprocess.run([sys.executable, "-m", "execbench", *map(str, args)],
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd or ROOT)


def run_by_hand_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Run it by hand")
    end = re.compile(r"\n##+ ").search(text, start + 5)  # the next heading (code has `# `)
    return text[start:end.start() if end else len(text)]


def readme_command(name: str) -> list[str]:
    """The README's `.venv/bin/execbench NAME ...` line, as arguments (comment dropped)."""
    for line in run_by_hand_section().replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        for i, word in enumerate(words):
            if word.endswith("bin/execbench") and words[i + 1:i + 2] == [name]:
                return words[i + 1:]
    raise AssertionError(f"no `execbench {name}` line in README's Run it by hand")


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


# --- the README walkthrough -----------------------------------------------------------------

def test_readme_seeds_every_account_the_bundled_experiments_use():
    from loadtests import spec as specs

    seeded = int(option(readme_command("seed"), "--users"))
    for name in specs.available():
        pop = specs.load(name).load["population"]
        last = int(pop["first"]) + int(pop["users"]) - 1
        assert last <= seeded, (f"README seeds {seeded} accounts a type, experiment {name} "
                                f"uses ids up to {last}: its `run` would be refused")
    assert readme_command("run")[1] in specs.available()


@pytest.fixture(scope="module")
def readme_service(tmp_path_factory):
    """The README's seed command as written, on a plain SQLAlchemy URL (sqlite:///, no
    +aiosqlite), and `serve` on it."""
    tmp = tmp_path_factory.mktemp("front-door")
    url = f"sqlite:///{tmp / 'readme.db'}"
    seed = readme_command("seed")
    seeded = execbench(*seed, env={"EXECBENCH_DATABASE_URL": url}, cwd=tmp, timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    assert f"into sqlite+aiosqlite:///{tmp / 'readme.db'}" in seeded.stdout
    svc = start_service(tmp, database_url=url, profile="seed", admin_token=TOKEN, seed_users=None)
    yield svc
    svc.stop()


def test_serve_says_where_it_listens_on_a_plain_sqlite_url(readme_service):
    svc = readme_service
    deadline = time.monotonic() + 30
    while "listening on" not in (log := svc.log_path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [x for x in log.splitlines() if "listening on" in x]
    assert len(lines) == 1, log
    path = svc.database_url.removeprefix("sqlite:///")
    assert f"listening on {svc.url}; database sqlite+aiosqlite:///{path}; profile seed; mode off" in lines[0]
    assert httpx.get(f"{svc.url}/api/accounts/live/200", timeout=10).status_code == 200


@pytest.mark.slow
def test_the_readme_run_works_against_the_readme_seed(readme_service, tmp_path):
    run = readme_command("run")
    run[run.index("--target") + 1] = readme_service.url
    run[run.index("--timing-log") + 1] = str(readme_service.timing_log)
    # 0.05: phases of 1.5 and 3 s (binary fractions; see the final report on 0.01)
    result = execbench(*run, "--duration-scale", "0.05", "--runs-dir", tmp_path / "runs",
                       "--no-table", env={"EXECBENCH_ADMIN_TOKEN": TOKEN}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "timings.jsonl").stat().st_size > 0
    # (rich wraps long lines where COLUMNS is small, as under xdist: compare unwrapped)
    assert f"run directory: {run_dir.resolve()}" in result.stdout.replace("\n", "")


def test_a_health_path_answering_404_is_refused_at_once(readme_service, tmp_path):
    result = execbench("run", "provider-skip-ab", "--target", f"{readme_service.url}/nothing",
                       "--health-timeout", LONG_HEALTH, "--runs-dir", tmp_path / "runs",
                       env={"EXECBENCH_ADMIN_TOKEN": TOKEN}, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"execbench run: error: GET {readme_service.url}/nothing/healthz "
                           "answered HTTP 404")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("url", ["localhost:8000", "127.0.0.1:8000", "ftp://127.0.0.1:8000"])
def test_a_target_without_an_http_scheme_is_refused_at_once(url, tmp_path):
    result = execbench("run", "provider-skip-ab", "--target", url, "--health-timeout", LONG_HEALTH,
                       "--runs-dir", tmp_path / "runs", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        (f"execbench run: error: --target {url!r}: give an http:// or https:// URL, "
         "e.g. http://127.0.0.1:8000")]
    assert not (tmp_path / "runs").exists()


# --- ports -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["serve", "--port", "99999"], "execbench serve: error: argument --port: port must be 1-65535, got 99999"),
    (["serve", "--port", "0"], "execbench serve: error: argument --port: port must be 1-65535, got 0"),
    (["serve", "--port", "http"], "execbench serve: error: argument --port: not a port number: 'http'"),
    (["demo", "--port", "99999"], "execbench demo: error: argument --port: port must be 0-65535, got 99999"),
    (["run", "x", "--metrics-port", "70000"],
     "execbench run: error: argument --metrics-port: port must be 0-65535, got 70000"),
    (["worker", "--metrics-port", "-1"],
     "execbench worker: error: argument --metrics-port: port must be 0-65535, got -1"),
])
def test_impossible_ports_are_refused_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message


def test_serve_refuses_a_bad_port_and_never_binds_another():
    result = execbench("serve", "--port", "99999", env={"EXECBENCH_DATABASE_URL": "sqlite://"},
                       timeout=60)
    assert result.returncode == 2 and "listening on" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("execbench serve: error: argument --port")


def test_demo_refuses_a_port_in_use_before_starting_anything(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = execbench("demo", "--quick", "--port", port, "--runs-dir", tmp_path / "runs",
                           timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"execbench demo: error: port {port} is in use (127.0.0.1:{port}: ")
    assert "leave --port out" in line
    assert result.stdout == "" and not (tmp_path / "runs").exists()  # no service, no run


def test_a_port_only_lingering_in_time_wait_is_free_for_the_demo():
    """The probe binds as uvicorn does (SO_REUSEADDR): a port a finished demo left in TIME_WAIT
    is not reported in use."""
    from execbench.demo import port_problem

    port = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end lingers in TIME_WAIT
        client.close()
    assert port_problem(port) is None
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", port))
        other.listen()
        assert port_problem(port).startswith(f"port {port} is in use")


# --- database URLs ---------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "used"), [
    ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("sqlite://", "sqlite+aiosqlite://"),
    ("SQLite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("postgresql://u:pw@h:5432/db", "postgresql+asyncpg://u:pw@h:5432/db"),
    ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
])
def test_plain_sqlalchemy_urls_map_to_the_async_drivers(given, used):
    from service.settings import async_database_url

    assert async_database_url(given) == used


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql+psycopg2://u@h/db", "unsupported database driver 'postgresql+psycopg2'"),
    ("x.db", "not a database URL: 'x.db'"),
])
def test_other_database_urls_are_refused_in_one_line(url, message, capsys):
    assert main(["seed", "--users", "1", "--database-url", url]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("execbench seed: error: EXECBENCH_DATABASE_URL: ") and message in line


def test_seed_and_worker_accept_a_plain_sqlite_url_from_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    seeded = execbench("seed", "--users", "2", "--orders-per-user", "1",
                       env={"EXECBENCH_DATABASE_URL": url}, cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 4 accounts and 4 open orders into sqlite+aiosqlite:///" in seeded.stdout
    again = execbench("seed", "--users", "2", env={"EXECBENCH_DATABASE_URL": url}, cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.startswith("execbench seed: error: ") and "already has accounts" in again.stderr


# --- one error form ----------------------------------------------------------------------------

def _error_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if re.search(r"\berror\b", x)]


@pytest.mark.parametrize(("argv", "command", "needle"), [
    (["run"], "run", "EXPERIMENT and --target URL are required"),
    (["run", "no-such-experiment", "--target", "http://127.0.0.1:9"], "run", "unknown experiment"),
    (["run", "provider-skip-ab", "--worker"], "run", "takes its experiment from the master"),
    (["demo", "--experiment", "no/such.toml"], "demo", "experiment spec no/such.toml"),
    (["flag", "status", "--target", "http://127.0.0.1:9"], "flag", "cannot reach http://127.0.0.1:9"),
    (["report", "{tmp}/no-run"], "report", "unusable input: "),
    (["compare", "{tmp}/a", "{tmp}/b"], "compare", "unusable input: "),
    (["analyze-log", "{tmp}/x.log"], "analyze-log", "give FILE --split-at TIME"),
    (["analyze-log", "{tmp}/x.log", "--split-at", "2026-01-01T00:00:00Z"], "analyze-log",
     "unusable input: "),
])
def test_every_command_errs_in_one_form(argv, command, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in ("EXECBENCH_ADMIN_TOKEN", "EXECBENCH_TARGET", "EXECBENCH_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    status = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert status == 2
    said = capsys.readouterr()
    lines = _error_lines(said.out + said.err)
    assert lines, said
    assert all(x.startswith(f"execbench {command}: error: ") for x in lines), lines
    assert needle in lines[0]


def test_the_error_form_is_argparses(capsys):
    """A usage error (argparse's own) and an error found later start alike."""
    with pytest.raises(SystemExit):
        main(["seed", "--users", "many"])
    usage = capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["seed", "--users", "1", "--database-url", "mysql://u@h/db"]) == 2
    later = capsys.readouterr().err.strip()
    assert usage.startswith("execbench seed: error: ") and later.startswith("execbench seed: error: ")


def test_no_command_prints_an_old_error_prefix():
    """The old prefixes are gone from every command module's source."""
    old = re.compile(r"""experiment error:|target error:|unusable input:\[/|["']execbench: error:""")
    sources = [p for d in ("execbench", "service", "loadtests", "reference", "analysis", "dashboards")
               for p in (ROOT / d).rglob("*.py") if p != ROOT / "execbench" / "console.py"]
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sources
                 for n, line in enumerate(p.read_text().splitlines(), 1) if old.search(line)]
    assert offenders == []
