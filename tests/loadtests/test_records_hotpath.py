"""The generator's per-request path was made cheaper (issue 15 item 3) without changing what it
records: the same requests.jsonl bytes, the same `loadtest_` exposition, the same bounded pool
(now on reused greenlets)."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

import execbench.rundir as fmt
from loadtests.metrics import BUCKETS, LoadtestMetrics
from loadtests.records import encode_requests, iso, iso_us, micros, request_line
from tests.loadtests.util import ROOT


def _reference_line(rec: dict) -> bytes:
    """requests.jsonl's line as the record path wrote it before it was optimised (the spec)."""
    latency = rec["latency_ms"]
    out = {
        fmt.R_INTENDED_TS: iso(rec["intended"]),
        fmt.R_SENT_TS: iso(rec["sent"]),
        fmt.R_LATENCY_MS: None if latency is None else round(latency, 3),
        fmt.R_LATENCY_FROM_INTENDED_MS:
            None if latency is None else round(latency + (rec["sent"] - rec["intended"]) * 1000, 3),
        fmt.R_STATUS: rec["status"], fmt.R_OUTCOME: rec["outcome"], fmt.R_FLOW: rec["flow"],
        fmt.R_NAME: rec["name"], fmt.R_PHASE: rec["phase"], fmt.R_LATE: rec["late"],
        fmt.R_SERVED_MODE: rec.get("served_mode"),
    }
    if rec.get("reason"):
        out["reason"] = rec["reason"]
    if rec.get("censored"):
        out["censored"] = True
    if rec.get("prep_ms") is not None:
        out["prep_ms"] = round(rec["prep_ms"], 3)
    for key in ("burst", "worker", "client_order_id"):
        if rec.get(key) is not None:
            out[key] = rec[key]
    if rec.get("attempts", 1) > 1:
        out["attempts"] = rec["attempts"]
    if rec.get("replayed"):
        out["replayed"] = True
    if rec.get("server_metrics"):
        out[fmt.R_SERVER_METRICS] = {k: round(v, 3) for k, v in rec["server_metrics"].items()}
    return orjson.dumps(out) + b"\n"


def test_iso_from_cached_seconds_is_iso_to_the_character():
    rng = random.Random(15)
    values = [0.0, 0.9999995, 0.9999994, 1.0000005, 1_764_000_000.0, 1_764_000_000.9999996,
              1_764_000_000.0000005, 1_764_000_000.0000015, 2_000_000_000.5]
    values += [rng.uniform(0, 2e9) for _ in range(20_000)]
    values += [round(rng.uniform(1.7e9, 1.8e9), 6) + rng.choice((-5e-7, 5e-7, 0.0))
               for _ in range(20_000)]
    base = time.time()
    values += [base + i / 2000 for i in range(20_000)]
    for t in values:
        assert iso_us(micros(t)) == iso(t), repr(t)


def _random_record(rng: random.Random, t: float) -> dict:
    rec = {"intended": t, "sent": t + rng.choice((0.0, 0.0004, 0.02, 1.5)),
           "latency_ms": rng.choice((None, rng.random() * 100, 2.675, 0.0005)),
           "status": rng.choice((0, 200, 404, 409)),
           "outcome": rng.choice(("ok", "failure", "skipped", "expected_rejection")),
           "flow": rng.choice(("provider", "local", None)), "name": "order",
           "phase": rng.choice(("baseline", None)), "late": rng.random() < 0.3,
           "worker": rng.choice((None, "w-1"))}
    for key, value in (("served_mode", "skip"), ("reason", "HTTP 409"), ("reason", ""),
                       ("censored", True), ("prep_ms", 12.34567), ("burst", "b1"),
                       ("client_order_id", "c-1"), ("attempts", 2), ("attempts", 1),
                       ("replayed", True), ("replayed", False),
                       ("server_metrics", {"executor_ms": 1.23456}), ("server_metrics", {})):
        if rng.random() < 0.25:
            rec[key] = value
    return rec


def test_batched_encoding_writes_the_bytes_the_record_path_always_wrote():
    rng = random.Random(3)
    base = time.time()
    records = [_random_record(rng, base + i / 1000) for i in range(5000)]
    records += [_random_record(rng, rng.uniform(1e9, 2e9)) for _ in range(2000)]
    expected = [_reference_line(r) for r in records]
    assert [request_line(r) for r in records] == expected
    lines, columns = encode_requests(records, columns=True)
    assert lines == b"".join(expected)
    assert len(columns) == 20 and all(len(c) == len(records) for c in columns)


def _stock_metrics(records: list[dict]) -> bytes:
    """The per-request series as prometheus_client's own Histogram and Counter made them."""
    r = CollectorRegistry()
    duration = Histogram("loadtest_request_duration_seconds",
                         "Client latency from the actual send, by request name and flow",
                         ["name", "flow"], buckets=BUCKETS, registry=r)
    intended = Histogram("loadtest_request_duration_from_intended_seconds",
                         "Client latency from the intended send time (open model)",
                         ["name", "flow"], buckets=BUCKETS, registry=r)
    requests = Counter("loadtest_requests",
                       "Requests by name, flow and outcome (ok, expected_rejection, failure)",
                       ["name", "flow", "outcome"], registry=r)
    failures = Counter("loadtest_failures", "Failed requests by name and flow",
                       ["name", "flow"], registry=r)
    late = Counter("loadtest_late_sends",
                   "Arrivals sent later than load.late_ms after their intended time", registry=r)
    for rec in records:
        if rec["outcome"] == "skipped":
            continue
        name, flow = rec["name"], rec["flow"]
        duration.labels(name, flow).observe(rec["latency_ms"] / 1000)
        intended.labels(name, flow).observe(rec["latency_ms"] / 1000 + (rec["sent"] - rec["intended"]))
        requests.labels(name, flow, rec["outcome"]).inc()
        if rec["outcome"] == "failure":
            failures.labels(name, flow).inc()
        if rec["late"]:
            late.inc()
    return generate_latest(r)


def test_request_metrics_expose_what_the_stock_client_exposed():
    rng = random.Random(7)
    records = []
    for i in range(5000):
        t = 1.7e9 + i / 1000
        records.append({
            "intended": t, "sent": t + rng.choice((0.0, 0.0004, 0.02, 3.0)),
            "latency_ms": rng.choice((0.1, 5.0, 10.0, 77.7, 20_000.0, rng.random() * 400)),
            "status": 200, "outcome": rng.choice(("ok", "failure", "skipped", "expected_rejection")),
            "flow": rng.choice(("provider", "local", None)), "name": rng.choice(("order", "x")),
            "late": rng.random() < 0.2, "phase": "p"})
    ours = LoadtestMetrics()
    for i in range(0, len(records), 7):
        ours.observe(records[i:i + 7])

    families = ("loadtest_request", "loadtest_failures", "loadtest_late")

    def series(text: bytes) -> list[str]:
        # the per-request families, every sample but the `_created` values (clock readings)
        out = []
        for line in text.decode().splitlines():
            if re.sub(r"^# (HELP|TYPE) ", "", line).startswith(families):
                out.append(re.sub(r" \S+$", "", line) if "_created" in line else line)
        return sorted(out)

    stock = series(_stock_metrics(records))
    mine = series(generate_latest(ours.registry))
    assert len(stock) > 500
    assert mine == stock


POOL_SCRIPT = r"""
import gevent
from loadtests.arrival import ArrivalPool

pool = ArrivalPool(3)
peak, done, workers = [0], [], set()

def arrival(i):
    workers.add(id(gevent.getcurrent()))
    peak[0] = max(peak[0], pool.inflight)
    gevent.sleep(0.01)
    if i == 5:
        raise ValueError("a scenario bug")  # the slot is freed all the same
    done.append(i)

for i in range(12):
    pool.wait_available()
    assert pool.free_count() >= 1
    pool.spawn(arrival, i)
assert pool.join(timeout=5)
assert pool.inflight == 0 and pool.free_count() == 3
assert peak[0] == 3, peak
assert sorted(done) == [i for i in range(12) if i != 5], done
assert len(workers) == 3, workers  # the greenlets are reused, one per slot
pool.spawn(gevent.sleep, 1)
assert not pool.join(timeout=0.05)  # still in flight
print("ok")
"""


def test_the_arrival_pool_bounds_in_flight_arrivals_and_joins():
    # in a subprocess: loadtests.arrival imports Locust, whose gevent patching stays out of pytest
    result = subprocess.run([sys.executable, "-c", POOL_SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), \
        result.stdout + result.stderr
