"""Ingest: columns equal a plain orjson reading; malformed lines counted with their numbers."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import orjson
import pytest

from analysis import ingest
from analysis.ingest import METRICS, parse_times, read_requests, read_timeline, read_timings
from analysis.synthetic import RunSpec, write_log, write_run


def reference_columns(path):
    recs = [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
    return recs


def test_columns_match_a_plain_reading(tmp_path):
    run = write_run(tmp_path / "run", RunSpec(records=3000, seed=5))
    t = read_timings(run / "timings.jsonl", workers=1)
    recs = reference_columns(run / "timings.jsonl")
    assert t.n == len(recs) == 3000
    assert t.malformed.count == 0
    for k in METRICS:
        assert np.array_equal(t.floats[k], [r["durations_ms"][k] for r in recs])
    assert list(t.values("flow")) == [r["flow"] for r in recs]
    assert list(t.values("mode")) == [r["mode"] for r in recs]
    assert list(t.values("status")) == [r["status"] for r in recs]
    expect = [datetime.fromisoformat(r["ts"]).timestamp() for r in recs]
    assert np.allclose(t.times["ts"], expect, rtol=0, atol=1e-6)


def test_malformed_lines_are_counted_with_line_numbers(tmp_path):
    good = orjson.dumps({"ts": "2026-11-25T12:00:00.000001Z", "status": "success",
                         "flow": "provider", "mode": "off",
                         "durations_ms": {"executor_ms": 250.5, "persist_ms": 3}})
    bad = {
        2: b'{"ts": "2026-11-25T12:00:01Z", "status": "success", "flow"',  # truncated
        4: b"[1, 2, 3]",  # not an object
        5: b'{"status": "success", "flow": "local", "durations_ms": {"executor_ms": "12"}}',
        7: b'{"ts": "yesterday", "status": "success", "flow": "local", '
           b'"durations_ms": {"executor_ms": 1}}',
        8: b'{"ts": "2026-11-25T12:00:00Z", "status": "success", "flow": "local"}',
        9: b'{"ts": "2026-11-25T12:00:00Z", "status": "success", "flow": "local", '
           b'"durations_ms": {"executor_ms": -3}}',
        10: b'{"ts": "2026-11-25T12:00:00Z", "status": 7, "flow": "local", '
            b'"durations_ms": {"executor_ms": 3}}',
        11: b"not json at all",
    }
    lines = []
    for i in range(1, 15):
        lines.append(bad.get(i, good))
    lines.insert(11, b"")  # a blank line (line 12) is skipped, not malformed
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(lines))  # and no trailing newline
    t = read_timings(path, workers=1)
    assert t.malformed.count == len(bad)
    assert [n for n, _ in t.malformed.examples] == sorted(bad)
    reasons = dict(t.malformed.examples)
    assert "invalid JSON" in reasons[2]
    assert "not a JSON object" in reasons[4]
    assert "executor_ms" in reasons[5]
    assert "ISO-8601" in reasons[7]
    assert t.n == 15 - len(bad) - 1
    assert t.blank_lines == 1
    assert np.all(t.floats["executor_ms"] == 250.5)
    assert np.all(np.isnan(t.floats["config_fetch_ms"]))  # stage absent -> NaN
    assert np.all(t.floats["persist_ms"] == 3.0)


def test_a_bad_line_in_a_big_chunk_keeps_the_rest(tmp_path):
    run = write_run(tmp_path / "run", RunSpec(records=5000, seed=2, malformed_lines=3))
    t = read_timings(run / "timings.jsonl", workers=1)
    assert t.n == 5000
    assert t.malformed.count == 3
    assert [n for n, _ in t.malformed.examples] == [5001, 5002, 5003]


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_parallel_ranges_equal_serial(tmp_path, workers, monkeypatch):
    run = write_run(tmp_path / "run", RunSpec(records=4000, seed=9, malformed_lines=2))
    monkeypatch.setattr(ingest, "BLOCK_BYTES", 4096)  # many blocks and ranges
    serial = read_timings(run / "timings.jsonl", workers=1)
    par = read_timings(run / "timings.jsonl", workers=workers)
    assert par.n == serial.n
    for k in METRICS:
        assert np.array_equal(par.floats[k], serial.floats[k])
    for k in serial.cats:
        assert list(par.values(k)) == list(serial.values(k))
    assert np.array_equal(par.times["ts"], serial.times["ts"])
    assert par.malformed.examples == serial.malformed.examples
    assert par.lines_read == serial.lines_read


def test_requests_and_timeline(tmp_path):
    run = write_run(tmp_path / "run", RunSpec(records=1000))
    r = read_requests(run / "requests.jsonl")
    assert r.n == 1000 and r.malformed.count == 0
    assert set(r.levels["phase"]) == {"warmup", "baseline", "optimized", "rollback"}
    events, bad = read_timeline(run / "timeline.jsonl")
    assert bad.count == 0
    assert [e["event"] for e in events].count("flip_applied") == 2


def test_late_flag_is_read_and_an_odd_value_is_unknown_not_malformed(tmp_path):
    base = {"latency_ms": 5.0, "latency_from_intended_ms": 6.0, "status": 200, "outcome": "ok",
            "flow": "local", "phase": "baseline"}
    lates = [True, False, None, "yes", 1]
    regular = tmp_path / "regular.jsonl"  # booleans only: the fast path
    regular.write_bytes(b"".join(orjson.dumps({**base, "late": v}) + b"\n" for v in lates[:2]))
    odd = tmp_path / "odd.jsonl"  # absent and odd values: the record by record path
    odd.write_bytes(b"".join(orjson.dumps({**base, **({} if v is None else {"late": v})}) + b"\n"
                             for v in lates) + b"not json\n")
    r = read_requests(regular, workers=1)
    assert r.floats["late"].tolist() == [1.0, 0.0]
    r = read_requests(odd, workers=1)
    assert r.n == 5 and r.malformed.count == 1
    assert r.floats["late"][:2].tolist() == [1.0, 0.0] and np.isnan(r.floats["late"][2:]).all()


def test_time_formats():
    got = parse_times(["2026-11-25T12:00:00.123456Z", "2026-11-25T12:00:00+00:00",
                       "2026-11-25T12:00:00", "2026-11-25T12:00:00.5"])
    base = datetime.fromisoformat("2026-11-25T12:00:00+00:00").timestamp()
    assert np.allclose(got, [base + 0.123456, base, base, base + 0.5], atol=1e-6, rtol=0)
    # another offset goes through the exact path
    got = parse_times(["2026-11-25T14:00:00+02:00", "2026-11-25T12:00:00Z"])
    assert got[0] == got[1] == base
    assert math.isnan(parse_times([None, "2026-11-25T12:00:00Z"])[0])
    # epoch numbers (seconds, or milliseconds) as some production logs write them
    assert list(parse_times([base, base * 1000, "2026-11-25T12:00:00Z"])) == [base] * 3
    with pytest.raises(ValueError):
        parse_times(["2026-13-45T12:00:00Z"])


def test_seed_format_log(tmp_path):
    path = write_log(tmp_path / "prod.jsonl", records=500, split=1.8e9, span_s=100)
    t = read_timings(path)
    assert t.n == 500
    assert t.levels["mode"] == [] and np.all(t.cats["mode"] == -1)


from hypothesis import given, settings
from hypothesis import strategies as st

GOOD = orjson.dumps({"ts": "2026-11-25T12:00:00.5Z", "status": "success", "flow": "local",
                     "mode": "skip", "durations_ms": {"executor_ms": 12.5}})


def _mangle(line: bytes, how: int, at: int) -> bytes:
    if how == 0:
        return line
    if how == 1:
        return line[: at % len(line)]  # truncated
    if how == 2:
        return line.replace(b"12.5", b'"12.5"')  # a number as a string
    if how == 3:
        return line.replace(b"success", b"\xff\xfe")  # invalid UTF-8
    if how == 4:
        return line.replace(b'"mode":"skip"', b'"mode":7')
    return b"   "  # blank


# derandomized: the same examples on every run (see test_stats.py)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 200)), min_size=1, max_size=80),
       st.integers(1, 3))
@settings(max_examples=60, deadline=None, derandomize=True)
def test_any_mix_of_good_and_bad_lines_is_accounted_for(tmp_path_factory, plan, workers):
    lines = [_mangle(GOOD, how, at) for how, at in plan]
    path = tmp_path_factory.mktemp("fuzz") / "t.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    t = read_timings(path, workers=workers)
    blank = sum(1 for ln in lines if not ln.strip())
    good = sum(1 for ln in lines if ln == GOOD)
    assert t.n == good
    assert t.n + t.malformed.count + t.blank_lines == len(lines)
    assert t.blank_lines == blank
    bad_numbers = [n for n, _ in t.malformed.examples]
    assert bad_numbers == [i + 1 for i, ln in enumerate(lines) if ln.strip() and ln != GOOD]
