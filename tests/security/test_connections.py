"""Attack 4b: hostile connections, and the process rules of `execbench serve`.

Before: a 16 MiB header was answered 200, idle and half-sent connections were never closed
(ten unfinished 8 MiB heads added 88 MiB RSS), and a second `serve` on the same SQLite file
ran happily and over-committed in `off`. Waits below are deadlines, not measurements.
"""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, deadline_s: float) -> bool:
    """True when the server closes the connection before the deadline."""
    sock.settimeout(0.2)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


def test_oversized_heads_slow_heads_and_idle_connections_are_cut(running_service):
    svc = running_service(seed_users=2, serve_args=["--max-header-bytes", "16384", "--header-timeout", "1",
                                                    "--idle-timeout", "1", "--max-connections", "64"])
    port = _port(svc.url)
    # a 1 MiB header: 431, connection closed, the service unharmed
    response = httpx.get(f"{svc.url}/healthz", headers={"x-pad": "a" * (1 << 20)}, timeout=30)
    assert response.status_code == 431, response.text[:200]
    # ten unfinished heads, each stopped after 12 KiB: every one closed by the head timeout
    slow = []
    for _ in range(10):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 12_000)
        slow.append(sock)
    assert all(_closed_within(sock, 20) for sock in slow)
    # a connection that sends nothing at all
    silent = socket.create_connection(("127.0.0.1", port))
    assert _closed_within(silent, 20)
    # an idle keep-alive connection after one answered request
    idle = socket.create_connection(("127.0.0.1", port))
    idle.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    idle.settimeout(10)
    assert b"200 OK" in idle.recv(65536)
    assert _closed_within(idle, 20)
    for sock in [*slow, silent, idle]:
        sock.close()
    # a normal keep-alive client is unaffected
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        assert all(client.get("/healthz").status_code == 200 for _ in range(5))
    assert "Traceback" not in svc.log_path.read_text()


def test_serve_says_where_it_listens_and_refuses_a_second_process_on_one_sqlite_file(running_service, tmp_path):
    svc = running_service(seed_users=2, extra_env={"EXECBENCH_ADMIN_TOKEN": "secret"})
    deadline = time.monotonic() + 30
    while "listening on" not in (log := svc.log_path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(x for x in log.splitlines() if "listening on" in x)
    assert f"listening on {svc.url}" in line and "profile none; mode off" in line
    assert svc.database_url.split("///", 1)[1] in line
    env = {**os.environ, "EXECBENCH_DATABASE_URL": svc.database_url, "EXECBENCH_PROFILE": "none"}
    second = subprocess.run([sys.executable, "-m", "execbench", "serve", "--port", str(_port(svc.url) + 1)],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("execbench serve: error: ") and "already served" in lines[0]
    # ports validated, plain SQLAlchemy URLs mapped or refused in one line
    bad_port = subprocess.run([sys.executable, "-m", "execbench", "serve", "--port", "99999"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert bad_port.returncode == 2 and "port must be 1-65535" in bad_port.stderr
    mysql = subprocess.run([sys.executable, "-m", "execbench", "serve", "--port", "1"],
                           env={**env, "EXECBENCH_DATABASE_URL": "mysql://u@h/db"},
                           capture_output=True, text=True, timeout=60, check=False)
    assert mysql.returncode == 2
    assert mysql.stderr.strip().splitlines() == [
        ("execbench serve: error: EXECBENCH_DATABASE_URL: unsupported database driver 'mysql': use sqlite:// "
         "(aiosqlite) or postgresql:// (asyncpg)")]


def test_plain_sqlalchemy_urls_are_mapped_to_the_async_drivers(tmp_path):
    from service.settings import Settings

    assert Settings(database_url=f"sqlite:///{tmp_path}/x.db").database_url == f"sqlite+aiosqlite:///{tmp_path}/x.db"
    assert Settings(database_url="postgresql://u:pw@h:5432/db").database_url == "postgresql+asyncpg://u:pw@h:5432/db"
    assert Settings(database_url="postgres://u@h/db").database_url == "postgresql+asyncpg://u@h/db"
    from service.commands import describe

    line = describe(Settings(database_url="postgresql://u:pw@h:5432/db"), "127.0.0.1", 8000, "off", 1)
    assert "pw" not in line and "postgresql+asyncpg://u:***@h:5432/db" in line
