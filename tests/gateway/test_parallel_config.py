"""The executor's `parallel_config` switch (issue 13, Step 3): the three config reads one after
another (off) or at once (on), observed through the spans the executor records for them, never
through a duration; flipped at runtime through the audited admin API, like provider_skip."""

from __future__ import annotations

import itertools

import orjson
import pytest

from tests.service.conftest import AUTH, serving

pytestmark = pytest.mark.anyio
READS = ("user", "group", "symbol")


def overlapping(spans: dict) -> bool:
    """Every read started before any of them ended: they ran at once."""
    return max(spans[r][0] for r in READS) < min(spans[r][1] for r in READS)


def one_after_another(spans: dict) -> bool:
    ordered = [spans[r] for r in READS]
    return all(a[1] <= b[0] for a, b in itertools.pairwise(ordered))


async def flip(svc, mode: str, **headers):
    return await svc.client.put("/admin/flags/parallel_config", headers=headers,
                                json={"mode": mode, "reason": "step 3", "actor": "perf"})


@pytest.fixture
def profile(tmp_path):
    # a fixed config delay, so each parallel read also waits its share of it
    path = tmp_path / "config.toml"
    path.write_text('name = "config"\n[stages.config_fetch_ms]\np50 = 9.0\n')
    return str(path)


async def test_the_switch_makes_the_config_reads_concurrent(database_url, tmp_path, profile):
    log = tmp_path / "timings.jsonl"
    async with serving(database_url, profile=profile, timing_log=log) as svc:
        assert (await svc.client.get("/admin/flags")).json()["parallel_config"]["mode"] == "off"
        before = [(await svc.order(user_id=u, user_type=t)).json() for u, t in ((1, "live"), (2, "demo"))]
        assert (await flip(svc, "on", **AUTH)).json()["parallel_config"]["previous_mode"] == "off"
        after = [(await svc.order(user_id=u, user_type=t)).json() for u, t in ((3, "live"), (4, "demo"))]
        rejected = await svc.order(user_id=5, volume=900.0)  # insufficient margin, still recorded
        assert rejected.status_code == 409
    for body in before:
        assert body["flags"] == {"parallel_config": "off"}
        assert one_after_another(body["config_spans_ms"]) and not overlapping(body["config_spans_ms"])
    for body in after:
        assert body["flags"] == {"parallel_config": "on"}
        assert overlapping(body["config_spans_ms"]), body["config_spans_ms"]
    records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [r["flags"]["parallel_config"] for r in records] == ["off", "off", "on", "on", "on"]
    assert overlapping(records[-1]["config_spans_ms"]) and records[-1]["status"] == "rejected"
    assert [r["order_id"] for r in records[:4]] == [b["order_id"] for b in before + after]


async def test_the_switch_is_authenticated_validated_and_audited(sqlite_url):
    async with serving(sqlite_url) as svc:
        assert (await flip(svc, "on")).status_code == 401
        assert (await flip(svc, "on", Authorization="Bearer wrong")).status_code == 403
        invalid = await svc.client.put("/admin/flags/parallel_config", headers=AUTH,
                                       json={"mode": "fast", "reason": "x"})
        assert invalid.status_code == 422
        assert svc.services.switches.snapshot() == {"parallel_config": "off"}
        changed = await flip(svc, "on", **AUTH)
        assert changed.status_code == 200
        assert changed.json()["parallel_config"]["changed_by"] == "perf"
        assert (await svc.client.get("/admin/flags")).json()["parallel_config"]["mode"] == "on"
        entries = (await svc.client.get("/admin/flags/audit", headers=AUTH,
                                        params={"action": "changed"})).json()["entries"]
        assert [(e["flag"], e["old_value"], e["new_value"], e["actor"], e["reason"]) for e in entries] \
            == [("parallel_config", "off", "on", "perf", "step 3")]
        refused = (await svc.client.get("/admin/flags/audit", headers=AUTH,
                                        params={"action": "refused"})).json()["entries"]
        assert {e["http_status"] for e in refused} >= {401, 403, 422}


async def test_a_new_database_starts_with_the_configured_value(sqlite_url):
    async with serving(sqlite_url, parallel_config="on") as svc:
        body = (await svc.order(user_id=1)).json()
        assert body["flags"] == {"parallel_config": "on"} and overlapping(body["config_spans_ms"])
