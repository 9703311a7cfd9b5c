"""requests.parquet (loadtests/columnar.py): the same records as requests.jsonl, value for value,
written in closed batches during the run, and a run killed with SIGKILL keeps every closed batch
readable."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pyarrow.parquet as pq

from loadtests.columnar import COLUMN_NAMES, REQUESTS_PARQUET, read_parquet
from loadtests.records import RunWriter
from tests.loadtests.util import ROOT, cli_env, popen
from tests.support import free_port

# The generic HTTP target against the benchmark's trivial server: answers 200 for the order,
# 404 for the rest (a failure, or an expected rejection where `rejected_status` says so).
SPEC = """
name = "columnar"
modes = ["off"]

[target]
health = "/healthz"

[[target.requests]]
name = "order"
flow = "provider"
method = "POST"
path = "/api/orders/instant/execute"
json = { user_type = "live", volume = 0.01 }

[[target.requests]]
name = "missing"
path = "/nowhere"

[[target.requests]]
name = "refused"
path = "/refused"
rejected_status = [404]

[load]
arrival = "poisson"
rate = 1.0
drain_s = 0.5

[[phases]]
name = "a"
duration_s = 1
mode = "off"
rate = 150

[[phases]]
name = "b"
duration_s = DURATION
mode = "off"
rate = 150
"""


def _json_lines(run_dir: Path) -> list[dict]:
    return [orjson.loads(line) for line in (run_dir / "requests.jsonl").read_bytes().splitlines()]


def _assert_same(rows: list[dict], lines: list[dict]) -> None:
    """Parquet rows == JSON lines: every key of a line is its column's value (times to the
    microsecond, as the lines' ISO text), every key a line lacks is null."""
    assert len(rows) == len(lines)
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        assert set(line) <= set(COLUMN_NAMES), line
        for name in COLUMN_NAMES:
            value = row[name]
            if isinstance(value, dt.datetime):
                value = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            elif name == "server_metrics" and value is not None:
                value = dict(value)
            assert value == line.get(name), (i, name, value, line.get(name))


def _record(i: int, t0: float, **extra) -> dict:
    return {"intended": t0 + i / 100, "sent": t0 + i / 100 + 0.000731, "latency_ms": 1.23456 + i,
            "status": 200, "outcome": "ok", "flow": "provider", "name": "order", "phase": "p",
            "late": False, "worker": None, "served_mode": "skip", **extra}


def test_every_kind_of_record_is_the_same_in_parquet_and_json(tmp_path):
    t0 = 1_764_000_000.123456
    records = [
        _record(0, t0),
        _record(1, t0, outcome="failure", status=0, censored=True, reason="no response"),
        _record(2, t0, outcome="expected_rejection", status=409, reason="HTTP 409",
                server_metrics={"executor_ms": 3.14159, "db_ms": 0.5}),
        _record(3, t0, outcome="skipped", status=0, latency_ms=None, reason="no_account",
                flow=None, served_mode=None),
        _record(4, t0, prep_ms=12.34567, burst="b1", client_order_id="c-1", attempts=3,
                replayed=True, worker="w-1"),
        _record(5, t0, attempts=1, replayed=False, reason="", server_metrics={}),
        _record(6, t0, phase=None, late=True),
    ]
    writer = RunWriter(tmp_path, columnar=True)
    for rec in records:
        writer.add_requests([rec])
    writer.close()
    _assert_same(read_parquet(tmp_path).to_pylist(), _json_lines(tmp_path))


def test_batches_are_closed_by_rows_and_by_time(tmp_path):
    now = [0.0]
    writer = RunWriter(tmp_path, columnar=True)
    writer.BATCH_S = 1e9  # JSON batches by count only (256 records): chunks of 256 rows
    columnar = writer.columnar
    columnar.batch_rows, columnar.batch_s = 500, 5.0
    columnar._clock, columnar._opened = (lambda: now[0]), 0.0
    t0 = time.time()
    for i in range(1200):  # a part closes at the first chunk that brings it to >= 500 rows
        writer.add_requests([_record(i, t0)])
    writer.flush()  # the last 176 records: a chunk, and flush closes the part
    columnar.close()  # waits for the writer thread
    parts = sorted((tmp_path / REQUESTS_PARQUET).glob("part-*.parquet"))
    assert [pq.read_table(p).num_rows for p in parts] == [512, 512, 176]
    writer.add_requests([_record(2000, t0)])
    writer.flush()
    assert len(list((tmp_path / REQUESTS_PARQUET).glob("part-*.parquet"))) == 4
    now[0] = 10.0  # an open batch older than batch_s closes at the next chunk, however small
    writer.BATCH_RECORDS = 1
    writer.add_requests([_record(2001, t0)])
    columnar.close()
    assert len(list((tmp_path / REQUESTS_PARQUET).glob("part-*.parquet"))) == 5
    writer.close()
    _assert_same(read_parquet(tmp_path).to_pylist(), _json_lines(tmp_path))


def test_a_run_writes_parquet_equal_to_its_json_lines_and_a_killed_run_keeps_closed_batches(
        tmp_path):
    port = free_port()
    target = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "loadgen_bench.py"),
                               "serve-trivial", "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        env = cli_env(EXECBENCH_PARQUET_BATCH_S="0.5")

        # 1. a whole (short) run: Parquet rows == JSON lines, every outcome present
        short = tmp_path / "short.toml"
        short.write_text(SPEC.replace("DURATION", "1"))
        spec = tmp_path / "long.toml"
        spec.write_text(SPEC.replace("DURATION", "60"))
        done = tmp_path / "done"
        proc = popen("run", short, "--target", url, "--run-dir", done, "--no-table", env=env)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        lines = _json_lines(done)
        assert {line["outcome"] for line in lines} == {"ok", "failure", "expected_rejection"}
        assert len(list((done / REQUESTS_PARQUET).glob("*.parquet"))) >= 2
        assert not list((done / REQUESTS_PARQUET).glob("*.tmp"))
        _assert_same(read_parquet(done).to_pylist(), lines)

        # 2. SIGKILL mid-run: every closed part is a whole Parquet file, and its rows are the
        # first JSON lines, in order
        killed = tmp_path / "killed"
        proc = popen("run", spec, "--target", url, "--run-dir", killed, "--no-table", env=env)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and \
                    len(list((killed / REQUESTS_PARQUET).glob("part-*.parquet"))) < 3:
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()[0]
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        parts = sorted((killed / REQUESTS_PARQUET).glob("part-*.parquet"))
        assert len(parts) >= 3
        rows = [row for part in parts for row in pq.read_table(part).to_pylist()]
        lines = _json_lines(killed)
        assert len(lines) >= len(rows) > 0
        _assert_same(rows, lines[:len(rows)])
    finally:
        target.kill()
        target.wait(timeout=10)


def test_records_are_encoded_in_slices_and_written_in_batches(tmp_path, monkeypatch):
    """add_requests runs on the event loop: no call encodes more than SLICE_RECORDS records,
    the file gets one write per BATCH_RECORDS, the Arrow conversion is one call per batch,
    and the bytes are encode_requests' for the same records."""
    import loadtests.records as records_mod

    t0 = time.time()
    recs = [_record(i, t0) for i in range(600)]
    expected = records_mod.encode_requests(recs)[0]
    first_batch = records_mod.encode_requests(recs[:256])[0]
    slices: list[int] = []
    real = records_mod.encode_into
    monkeypatch.setattr(records_mod, "encode_into",
                        lambda recs, parts, rows: (slices.append(len(recs)), real(recs, parts, rows)))
    writer = RunWriter(tmp_path, columnar=True)
    writer.BATCH_S = 1e9  # by count only
    chunks: list[int] = []
    add = writer.columnar.add
    writer.columnar.add = lambda cols: (chunks.append(len(cols[0])), add(cols))
    path = tmp_path / "requests.jsonl"
    for i, rec in enumerate(recs[:255]):
        writer.add_requests([rec])
        assert len(slices) == (i + 1) // 32  # a slice at every 32nd record, nothing between
    assert path.stat().st_size == 0  # encoded, not yet written
    writer.add_requests([recs[255]])
    assert slices == [32] * 8 and chunks == [256]
    assert path.read_bytes() == first_batch
    for rec in recs[256:]:
        writer.add_requests([rec])
    assert max(slices) == 32 and chunks == [256, 256]
    writer.close()
    assert max(slices) == 32 and chunks == [256, 256, 88]
    assert path.read_bytes() == expected
    _assert_same(read_parquet(tmp_path).to_pylist(), _json_lines(tmp_path))
