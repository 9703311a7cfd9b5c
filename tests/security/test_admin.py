"""Attack 4: hostile clients of the admin API, against real `execbench serve` processes.

Before: `/admin/ledger` answered anyone (8 pollers tripled order p50 on PostgreSQL), every
refused call was one database write (a flood took SQLite order p99 from 206 to 960 ms),
wrong-token reads of the trail were not audited, 510 refusals pushed a real flip out of the
fixed 500-entry view, and 53 of 100 concurrent flips on PostgreSQL recorded a wrong old value.
"""

import itertools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.slow
NO_THROTTLE = {"EXECBENCH_ADMIN_REFUSAL_BURST": "1000000"}


def test_admin_reads_need_the_token(running_service):
    svc = running_service(seed_users=2)
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        for path in ("/admin/ledger", "/admin/ledger?by_mode=false", "/admin/provider", "/admin/flags/audit"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 403, path
            assert client.get(path, headers=svc.admin_headers).status_code == 200, path
        assert client.get("/admin/flags").status_code == 200  # the mode only, from memory (as /healthz)


def test_a_flood_of_refusals_is_audited_in_aggregate(running_service, database_url):
    # the per-source throttle (429) is another test's: here every refusal is a 401 or 403
    svc = running_service(database_url=database_url, seed_users=2, extra_env=NO_THROTTLE)
    tries = 300
    wrong = {"Authorization": "Bearer nope"}

    # one pooled client for the flood (httpx.Client is thread-safe): a new connection per
    # attempt cost this test most of its 30 s on a busy box, and the server sees the same calls
    flood = httpx.Client(base_url=svc.url, timeout=30,
                         limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))

    def attempt(i: int) -> int:
        if i % 3 == 0:
            return flood.put("/admin/flags/provider_skip", json={"mode": "skip", "reason": "x"}).status_code
        if i % 3 == 1:
            return flood.put("/admin/flags/provider_skip", headers=wrong,
                             json={"mode": "skip", "reason": "x"}).status_code
        return flood.get("/admin/ledger").status_code

    with flood, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(attempt, range(tries)))
    assert sorted(set(statuses)) == [401, 403], statuses
    with httpx.Client(base_url=svc.url, timeout=30, headers=svc.admin_headers) as client:
        flip = client.put("/admin/flags/provider_skip", json={"mode": "skip_reserve", "reason": "real"})
        assert flip.status_code == 200
        # 510 more refusals after the real flip
        with httpx.Client(base_url=svc.url, timeout=30, headers=wrong) as refused_client:
            for _ in range(510):
                assert refused_client.put("/admin/flags/provider_skip",
                                          json={"mode": "off", "reason": "x"}).status_code == 403
        refused = client.get("/admin/flags/audit", params={"action": "refused", "limit": 500}).json()["entries"]
        # every attempt counted, in a handful of rows (per source, endpoint, status and minute)
        assert sum(e["attempts"] for e in refused) == tries + 510
        # one row per (endpoint, status, source, minute): never one per attempt
        keys = [(e["flag"], e["http_status"], e["remote"], e["ts"][:16]) for e in refused]
        assert len(keys) == len(set(keys)), keys
        assert len(refused) < 30
        assert {e["flag"] for e in refused} == {"provider_skip", "ledger"}
        # the real flip is still in view, filtered or paged
        changed = client.get("/admin/flags/audit", params={"action": "changed"}).json()["entries"]
        assert [(e["old_value"], e["new_value"], e["reason"]) for e in changed[:1]] == [
            ("off", "skip_reserve", "real")]
        seen, before = [], None
        while True:
            page = client.get("/admin/flags/audit", params={"limit": 2, **({"before_id": before} if before else {})}).json()
            seen += page["entries"]
            if page["next_before_id"] is None:
                break
            before = page["next_before_id"]
        assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
        assert any(e["reason"] == "real" for e in seen)
        # an admin change refused for its body before any route saw it is in the trail too
        bad = client.put("/admin/flags/provider_skip", content='{"mode": "off", "reason": "\\ud800"}')
        assert bad.status_code == 422
        latest = client.get("/admin/flags/audit", params={"action": "refused", "limit": 1}).json()["entries"][0]
        assert latest["http_status"] == 422
    log = svc.log_path.read_text()
    assert "Traceback" not in log


def test_concurrent_flips_record_the_true_previous_mode(running_service, database_url):
    svc = running_service(database_url=database_url, seed_users=2)
    modes = ["skip", "off", "skip_reserve"]
    barrier = threading.Barrier(20)

    def flip(i: int) -> int:
        barrier.wait()
        return httpx.put(f"{svc.url}/admin/flags/provider_skip", headers=svc.admin_headers, timeout=30,
                         json={"mode": modes[i % 3], "reason": f"race {i}"}).status_code

    with ThreadPoolExecutor(20) as pool:
        assert set(pool.map(flip, range(20))) == {200}
    changed = httpx.get(f"{svc.url}/admin/flags/audit", headers=svc.admin_headers,
                        params={"action": "changed"}).json()["entries"]
    chain = list(reversed(changed))  # oldest first
    assert len(chain) == 20
    assert chain[0]["old_value"] == "off"
    for earlier, later in itertools.pairwise(chain):
        assert later["old_value"] == earlier["new_value"], (earlier, later)


def test_a_refused_flood_is_answered_by_the_gate_throttled_and_counted(running_service, database_url):
    """Unauthenticated admin calls are refused before the app (no body read, no database write
    per attempt), a source past its refusal budget gets 429 with Retry-After, and a caller with
    the token is never throttled, even from the flooding address."""
    burst = 40
    svc = running_service(database_url=database_url, seed_users=2, extra_env={
        "EXECBENCH_ADMIN_REFUSAL_BURST": str(burst), "EXECBENCH_ADMIN_REFUSALS_PER_S": "1",
        "EXECBENCH_ADMIN_REFUSAL_TARPIT_S": "0"})  # 429s at once: the tarpit is test_admin_gate's
    wrong = {"Authorization": "Bearer nope"}
    # refused before the body guard: a body over the 16 KiB limit is not even read (401, not 413)
    big = httpx.put(f"{svc.url}/admin/flags/provider_skip", content=b"x" * 20_000,
                    headers={"content-type": "application/json"}, timeout=30)
    assert big.status_code == 401 and big.headers["www-authenticate"] == "Bearer"
    statuses: Counter = Counter()
    retry_after: set = set()
    lock = threading.Lock()
    throttled, stop = threading.Event(), threading.Event()

    def flood(k: int) -> None:
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            i = k
            while not stop.is_set():
                if i % 3 == 0:
                    response = client.put("/admin/flags/provider_skip", json={"mode": "skip", "reason": "x"})
                elif i % 3 == 1:
                    response = client.put("/admin/flags/provider_skip", json={"mode": "skip", "reason": "x"},
                                          headers=wrong)
                else:
                    response = client.get("/admin/ledger", headers=wrong if i % 2 else None)
                i += 1
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 429:
                        retry_after.add(response.headers.get("retry-after"))
                        throttled.set()

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    try:
        assert throttled.wait(120), statuses  # the budget ran out
        # during the flood, from the same address: the token's calls are never throttled
        with httpx.Client(base_url=svc.url, timeout=30, headers=svc.admin_headers) as admin:
            flip = admin.put("/admin/flags/provider_skip", json={"mode": "skip_reserve", "reason": "in flood"})
            assert flip.status_code == 200, flip.text
            assert admin.get("/admin/ledger", params={"by_mode": "false"}).status_code == 200
            while sum(statuses.values()) < 600:  # and the flood goes on after the flip
                stop.wait(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(statuses) <= {401, 403, 429}, statuses
    assert statuses[401] + statuses[403] >= burst - 1 and statuses[429] > 0, statuses
    assert retry_after and all(value.isdigit() and int(value) >= 1 for value in retry_after), retry_after
    assert httpx.get(f"{svc.url}/admin/flags").json()["provider_skip"]["mode"] == "skip_reserve"
    with httpx.Client(base_url=svc.url, timeout=30, headers=svc.admin_headers) as admin:
        refused = admin.get("/admin/flags/audit", params={"action": "refused", "limit": 500}).json()["entries"]
        changed = admin.get("/admin/flags/audit", params={"action": "changed"}).json()["entries"]
    # every refusal (the 429s too) counted, in one row per (endpoint, status, source, minute)
    assert sum(e["attempts"] for e in refused) == sum(statuses.values()) + 1
    keys = [(e["flag"], e["http_status"], e["remote"], e["ts"][:16]) for e in refused]
    assert len(keys) == len(set(keys)), keys
    assert len(refused) < 30 and {e["http_status"] for e in refused} == {401, 403, 429}
    assert [e["reason"] for e in changed] == ["in flood"]
    assert "Traceback" not in svc.log_path.read_text()
