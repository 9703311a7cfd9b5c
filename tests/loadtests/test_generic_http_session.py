"""The generic target's requests behave as Locust's session made them behave, now that the lean
client sends them: a redirect is followed (cookies of the redirecting answer kept), the cookie
jar carries a cookie to every later request, a gzip body is decoded for a JSON server metric,
a 500 is a failure with its reason in the records and in Locust's failures CSV. A real
`execbench run` in a subprocess against a small threaded server in this process."""

from __future__ import annotations

import csv
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from loadtests.records import read_jsonl
from tests.loadtests.util import EXIT_OF_VERDICT, execbench

SPEC = """
name = "session-behaviour"
modes = ["off"]

[target]
health = "/health"

[[target.requests]]
name = "start"
path = "/start"
served_mode = "header:X-Saw-Cookie"

[[target.requests]]
name = "gz"
method = "POST"
path = "/gz"
json = {{ a = 1 }}
server_timing = "json:/t"

[[target.requests]]
name = "fail"
path = "/fail"

[load]
arrival = "fixed"
rate = {rate}
seed = 5
drain_s = 1

[[phases]]
name = "p"
duration_s = 2
mode = "off"
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def _answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        cookie = self.headers.get("Cookie")
        Handler.seen.append((self.path, cookie))
        if self.path == "/health":
            self._answer(200, b"ok")
        elif self.path == "/start" and not cookie:
            self._answer(302, headers={"Location": "/final", "Set-Cookie": "sid=abc; Path=/"})
        elif self.path in ("/start", "/final"):
            self._answer(200, b"{}", {"X-Saw-Cookie": "yes" if cookie == "sid=abc" else "no"})
        else:
            self._answer(500, b"boom")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        Handler.seen.append((self.path, self.headers.get("Cookie")))
        assert json.loads(body) == {"a": 1}
        self._answer(200, gzip.compress(b'{"t": 4.5}'), {"Content-Encoding": "gzip",
                                                        "Content-Type": "application/json"})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    Handler.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_redirects_cookies_gzip_and_failures_as_the_session_had_them(server, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(rate=10))
    run_dir = tmp_path / "run"
    proc = execbench("run", spec, "--target", server, "--run-dir", run_dir, "--no-table")
    assert proc.returncode in EXIT_OF_VERDICT.values(), proc.stdout + proc.stderr
    records = read_jsonl(run_dir / "requests.jsonl")
    by_name = {}
    for rec in records:
        by_name.setdefault(rec["name"], []).append(rec)
    assert set(by_name) == {"start", "gz", "fail"}, by_name.keys()
    # the first /start was redirected to /final, which already carried the cookie the 302 set;
    # every later request carries it from the jar
    assert all(r["status"] == 200 and r["outcome"] == "ok" for r in by_name["start"])
    assert all(r["served_mode"] == "yes" for r in by_name["start"])
    paths = [p for p, _ in Handler.seen if p != "/health"]
    assert paths.count("/final") == 1
    first_start = paths.index("/start")
    assert all(cookie == "sid=abc" for p, cookie in Handler.seen[first_start + 2:]
               if p != "/health"), Handler.seen
    # gzip'd JSON body: the server metric read from the decoded body
    assert all(r["server_metrics"] == {"t_ms": 4.5} for r in by_name["gz"])
    # a 500: a failure, with its reason, in the records and in Locust's stats
    assert all(r["outcome"] == "failure" and r["reason"] == "HTTP 500" and r["status"] == 500
               for r in by_name["fail"])
    with open(run_dir / "locust_stats.csv") as fh:
        stats = {row["Name"]: row for row in csv.DictReader(fh)}
    for name, recs in by_name.items():
        assert int(stats[name]["Request Count"]) == len(recs)
    assert int(stats["fail"]["Failure Count"]) == len(by_name["fail"])
    assert int(stats["start"]["Failure Count"]) == 0
    with open(run_dir / "locust_failures.csv") as fh:
        failures = list(csv.DictReader(fh))
    assert any(f["Name"] == "fail" and "HTTP 500" in f["Error"] for f in failures)
