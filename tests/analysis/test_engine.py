"""The DuckDB engine (analysis/engine.py) against the Python reader (analysis/ingest.read_log)
on the same small logs: every line classified alike (malformed lines, selections, timestamp
forms, gzip, two files, Parquet), the same summary.json from `analyze-log` either way; the SQL
statistics against stats.describe and numpy; and the query docs/analysis.md shows for Parquet
beyond one machine, run as written on a partitioned data set."""

from __future__ import annotations

import dataclasses
import gzip
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from analysis import engine, ingest, stats
from analysis.api import analyze_log, log_selection
from tests.analysis.test_analyze_log import SPLIT_ISO, mixed_log
from tests.analysis.util import quiet

ROOT = Path(__file__).resolve().parents[2]

ODD_LINES = [
    ('{"ts":"2026-11-25T12:00:00.002655Z","component":"python_api","endpoint":'
    '"orders/instant/execute","status":"success","flow":"provider","mode":"off",'
    '"durations_ms":{"executor_ms":263.439,"config_fetch_ms":19.067}}'),
    "", "   ", "not json", "[1,2]", "5", '{"a":1} x',
    ('{"ts":"2026-11-25T12:00:01Z","component":"other","status":"success","flow":"local",'
    '"durations_ms":{"executor_ms":1}}'),
    ('{"ts":"2026-11-25T12:00:01Z","endpoint":"x","status":"success","flow":"local",'
    '"durations_ms":{"executor_ms":1}}'),
    '{"ts":"2026-11-25T12:00:02","status":"success","flow":"local","durations_ms":{"executor_ms":2.5}}',
    '{"ts":1795608003,"status":"success","flow":3,"durations_ms":{"executor_ms":2.5}}',
    '{"ts":1795608003500,"status":"success","flow":"local","executor_ms":7}',
    '{"ts":"1795608004.25","status":"success","flow":"local","executor_ms":7, "mode":"skip"}',
    '{"ts":"2026-11-25T13:00:05+01:00","status":"error","flow":"local","executor_ms":7}',
    '{"ts":"2026-11-25T12:00:05.1+0100","status":"success","flow":"local","executor_ms":8}',
    '{"ts":"yesterday","status":"success","flow":"local","executor_ms":8}',
    '{"ts":true,"status":"success","flow":"local","executor_ms":8}',
    '{"status":"success","flow":"local","executor_ms":8}',
    '{"timestamp":"2026-11-25T12:00:06Z","status":"success","flow":"local","executor_ms":-1}',
    '{"time":"2026-11-25T12:00:06Z","status":"success","flow":"local","executor_ms":"9"}',
    '{"@timestamp":"2026-11-25T12:00:06Z","status":"success","flow":"local"}',
    '{"ts":"2026-11-25T12:00:07Z","status":1,"flow":"local","executor_ms":3}',
    '{"ts":"2026-11-25T12:00:07Z","flow":"local","executor_ms":3}',
    '{"ts":"2026-11-25T12:00:07Z","status":"success","flow":null,"executor_ms":3}',
    '{"ts":"2026-11-25T12:00:07Z","status":"success","flow":true,"executor_ms":3}',
    ('{"ts":"2026-11-25T12:00:08Z","status":"success","flow":"provider",'
    '"durations_ms":{"executor_ms":null},"executor_ms":3}'),
    ('{"ts":"2026-11-25T12:00:08Z","status":"success","flow":"provider","durations_ms":[1],'
    '"executor_ms":3,"code":200,"cached":true}'),
    ('{"ts":"2026-11-25T12:00:09Z","status":"success","flow":"provider","durations_ms":'
    '{"executor_ms":5,"persist_ms":-2,"provider_send_ms":"x"},"code":200.5}'),
    '{"ts":"2026-13-45T12:00:09Z","status":"success","flow":"provider","executor_ms":5}',
    '{"ts":"2026-11-25T24:00:00Z","status":"success","flow":"provider","executor_ms":5}',
    '{"ts":"2026-11-25T12:00:10.1234567Z","status":"success","flow":"provider","executor_ms":5}',
    ('{"ts":"2026-11-25 12:00:11","status":"success","flow":"provider","executor_ms":5e2,'
    '"code":"200"}'),
    ('{"ts":"2026-11-25T12:00:12Z","status":"success","flow":"provider","executor_ms":5,'
    '"component":5}'),
    ('{"ts":"2026-11-25T12:00:13Z","status":"success","flow":"provider","executor_ms":5,'
    '"component":null}'),
    ('{"ts":"2026-11-25T12:00:14Z","status":"success","flow":"a\\"b\\u00e9","executor_ms":5,'
    '"mode":7}'),
    '{"ts":"NaN","status":"success","flow":"provider","executor_ms":5}',
    '  {"ts":"2026-11-25T12:00:15Z","status":"success","flow":"provider","executor_ms":5}  ',
    '{"ts":"2026-11-25T12:00:16Z","status":"success","flow":"provider","executor_ms":5}\r',
]

SELECTIONS = [
    log_selection(), log_selection(component="*", endpoint="*"),
    log_selection(component="python_api"), log_selection(endpoint="x"),
    log_selection(where=["code=200"]), log_selection(where=["code=200.5"]),
    log_selection(where=["cached=true", "code=200"]), log_selection(ts_field="time"),
    log_selection(metric="persist_ms"), log_selection(flow_field="mode"),
]


def _read(read: ingest.LogRead) -> dict:
    t = read.table

    def arr(a):
        return [None if np.isnan(x) else float(x) for x in a]

    return {"excluded": read.excluded, "examples": read.examples, "ts_fields": read.ts_fields,
            "files": read.files, "n": t.n, "malformed": t.malformed.as_dict(),
            "lines": t.lines_read, "blank": t.blank_lines, "levels": t.levels,
            "file_index": read.file_index.tolist(),
            "cats": {k: v.tolist() for k, v in t.cats.items()}, "ts": arr(t.times["ts"]),
            "floats": {k: arr(v) for k, v in t.floats.items()}}


def _same(paths, sel) -> None:
    py, db = _read(ingest.read_log(paths, sel)), _read(engine.read_log(paths, sel))
    assert py.keys() == db.keys()
    for k in py:
        assert db[k] == py[k], (k, sel)


@pytest.fixture
def odd_logs(tmp_path):
    p = tmp_path / "odd.jsonl"
    p.write_text("\n".join(ODD_LINES) + "\n")
    g = tmp_path / "odd.jsonl.gz"
    g.write_bytes(gzip.compress(p.read_bytes()))
    return p, g


@pytest.mark.parametrize("sel", SELECTIONS, ids=range(len(SELECTIONS)))
@pytest.mark.parametrize("need_ts", [True, False])
def test_every_line_classified_alike(odd_logs, sel, need_ts):
    p, g = odd_logs
    sel = dataclasses.replace(sel, need_ts=need_ts)
    for paths in ([p], [g], [p, g]):
        _same(paths, sel)


def test_the_odd_log_exercises_every_reason_and_python_decisions(odd_logs):
    """Not a vacuous comparison: the log holds every kind of line, and lines SQL hands to
    Python (a numeric flow, an offset without a colon, seven fraction digits)."""
    read = engine.read_log([odd_logs[0]], log_selection())
    explicit = engine.read_log([odd_logs[0]], log_selection(component="python_api"))
    assert set(read.excluded) | set(explicit.excluded) >= {
        "blank_line", "bad_json", "not_an_object", "no_component", "other_component",
        "other_endpoint", "no_flow", "no_status", "no_metric", "no_timestamp", "bad_timestamp"}
    assert read.table.n > 0
    everything = engine.read_log([odd_logs[0]], log_selection(component="*", endpoint="*"))
    assert "3" in everything.table.levels["flow"]  # the numeric flow, as Python writes it
    assert read.table.malformed.examples[0] == (4, ("invalid JSON (invalid literal, expected "
                                                   "'null')"))


# lines the fast read (read_json, typed columns) takes as the slow one would: JSON objects,
# none of them left to Python (a numeric flow, an odd time form, a null metric in durations)
_PY_LINES = ('"flow":3', "+0100", "T24:00", "yesterday", "1234567Z", '"NaN"', '"executor_ms":null',
             '"durations_ms":[1]')
FAST_LINES = [ln for ln in ODD_LINES if ln.strip().startswith("{") and ln.strip() != '{"a":1} x'
              and not any(m in ln for m in _PY_LINES)]
REFUSED_LINES = ["", "   ", "not json", "[1,2]", "5", '{"a":1} x',
                 '{"status":"success","status":"error","flow":"x","executor_ms":1}',
                 *(ln for ln in ODD_LINES if any(m in ln for m in _PY_LINES))]


def _fast(paths, sel) -> bool:
    keys = tuple(dict.fromkeys((sel.metric, *engine.METRICS)))
    return engine._read_fast(engine.connect(), [Path(p) for p in paths], sel, keys)


@pytest.mark.parametrize("ending", ["\n", "\r\n", "none"])
def test_the_fast_read_equals_the_line_by_line_one(tmp_path, ending):
    """A log whose every line is a JSON object is read by read_json with typed columns and
    gives what the Python reader gives, for every selection; CRLF line ends and a last line
    without its newline too."""
    p = tmp_path / "clean.jsonl"
    sep = "\n" if ending == "none" else ending
    lines = FAST_LINES if ending == "\n" else [ln.rstrip("\r") for ln in FAST_LINES]
    p.write_bytes((sep.join(lines) + ("" if ending == "none" else sep)).encode())
    assert _fast([p], log_selection())
    assert _fast([p, p], log_selection(component="python_api", where=["code=200"]))
    for sel in SELECTIONS:
        for need_ts in (True, False):
            _same([p], dataclasses.replace(sel, need_ts=need_ts))
    _same([p, p], dataclasses.replace(log_selection(), need_ts=False))


@pytest.mark.parametrize("bad", range(len(REFUSED_LINES)))
def test_the_fast_read_gives_way_to_the_line_by_line_one(tmp_path, bad):
    """One line read_json refuses, or one whose reading may hang on a JSON null or is
    Python's to decide: the slow read, line for line as the Python reader."""
    p = tmp_path / "one-odd.jsonl"
    p.write_bytes(("\n".join(FAST_LINES[:5] + [REFUSED_LINES[bad]] + FAST_LINES[5:]) + "\n")
                  .encode())
    sel = log_selection(component="*", endpoint="*")
    assert not _fast([p], sel)
    _same([p], sel)
    _same([p], log_selection())


def test_lines_counted_as_the_slow_read_counts_them(tmp_path):
    p = tmp_path / "x.jsonl"
    for data, n in ((b"", 0), (b"{}", 1), (b"{}\n", 1), (b"{}\r\n{}", 2), (b"\n\n", 2),
                    (b"{}\r{}\n", None), (b"{}\r", None)):
        p.write_bytes(data)
        assert engine.count_lines(p) == n, data


def test_a_null_where_value_matches_only_a_null(tmp_path):
    """`--where x=null`: a null matches, an absent field does not (read_json reads both as
    absent, so the fast read gives way)."""
    p = tmp_path / "null.jsonl"
    p.write_text("".join(f'{{"ts":"2026-11-25T12:00:0{i}Z","status":"success","flow":"a",'
                         f'"executor_ms":{i}{x}}}\n'
                         for i, x in enumerate(["", ',"x":null', ',"x":"null"'])))
    sel = log_selection(where=["x=null"])
    assert not _fast([p], sel)
    _same([p], sel)
    assert engine.read_log([p], sel).table.n == 2


def test_a_mixed_log_and_its_gzip(tmp_path):
    path, _, _ = mixed_log(tmp_path / "app.log")
    gz = tmp_path / "app.log.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    for sel in (log_selection(), log_selection(where=["status=success"]),
                log_selection(component="*", endpoint="*")):
        _same([path], sel)
        _same([gz], sel)
    _same([path, gz], dataclasses.replace(log_selection(), need_ts=False))


def _summary(path: Path, out: Path, monkeypatch, engine_name: str, **kw) -> dict:
    monkeypatch.setenv(engine.ENGINE_ENV, engine_name)
    rc = analyze_log(path, SPLIT_ISO, out_dir=out, console=quiet(), **kw)
    s = orjson.loads((out / "summary.json").read_bytes())
    s.pop("generated_at")
    return rc, s


def test_analyze_log_the_same_summary_either_engine(tmp_path, monkeypatch):
    path, _, _ = mixed_log(tmp_path / "app.log")
    for kw in ({}, {"where": ["status=success"]}):
        rc_py, py = _summary(path, tmp_path / "py", monkeypatch, "python", **kw)
        rc_db, db = _summary(path, tmp_path / "db", monkeypatch, "duckdb", **kw)
        assert db["log"].pop("engine") == "duckdb" and py["log"].pop("engine") == "python"
        assert rc_db == rc_py
        assert db == py


def test_parquet_records_read_like_their_json_lines(tmp_path):
    """The same records as Parquet (durations_ms a struct, some stages null) and as JSON lines:
    the same records, times and values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(6)
    recs = []
    for i in range(500):
        d = {"executor_ms": float(np.round(rng.lognormal(5, 0.3), 3)),
             "persist_ms": float(np.round(rng.uniform(1, 9), 3)) if i % 3 else None}
        recs.append({"ts": f"2026-11-25T11:{50 + i // 50:02d}:{i % 50:02d}.{i:06d}Z",
                     "component": "python_api", "status": "success" if i % 17 else "error",
                     "flow": "provider" if i % 2 else "local", "mode": "off",
                     "durations_ms": d})
    jl = tmp_path / "app.jsonl"
    jl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "app.parquet")
    sel = log_selection()
    want, got = _read(ingest.read_log([jl], sel)), _read(engine.read_log([tmp_path / "app.parquet"], sel))
    for k in ("n", "ts", "floats", "levels", "cats", "excluded", "ts_fields"):
        assert got[k] == want[k], k
    assert want["n"] == 500


def test_describe_groups_equals_stats_describe():
    rng = np.random.default_rng(3)
    x = np.round(rng.lognormal(5, 0.4, 5000), 3)
    g = np.where(rng.random(5000) < 0.3, "a", "b")
    g[:40] = "c"  # a small group: no upper bound for p99
    con = engine.connect()
    con.execute("CREATE TABLE t (g VARCHAR, v DOUBLE)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(zip(g.tolist(), x.tolist())))
    got = engine.describe_groups(con, "t", "v", "g")
    for name in ("a", "b", "c"):
        want = stats.describe(x[g == name])
        assert got[name].keys() == want.keys()
        for k in want:
            if k in ("mean", "std"):
                assert got[name][k] == pytest.approx(want[k], rel=1e-12)
            else:
                assert got[name][k] == want[k], (name, k)
    assert got["c"]["p99"]["ci_high"] is None


def test_values_at_ranks_and_time_bins():
    rng = np.random.default_rng(4)
    v = rng.normal(100, 10, 3000)
    ts = np.sort(rng.uniform(0, 60, 3000))
    con = engine.connect()
    con.execute("CREATE TABLE t (g VARCHAR, ts DOUBLE, v DOUBLE)")
    con.executemany("INSERT INTO t VALUES ('x', ?, ?)", list(zip(ts.tolist(), v.tolist())))
    at = engine.values_at_ranks(con, "t", "v", "g", {"x": [1, 1500, 3000]})
    s = np.sort(v)
    assert at == {("x", 1): s[0], ("x", 1500): s[1499], ("x", 3000): s[-1]}
    bins = engine.time_bins(con, "t", "ts", "v", "g", 10.0, 0.0)
    assert len(bins) == 6
    for _, start, n, p50, p95 in bins:
        m = (ts >= start) & (ts < start + 10)
        assert n == m.sum()
        assert p50 == pytest.approx(np.quantile(v[m], 0.5), rel=1e-12)
        assert p95 == pytest.approx(np.quantile(v[m], 0.95), rel=1e-12)


def _documented_sql() -> str:
    """The SQL block under docs/analysis.md's "Beyond one machine" marked `beyond-one-machine`."""
    text = (ROOT / "docs" / "analysis.md").read_text()
    m = re.search(r"<!-- beyond-one-machine -->\s*```sql\n(.*?)```", text, re.DOTALL)
    assert m, "docs/analysis.md lost its beyond-one-machine query"
    return m.group(1).strip()


def test_the_documented_query_runs_on_partitioned_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sql = _documented_sql()
    assert sql == engine.BEYOND_ONE_MACHINE_SQL.strip()  # one query, the doc's and the code's
    rng = np.random.default_rng(5)
    want: dict = {}
    for day in ("2026-11-24", "2026-11-25", "2026-11-26"):
        for part in range(2):
            n = 400
            flow = rng.choice(["provider", "local"], n)
            mode = rng.choice(["off", "skip"], n)
            status = np.where(rng.random(n) < 0.95, "success", "error")
            ms = np.round(rng.lognormal(5, 0.3, n), 3)
            d = tmp_path / "timings" / f"day={day}"
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"flow": flow, "mode": mode, "status": status,
                                     "executor_ms": ms}), d / f"part-{part:05d}.parquet")
            if day != "2026-11-26":
                for f, mo, s, x in zip(flow, mode, status, ms):
                    if s == "success":
                        want.setdefault((f, mo), []).append(x)
    con = engine.connect()
    rows = con.execute(sql.format(source=str(tmp_path / "timings" / "*" / "*.parquet"),
                                  first_day="2026-11-24", last_day="2026-11-25")).fetchall()
    assert [(f, m) for f, m, *_ in rows] == sorted(want)
    for f, m, n, qs in rows:
        xs = np.sort(want[(f, m)])
        assert n == len(xs)
        # quantile_disc: the smallest value with at least the fraction q below or at it
        assert qs == [float(xs[int(np.ceil(q * len(xs))) - 1]) for q in (0.5, 0.9, 0.95, 0.99)]


def test_the_fast_read_keeps_the_stages_on_disk(tmp_path):
    """The streaming read holds the time, metric and codes; the stage columns are files read
    back one at a time (the same values, `_same` above), their directory removed with the read."""
    import gc

    p = tmp_path / "clean.jsonl"
    p.write_bytes(("\n".join(FAST_LINES) + "\n").encode())
    read = _fast([p], log_selection())
    fl = read.table.floats
    assert isinstance(fl, ingest.SpilledColumns)
    want = ingest.read_log([p], log_selection()).table.floats
    assert set(fl) == set(want)
    for k in want:
        assert ingest.has_values(fl, k) == ingest.has_values(want, k), k
        assert np.array_equal(fl[k], want[k], equal_nan=True), k
    directory = fl._spilled["persist_ms"].parent
    assert directory.is_dir()
    del read, fl
    gc.collect()
    assert not directory.exists()


# ---------------------------------------------------------------- the typed read and its hand-overs

# the typed read (text fields typed VARCHAR, numbers JSON text) reads these to the end: lines
# of FAST_LINES whose text fields are strings where they decide (a record's mode 7, a status 1,
# a flow or a time `true` are not: see HAND_OVERS)
_UNTYPED_MARKS = ('"mode":7', '"status":1', '"flow":true', '"ts":true')
TYPED_LINES = [ln for ln in FAST_LINES if not any(m in ln for m in _UNTYPED_MARKS)]


def _line(**fields) -> str:
    rec = {"ts": "2026-11-25T12:00:20Z", "status": "success", "flow": "provider",
           "durations_ms": {"executor_ms": 5}}
    for k, v in fields.items():
        if v is _DROP:
            rec.pop(k, None)
        else:
            rec[k] = v
    return orjson.dumps(rec).decode()


_DROP = object()
DEFAULT, EVERYTHING = log_selection(), log_selection(component="*", endpoint="*")

# (line, selection, the read that gives the answer): "typed" read it to the end, "json" is the
# all-JSON-text read it handed over to, "lines" the line-by-line read that one gave way to
HAND_OVERS = {
    # a number, boolean, object or array where a string is read
    "numeric flow": (_line(flow=7), DEFAULT, "lines"),  # orjson writes its label: Python's
    "numeric status": (_line(status=200), DEFAULT, "json"),
    "boolean status": (_line(status=False), DEFAULT, "json"),
    "numeric mode": (_line(mode=1), DEFAULT, "json"),
    "boolean mode": (_line(mode=True), DEFAULT, "json"),
    "object flow": (_line(flow={"id": 1}), DEFAULT, "json"),
    "array flow": (_line(flow=[1]), DEFAULT, "json"),
    "boolean time": (_line(ts=True), DEFAULT, "json"),
    "object time": (_line(ts={"s": 1}), dataclasses.replace(DEFAULT, need_ts=False), "json"),
    "numeric component": (_line(component=5), log_selection(component="5"), "json"),
    "non-integer where": (_line(tier=200.5), log_selection(where=["tier=200.5"]), "lines"),
    "object where": (_line(tier={"a": 1}), log_selection(where=["tier=200"]), "lines"),
    # strings that read like one of those: handed over too, and read as strings there
    "flow '3'": (_line(flow="3"), DEFAULT, "json"),
    "status 'true'": (_line(status="true"), DEFAULT, "json"),
    "mode 'NaN'": (_line(mode="NaN"), DEFAULT, "json"),
    "flow '-Infinity'": (_line(flow="-Infinity"), DEFAULT, "json"),
    "flow '{x'": (_line(flow="{x"), DEFAULT, "json"),
    # what the typed read decides itself
    "numeric component, another wanted": (_line(component=5), DEFAULT, "typed"),
    "epoch number time": (_line(ts=1795608003.25), DEFAULT, "typed"),
    "epoch string time": (_line(ts="1795608003250"), DEFAULT, "typed"),
    "integer where": (_line(tier=200), log_selection(where=["tier=200"]), "typed"),
    "string where": (_line(tier="200"), log_selection(where=["tier=200"]), "typed"),
    "boolean where": (_line(tier=True), log_selection(where=["tier=true"]), "typed"),
    "flow 'ios', 'nan-ish' mode": (_line(flow="ios", mode="nightly"), DEFAULT, "typed"),
    # a string, boolean, object or array where a number is read: JSON text, the typed read's too
    "string metric": (_line(durations_ms={"executor_ms": "12"}), DEFAULT, "typed"),
    "string top-level metric": (_line(durations_ms=_DROP, executor_ms="12"), DEFAULT, "typed"),
    "boolean metric": (_line(durations_ms={"executor_ms": True}), DEFAULT, "typed"),
    "string stage": (_line(durations_ms={"executor_ms": 5, "persist_ms": "7"}), DEFAULT,
                     "typed"),
    # missing fields
    "no flow": (_line(flow=_DROP), DEFAULT, "typed"),
    "no status": (_line(status=_DROP), DEFAULT, "typed"),
    "no time": (_line(ts=_DROP), DEFAULT, "typed"),
    "no durations, a top-level metric": (_line(durations_ms=_DROP, executor_ms=4), DEFAULT,
                                         "typed"),
    # (read_json reads a null as absent: the top-level metric is Python's to take or not)
    "durations without the metric": (_line(durations_ms={"persist_ms": 3}, executor_ms=4),
                                     DEFAULT, "lines"),
    "empty durations": (_line(durations_ms={}), DEFAULT, "typed"),
    "no metric at all": (_line(durations_ms=_DROP), DEFAULT, "typed"),
    # durations_ms holding odd types
    "odd stages": (_line(durations_ms={"executor_ms": 5, "persist_ms": True,
                                       "config_fetch_ms": {"a": 1}, "provider_send_ms": [1, 2],
                                       "user_lock_ms": "3", "orders_fetch_ms": -2,
                                       "free_margin_ms": None}), DEFAULT, "typed"),
    "object metric": (_line(durations_ms={"executor_ms": {"v": 5}}), DEFAULT, "typed"),
    "array metric": (_line(durations_ms={"executor_ms": [5]}), DEFAULT, "typed"),
    "string 'NaN' metric": (_line(durations_ms={"executor_ms": "NaN"}), DEFAULT, "typed"),
    "null metric, a top-level one": (_line(durations_ms={"executor_ms": None}, executor_ms=3),
                                     DEFAULT, "lines"),
    "durations not an object": (_line(durations_ms="x"), DEFAULT, "lines"),
}
# the cases where no typed read stops part way: not taken (the component wanted), or it gives
# way to the line-by-line read itself (a JSON null may decide; read_json refuses the line)
_NOT_HANDED = {"numeric component", "durations without the metric",
               "null metric, a top-level one", "durations not an object"}


@pytest.fixture
def route(monkeypatch):
    """Which read gave engine.read_log's answer ('typed', 'json' or 'lines'), and whether a
    typed read stopped part way (`handed`: it met the line after the probe)."""
    seen = {"final": "lines", "handed": False}
    real = engine._stream

    def spy(*args, typed=False, **kw):
        try:
            got = real(*args, typed=typed, **kw)
        except engine._Untyped:
            seen["handed"] = True
            raise
        seen["final"] = "typed" if typed else "json"
        return got

    monkeypatch.setattr(engine, "_stream", spy)
    return seen


@pytest.mark.parametrize("case", list(HAND_OVERS))
@pytest.mark.parametrize("where", ["probed", "after the probe"])
def test_the_typed_read_hands_over_what_it_cannot_be_sure_of(tmp_path, monkeypatch, route,
                                                             case, where):
    """One line among lines the typed read takes: it reads the log itself, or hands it to the
    all-JSON read (which may give way to the line-by-line one), from the first lines' probe or
    part way through; whichever reads it, the answer is the Python reader's."""
    line, sel, want = HAND_OVERS[case]
    if where == "after the probe":
        monkeypatch.setattr(engine, "PROBE_ROWS", 3)
    p = tmp_path / "one.jsonl"
    p.write_text("\n".join(TYPED_LINES[:5] + [line] + TYPED_LINES[5:]) + "\n")
    _same([p], sel)
    assert route["final"] == want, case
    # a typed read stopped part way only when the probe did not see the line
    assert route["handed"] == (where == "after the probe" and want != "typed"
                               and case not in _NOT_HANDED), case


@pytest.mark.parametrize("sel", SELECTIONS, ids=range(len(SELECTIONS)))
def test_the_typed_read_reads_its_lines_to_the_end(tmp_path, route, sel):
    """The lines the typed read takes, under every selection: read by it to the end (but for
    a --where on `code`, which one line holds as 200.5: Python's to write), the Python
    reader's answer."""
    p = tmp_path / "typed.jsonl"
    p.write_text("\n".join(TYPED_LINES) + "\n")
    for need_ts in (True, False):
        s = dataclasses.replace(sel, need_ts=need_ts)
        route["final"] = None
        _same([p], s)
        if not s.where:
            assert route["final"] == "typed", s
    assert engine._typed_eligible(log_selection())


def test_what_the_typed_read_never_takes():
    """A component or endpoint wanted that a number's or boolean's text could equal, or a
    metric whose top-level key is also read as text: the all-JSON read."""
    assert not engine._typed_eligible(log_selection(component="5"))
    assert not engine._typed_eligible(log_selection(endpoint="true"))
    assert not engine._typed_eligible(log_selection(component="[1]"))
    assert not engine._typed_eligible(log_selection(where=["executor_ms=5"]))
    assert not engine._typed_eligible(log_selection(metric="status"))
    assert engine._typed_eligible(log_selection(component="nightly", endpoint="ios/1"))


def test_untyped_marks_every_text_a_non_string_reads_as(tmp_path):
    """Every value read_json takes for a number, boolean, object or array (NaN and Infinity in
    any case, beyond a double's range, beyond 64 bits), read typed VARCHAR, is marked by
    engine._untyped (SQL) and engine._may_be_untyped (Python); strings are not, unless they
    read like one."""
    values = ["0", "-0", "5", "-7", "1.5", "5e2", "1E5", "1e400", "-1e400",
              "18446744073709551616", "-9223372036854775809", "NaN", "nan", "-NaN", "Inf",
              "-inf", "Infinity", "INF", "true", "false", '{"a":1}', "[1,2]", "[]", "{}"]
    strings = ["provider", "success", "nightly", "ios", "n", "i", "-", "", "{x", "3", "true"]
    p = tmp_path / "v.jsonl"
    p.write_text("".join(f'{{"v":{v}}}\n' for v in values)
                 + "".join(orjson.dumps({"v": s}).decode() + "\n" for s in strings))
    con = engine.connect()
    rows = con.execute(f"SELECT v, {engine._untyped('v')} FROM read_json('{p}', "
                       "format = 'newline_delimited', columns = {'v': 'VARCHAR'})").fetchall()
    assert len(rows) == len(values) + len(strings)
    for text, marked in rows[:len(values)]:
        assert marked and engine._may_be_untyped(text), text
    want = {"{x": True, "3": True, "true": True}
    for (text, marked), s in zip(rows[len(values):], strings):
        assert text == s
        assert marked == want.get(s, False), s
        assert engine._may_be_untyped(s) == want.get(s, False), s


def test_analyze_log_the_same_summary_from_the_typed_read(tmp_path, monkeypatch, route):
    """A log the typed read takes to the end: the whole summary.json as the Python reader's
    and the all-JSON read's."""
    path, _, _ = mixed_log(tmp_path / "raw.log")
    lines = [ln for ln in path.read_bytes().splitlines()
             if ln.strip().startswith(b"{") and ln != b"{not json"]
    clean = tmp_path / "app.log"
    clean.write_bytes(b"\n".join(lines) + b"\n")
    rc_py, py = _summary(clean, tmp_path / "py", monkeypatch, "python")
    rc_db, db = _summary(clean, tmp_path / "db", monkeypatch, "duckdb")
    assert route["final"] == "typed"
    monkeypatch.setenv(engine.TYPED_ENV, "0")
    rc_js, js = _summary(clean, tmp_path / "js", monkeypatch, "duckdb")
    assert route["final"] == "json"
    assert py["log"].pop("engine") == "python"
    assert db["log"].pop("engine") == js["log"].pop("engine") == "duckdb"
    assert rc_db == rc_js == rc_py
    assert db == py and js == py


@pytest.mark.parametrize("literal", ["NaN", "-Infinity", "1e400"])
def test_a_number_orjson_refuses_is_read_by_the_python_reader(tmp_path, literal):
    """read_json takes NaN, Infinity and 1e400 as numbers, orjson (the Python reader) calls the
    line bad JSON: the engine's read falls back to the Python reader instead of failing."""
    p = tmp_path / "lit.jsonl"
    odd = _line().replace('"executor_ms":5', f'"executor_ms":{literal}')
    p.write_text("\n".join(TYPED_LINES[:3] + [odd] + TYPED_LINES[3:]) + "\n")
    read, used = engine.read_log_any([p], DEFAULT)
    assert used == "python" and read.excluded.get("bad_json") == 1
