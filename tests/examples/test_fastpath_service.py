"""examples/fastpath: the foreign service the harness is proven against, run as a real uvicorn.

No assertion here is about how long anything takes: a flip is polled for with a generous
deadline, and the speed of each variant is measured by examples/fastpath/bench.py instead.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.examples.fastpath import FLAGCTL, REPO, Fastpath, start_fastpath
from tests.support import free_port

SERVER_TIMING = re.compile(r"^\s*([!#$%&'*+\-.^_`|~\w]+)\s*((?:;[^,]*)?)$")


def server_timing(header: str) -> dict[str, float | None]:
    """W3C Server-Timing: `name;dur=1.2;desc="x", other` -> {name: dur or None}."""
    metrics: dict[str, float | None] = {}
    for entry in header.split(","):
        match = SERVER_TIMING.match(entry)
        assert match, f"not a Server-Timing metric: {entry!r} in {header!r}"
        params = dict(
            p.strip().split("=", 1) for p in match.group(2).split(";") if "=" in p
        )
        metrics[match.group(1)] = float(params["dur"]) if "dur" in params else None
    return metrics


def order(amount: float | str = 120.0, **extra) -> dict:
    return {"user": "user-1", "amount": amount, "ref": str(uuid.uuid4()), **extra}


def flagctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FLAGCTL), *args], capture_output=True, text=True, timeout=60,
        check=False,  # the tests read the exit status
    )


def replace_file(path: Path, document: dict) -> None:
    """What the harness's flagd adapter does, written independently of flagctl: temp + rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(document, out)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One service for the tests that never change its flag."""
    service = start_fastpath(tmp_path_factory.mktemp("fastpath"))
    yield service
    service.stop()


@pytest.fixture
def service(tmp_path):
    handle = start_fastpath(tmp_path)
    yield handle
    handle.stop()


def test_health(shared: Fastpath):
    response = httpx.get(f"{shared.url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_checkout_is_created_with_its_server_timing_and_variant(shared: Fastpath):
    body = order()
    response = httpx.post(f"{shared.url}/api/checkout", json=body, timeout=10)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["ref"] == body["ref"] and created["status"] == "accepted"
    timing = server_timing(response.headers["Server-Timing"])
    assert timing["app"] is not None and timing["app"] > 0
    assert response.headers["X-Variant"] == "legacy" == created["variant"]


def test_checkout_over_the_limit_is_a_business_rejection(shared: Fastpath):
    response = httpx.post(f"{shared.url}/api/checkout", json=order(451), timeout=10)
    assert response.status_code == 409
    assert response.json()["error"] == "limit_exceeded"
    assert "app" in server_timing(response.headers["Server-Timing"])
    at_limit = httpx.post(f"{shared.url}/api/checkout", json=order(450), timeout=10)
    assert at_limit.status_code == 201


def test_checkout_is_lax_about_numbers_as_most_apis_are(shared: Fastpath):
    # The harness's templates send `{user_id}` as a JSON integer; a string amount is read too.
    numeric_user = httpx.post(f"{shared.url}/api/checkout", json=order(user=17), timeout=10)
    assert numeric_user.status_code == 201 and numeric_user.json()["user"] == "17"
    assert httpx.post(f"{shared.url}/api/checkout", json=order("37"), timeout=10).status_code == 201


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        json.dumps({"user": "u", "amount": 10}).encode(),  # no ref
        json.dumps({"user": "u", "amount": 10, "ref": "not-a-uuid"}).encode(),
        json.dumps(order(-5)).encode(),
        json.dumps(order(0)).encode(),
        json.dumps(order("many")).encode(),
        json.dumps(order(user="")).encode(),
        json.dumps(order(True)).encode(),
        json.dumps(order(user=True)).encode(),
    ],
    # fixed ids: order() draws a fresh uuid per call, and xdist needs every worker to collect the
    # same test names
    ids=["not-json", "array", "no-ref", "bad-ref", "negative", "zero", "string-amount",
         "empty-user", "bool-amount", "bool-user"],
)
def test_checkout_rejects_invalid_input(shared: Fastpath, content: bytes):
    response = httpx.post(
        f"{shared.url}/api/checkout",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert "X-Variant" in response.headers


def test_search_reports_its_handler_time_in_the_body(shared: Fastpath):
    response = httpx.get(f"{shared.url}/api/search", params={"q": "eur"}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["results"] and all(r["currency"] == "eur" for r in body["results"])
    assert isinstance(body["timings"]["handler_ms"], float) and body["timings"]["handler_ms"] > 0
    assert response.headers["X-Variant"] == "legacy"
    assert httpx.get(f"{shared.url}/api/search", timeout=10).status_code == 422


def test_missing_flag_file_is_created_on_the_default_variant(shared: Fastpath):
    document = json.loads(shared.flags_file.read_text())
    assert document["flags"]["fast_path"]["defaultVariant"] == "legacy"
    assert set(document["flags"]["fast_path"]["variants"]) == {"legacy", "fast"}
    assert shared.evaluated_variant() == "legacy"


def test_flag_writes_need_the_token(shared: Fastpath):
    url = f"{shared.url}/flags/fast_path"
    assert httpx.put(url, json={"variant": "fast"}, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.put(url, json={"variant": "fast"}, headers=wrong, timeout=10).status_code == 403
    unknown = httpx.put(url, json={"variant": "turbo"}, headers=shared.auth, timeout=10)
    assert unknown.status_code == 422
    assert unknown.json()["variants"] == ["legacy", "fast"]
    assert httpx.put(url, json={"mode": "fast"}, headers=shared.auth, timeout=10).status_code == 422
    assert json.loads(shared.flags_file.read_text())["flags"]["fast_path"]["defaultVariant"] == (
        "legacy"
    )


def test_put_flips_the_variant_the_service_uses(service: Fastpath):
    url = f"{service.url}/flags/fast_path"
    response = httpx.put(url, json={"variant": "fast"}, headers=service.auth, timeout=10)
    assert response.status_code == 200
    assert response.json()["requested"] == "fast"
    assert response.json()["variant"] in {"legacy", "fast"}  # applied on the provider's next poll
    assert service.wait_for_variant("fast") == "fast"
    checkout = httpx.post(f"{service.url}/api/checkout", json=order(), timeout=10)
    assert checkout.headers["X-Variant"] == "fast" == checkout.json()["variant"]
    search = httpx.get(f"{service.url}/api/search", params={"q": "gold"}, timeout=10)
    assert search.headers["X-Variant"] == "fast" and search.json()["results"]

    httpx.put(url, json={"variant": "legacy"}, headers=service.auth, timeout=10)
    assert service.wait_for_variant("legacy") == "legacy"


def test_rewriting_the_file_directly_flips_it(service: Fastpath):
    document = json.loads(service.flags_file.read_text())
    document["flags"]["fast_path"]["defaultVariant"] = "fast"
    replace_file(service.flags_file, document)
    assert service.wait_for_variant("fast") == "fast"
    document["flags"]["fast_path"]["defaultVariant"] = "legacy"
    replace_file(service.flags_file, document)
    assert service.wait_for_variant("legacy") == "legacy"


def test_a_half_written_file_keeps_the_last_good_flags(service: Fastpath):
    replace_file(service.flags_file, {"flags": {"fast_path": {
        "state": "ENABLED", "variants": {"legacy": "legacy", "fast": "fast"},
        "defaultVariant": "fast",
    }}})
    assert service.wait_for_variant("fast") == "fast"
    service.flags_file.write_text('{"flags": {"fast_path": {"state": "ENAB')  # a torn write
    deadline = time.monotonic() + 60
    while httpx.get(f"{service.url}/flags/fast_path", timeout=10).json()["provider"] != "ERROR":
        assert time.monotonic() < deadline, "the provider never saw the broken file"
        time.sleep(0.02)
    assert service.evaluated_variant() == "fast"
    checkout = httpx.post(f"{service.url}/api/checkout", json=order(), timeout=10)
    assert checkout.status_code == 201 and checkout.headers["X-Variant"] == "fast"
    result = flagctl("--file", str(service.flags_file), "set", "fast_path", "legacy")
    assert result.returncode == 1 and "cannot read" in result.stderr  # flagctl refuses to guess
    replace_file(service.flags_file, {"flags": {"fast_path": {
        "state": "ENABLED", "variants": {"legacy": "legacy", "fast": "fast"},
        "defaultVariant": "legacy",
    }}})
    assert service.wait_for_variant("legacy") == "legacy"
    assert httpx.get(f"{service.url}/flags/fast_path", timeout=10).json()["provider"] == "READY"


def test_flagctl_flips_a_running_service(service: Fastpath):
    result = flagctl("--file", str(service.flags_file), "set", "fast_path", "fast")
    assert result.returncode == 0, result.stderr
    assert service.wait_for_variant("fast") == "fast"
    # --url asks the service what it evaluates (the command adapter's confirmation)
    asked = flagctl("--url", service.url, "get", "fast_path")
    assert (asked.returncode, asked.stdout) == (0, "fast\n"), asked.stderr


def test_flagctl_get_url_fails_clearly_without_a_service(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    result = flagctl("--url", closed, "get", "fast_path")
    assert result.returncode == 1 and f"GET {closed}/flags/fast_path" in result.stderr


def test_get_reports_what_is_evaluated_not_what_the_file_says(tmp_path):
    # A poll interval far longer than the test: the provider keeps what it loaded at start.
    service = start_fastpath(tmp_path, poll_ms=3_600_000)
    try:
        url = f"{service.url}/flags/fast_path"
        response = httpx.put(url, json={"variant": "fast"}, headers=service.auth, timeout=10)
        assert response.json() == {"variant": "legacy", "requested": "fast"}
        file_says = flagctl("--file", str(service.flags_file), "get", "fast_path")
        assert file_says.stdout.strip() == "fast"
        assert service.evaluated_variant() == "legacy"
    finally:
        service.stop()


def test_a_malformed_flag_file_stops_startup(tmp_path):
    flags = tmp_path / "flags.json"
    flags.write_text("{not json")
    with pytest.raises(RuntimeError, match="exited early"):
        start_fastpath(tmp_path, flags_file=flags)


def test_flagctl_get_and_set(tmp_path):
    flags = tmp_path / "flags.json"
    flags.write_text(
        json.dumps(
            {
                "$schema": "https://flagd.dev/schema/v0/flags.json",
                "flags": {
                    "fast_path": {
                        "state": "ENABLED",
                        "variants": {"legacy": "legacy", "fast": "fast"},
                        "defaultVariant": "legacy",
                    }
                },
            }
        )
    )
    get = flagctl("--file", str(flags), "get", "fast_path")
    assert (get.returncode, get.stdout) == (0, "legacy\n")
    put = flagctl("--file", str(flags), "set", "fast_path", "fast")
    assert (put.returncode, put.stdout) == (0, "fast\n")
    assert flagctl("--file", str(flags), "get", "fast_path").stdout == "fast\n"
    document = json.loads(flags.read_text())
    assert document["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    assert document["flags"]["fast_path"]["variants"] == {"legacy": "legacy", "fast": "fast"}
    assert list(tmp_path.iterdir()) == [flags]  # no temp file left behind

    unknown = flagctl("--file", str(flags), "set", "fast_path", "turbo")
    assert unknown.returncode == 1 and "unknown variant" in unknown.stderr
    assert flagctl("--file", str(flags), "get", "no_such_flag").returncode == 1
    assert flagctl("--file", str(tmp_path / "absent.json"), "get", "fast_path").returncode == 1
    no_file = subprocess.run(
        [sys.executable, str(FLAGCTL), "get", "fast_path"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if k != "FASTPATH_FLAGS_FILE"},
    )
    assert no_file.returncode == 2


def test_the_example_imports_nothing_of_execbench():
    ours = {"execbench", "service", "loadtests", "analysis", "dashboards", "reference", "tests"}
    for source in (REPO / "examples").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in ours, f"{source} imports {name}"


def test_the_service_imports_without_warnings():
    # In a child, not here: grpc (under the flagd provider) stays out of the test process, which
    # also imports locust's gevent patches and forks analysis readers.
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import examples.fastpath.app"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
