"""`execbench dashboards push` and `execbench annotate` against a stand-in for Grafana's HTTP API.

Grafana itself cannot run here (no Grafana binary, no Docker engine on this machine or in CI), so a
small HTTP server plays its part: it answers like Grafana's documented endpoints and records every
request, and the tests check the paths, payload shapes and the auth header against that API
(POST /api/dashboards/db, GET+POST /api/folders, POST /api/annotations; Bearer token).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dashboards.build import builders

TOKEN = "glsa_test_token_123"


class StandIn:
    """Records requests; answers like Grafana 10/11 for the endpoints execbench uses.

    With `prefix`, it is served below that path, as Grafana behind a reverse proxy
    (`root_url = .../grafana/`): anything outside it gets the proxy's HTML 404.
    """

    def __init__(self, prefix: str = ""):
        self.requests: list[dict] = []
        self.folders: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                if not self.path.startswith(prefix + "/"):
                    page = b"<html><body>404 Not Found</body></html>"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                self.path = self.path[len(prefix):]
                outer.requests.append({"method": method, "path": self.path,
                                       "headers": dict(self.headers), "body": body})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._reply(401, {"message": "Unauthorized"})
                if method == "GET" and self.path.startswith("/api/folders/"):
                    uid = self.path.rsplit("/", 1)[1]
                    if uid in outer.folders:
                        return self._reply(200, {"uid": uid, "title": "execbench"})
                    return self._reply(404, {"message": "folder not found"})
                if method == "POST" and self.path == "/api/folders":
                    outer.folders.add(body["uid"])
                    return self._reply(200, {"uid": body["uid"], "title": body["title"], "id": 7})
                if method == "POST" and self.path == "/api/dashboards/db":
                    uid = body["dashboard"]["uid"]
                    return self._reply(200, {"id": 1, "uid": uid, "url": f"/d/{uid}/x",
                                             "status": "success", "version": 1})
                if method == "POST" and self.path == "/api/annotations":
                    return self._reply(200, {"message": "Annotation added",
                                             "id": len(outer.requests)})
                return self._reply(404, {"message": "Not found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def grafana():
    with StandIn() as stand_in:
        yield stand_in


def execbench(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_TOKEN"}
    if token is not None:
        env["GRAFANA_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "execbench", *args], check=False,
                          capture_output=True,
                          text=True, env=env, timeout=120)


def test_push_uploads_every_dashboard_with_the_bearer_token(grafana):
    result = execbench("dashboards", "push", "--grafana-url", grafana.url, "--folder-uid", "execbench")
    assert result.returncode == 0, result.stdout + result.stderr
    for request in grafana.requests:
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    calls = [(r["method"], r["path"]) for r in grafana.requests]
    assert calls[:2] == [("GET", "/api/folders/execbench"), ("POST", "/api/folders")]
    assert grafana.requests[1]["body"] == {"title": "execbench", "uid": "execbench"}
    pushes = [r for r in grafana.requests if r["path"] == "/api/dashboards/db"]
    assert [r["method"] for r in pushes] == ["POST"] * len(builders())
    from dashboards.build import load_all

    built = load_all()
    for request in pushes:
        assert request["headers"]["Content-Type"].startswith("application/json")
        body = request["body"]
        assert set(body) == {"dashboard", "overwrite", "folderUid", "message"}
        assert body["overwrite"] is True and body["folderUid"] == "execbench"
        dashboard = body["dashboard"]
        assert dashboard["id"] is None  # create-or-update by uid
        assert dashboard == {**built[dashboard["uid"]], "id": None}
    assert sorted(r["body"]["dashboard"]["uid"] for r in pushes) == sorted(built)
    assert "/d/execbench-executor-latency/x" in result.stdout


def test_push_reports_a_refused_token(grafana):
    result = execbench("dashboards", "push", "--grafana-url", grafana.url, token="wrong")
    assert result.returncode == 1
    assert "401" in result.stderr
    assert grafana.requests[0]["path"] == "/api/dashboards/db"  # no folder: straight to General


def test_push_and_annotate_need_a_token(grafana, tmp_path):
    result = execbench("dashboards", "push", "--grafana-url", grafana.url, token=None)
    assert result.returncode == 2 and "GRAFANA_TOKEN" in result.stderr
    result = execbench("annotate", str(tmp_path), "--grafana-url", grafana.url, token=None)
    assert result.returncode == 2
    assert grafana.requests == []


def _write_run(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    events = [
        ("2026-11-25T12:00:00.000000Z", "run_start", None, None),
        ("2026-11-25T12:00:00.100000Z", "phase_start", "baseline", "off"),
        ("2026-11-25T12:01:00.100000Z", "phase_end", "baseline", "off"),
        ("2026-11-25T12:01:00.200000Z", "flip_requested", "optimized", "skip"),
        ("2026-11-25T12:01:00.450000Z", "flip_applied", "optimized", "skip"),
        ("2026-11-25T12:01:00.500000Z", "phase_start", "optimized", "skip"),
        ("2026-11-25T12:02:00.500000Z", "phase_end", "optimized", "skip"),
        ("2026-11-25T12:02:00.600000Z", "flip_requested", "rollback", "off"),
        ("2026-11-25T12:02:00.700000Z", "flip_applied", "rollback", "off"),
        ("2026-11-25T12:02:00.800000Z", "phase_start", "rollback", "off"),
        ("2026-11-25T12:03:00.800000Z", "phase_end", "rollback", "off"),
        ("2026-11-25T12:03:01.000000Z", "run_end", None, None),
    ]
    lines = [json.dumps({"ts": ts, "event": ev, "phase": ph, "mode": mo}) for ts, ev, ph, mo in events]
    (run_dir / "timeline.jsonl").write_text("\n".join(lines) + "\n")


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def test_annotate_posts_phases_as_regions_and_flips_as_points(grafana, tmp_path):
    run_dir = tmp_path / "runs" / "20261125T120000Z-provider-skip-ab"
    _write_run(run_dir)
    result = execbench("annotate", str(run_dir), "--grafana-url", grafana.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "posted 5 annotations" in result.stdout
    assert {(r["method"], r["path"]) for r in grafana.requests} == {("POST", "/api/annotations")}
    bodies = [r["body"] for r in grafana.requests]
    for request in grafana.requests:
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    for body in bodies:
        # Grafana's create-annotation payload: epoch milliseconds, tags, text.
        assert set(body) == {"time", "timeEnd", "tags", "text"}  # no dashboard: an org annotation
        assert isinstance(body["time"], int) and isinstance(body["timeEnd"], int)
        assert body["tags"][0] == "execbench" and run_dir.name in body["tags"]
        assert body["text"]
    phases = [b for b in bodies if "phase" in b["tags"]]
    assert [(b["time"], b["timeEnd"]) for b in phases] == [
        (_ms("2026-11-25T12:00:00.100000Z"), _ms("2026-11-25T12:01:00.100000Z")),
        (_ms("2026-11-25T12:01:00.500000Z"), _ms("2026-11-25T12:02:00.500000Z")),
        (_ms("2026-11-25T12:02:00.800000Z"), _ms("2026-11-25T12:03:00.800000Z")),
    ]
    assert [b["tags"][-1] for b in phases] == ["off", "skip", "off"]
    flips = [b for b in bodies if "flip" in b["tags"]]
    assert [(b["time"], b["timeEnd"], b["tags"][-1]) for b in flips] == [
        (_ms("2026-11-25T12:01:00.450000Z"), _ms("2026-11-25T12:01:00.450000Z"), "skip"),
        (_ms("2026-11-25T12:02:00.700000Z"), _ms("2026-11-25T12:02:00.700000Z"), "off"),
    ]
    assert "250 ms after the request" in flips[0]["text"]


def test_annotations_show_on_every_dashboard():
    """The posted tag is the one each dashboard's Grafana annotation query filters on."""
    from dashboards.build import load_all

    for model in load_all().values():
        queries = [a for a in model["annotations"]["list"] if a.get("type") == "tags"]
        assert queries and queries[0]["target"]["tags"] == ["execbench"]


def test_annotate_refuses_a_directory_without_a_timeline(grafana, tmp_path):
    result = execbench("annotate", str(tmp_path), "--grafana-url", grafana.url)
    assert result.returncode == 1
    assert "timeline.jsonl" in result.stderr
    assert grafana.requests == []


def test_push_reaches_a_grafana_below_a_path_prefix():
    with StandIn(prefix="/grafana") as grafana:
        result = execbench("dashboards", "push", "--grafana-url", grafana.url + "/")
        assert result.returncode == 0, result.stdout + result.stderr
        assert [r["path"] for r in grafana.requests] == ["/api/dashboards/db"] * len(builders())
        assert f"{grafana.url}/d/execbench-executor-latency/x" in result.stdout
        # The proxy's root is not Grafana: its HTML 404 is reported with the call that got it.
        result = execbench("dashboards", "push", "--grafana-url", grafana.url.removesuffix("/grafana"))
        assert result.returncode == 1
        assert "push failed: push execbench-" in result.stderr and "HTTP 404" in result.stderr


def test_push_names_the_call_when_nothing_listens():
    from tests.support import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = execbench("dashboards", "push", "--grafana-url", url, "--folder-uid", "execbench")
    assert result.returncode == 1
    assert "push failed: GET folder execbench:" in result.stderr
    assert "Traceback" not in result.stderr
