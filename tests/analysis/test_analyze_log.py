"""`execbench analyze-log` on real logs: the selection (component, endpoint, --where, flow field,
metric), the lines excluded by reason, every timestamp form, two files without timestamps, and
unusable input. Logs are real files; the numbers are checked against numpy on the records the
selection keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest

from analysis.api import analyze_log
from execbench.cli import main
from tests.analysis.util import quiet, summary_of

SPLIT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()
SPLIT_ISO = "2026-11-25T12:00:00Z"
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


# exit 0 or 3: analysed, with a verdict that can rest on the built-in error-rise check, which
# a few hundred requests a phase cannot decide (0/300 errors bound a rise only to ~0.9 pp)
ANALYSED = (0, 3)

def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _executor(rng, flow: str, after: bool, n: int) -> np.ndarray:
    """The note's numbers: provider executor_ms ~253 ms before, ~88 after; local unchanged."""
    median = 88.0 if (after and flow == "provider") else 253.0 if flow == "provider" else 140.0
    return np.round(rng.lognormal(np.log(median), 0.25, n), 3)


def note_record(flow: str, executor_ms: float, **extra) -> dict:
    """A line in the note's exact format (reference/provider-skip-step1.md): no timestamp."""
    return {"component": "python_api", "endpoint": "orders/instant/execute", "status": "success",
            "order_id": "o", "flow": flow,
            "durations_ms": {"executor_ms": executor_ms, "provider_send_ms": 0}, **extra}


def write_lines(path: Path, lines: list) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n"
                              for x in lines))
    return path


def mixed_log(path: Path, n: int = 3200, seed: int = 7):
    """The executor's records (both flows, both sides of SPLIT) mixed with what a real log also
    holds: `orders/close` lines, a gateway component, lines without component or endpoint
    (kept by default), a record without the metric, a rejection, bad JSON, a JSON array and a
    blank line. Returns the path, the kept records and the expected excluded counts."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(SPLIT - 600, SPLIT + 600, n))
    flows = np.where(rng.random(n) < 0.5, "provider", "local")
    lines: list = []
    kept: list[dict] = []
    excluded = {"other_endpoint": 0, "other_component": 0, "no_metric": 0, "bad_json": 0,
                "not_an_object": 0, "blank_line": 0}
    for i in range(n):
        flow, after = str(flows[i]), bool(ts[i] >= SPLIT)
        rec = note_record(flow, float(_executor(rng, flow, after, 1)[0]), ts=_iso(ts[i]))
        k = i % 20
        if k in (3, 13):  # the same service's other endpoint: slow, must not pool in
            rec["endpoint"] = "orders/close"
            rec["durations_ms"]["executor_ms"] = 1065.0 + i
            excluded["other_endpoint"] += 1
        elif k == 7:  # the gateway logs the same endpoint with its own (slower) figures
            rec["component"] = "gateway"
            rec["durations_ms"]["executor_ms"] = 1500.0 + i
            excluded["other_component"] += 1
        elif k == 9:  # a record of the executor without executor_ms
            del rec["durations_ms"]["executor_ms"]
            excluded["no_metric"] += 1
        elif k == 11:  # no component, no endpoint: kept (the options were not given)
            del rec["component"], rec["endpoint"]
            kept.append(rec)
        elif k == 17:  # a rejection: a record, counted, not timed
            rec["status"] = "rejected"
            kept.append(rec)
        else:
            kept.append(rec)
        lines.append(rec)
    lines[100:100] = [b"{not json", b"[1, 2]", b"   "]
    excluded["bad_json"], excluded["not_an_object"], excluded["blank_line"] = 1, 1, 1
    return write_lines(path, lines), kept, excluded


def values(records: list[dict], flow: str, after: bool, metric: str = "executor_ms",
           ts_key: str = "ts", flow_key: str = "flow") -> np.ndarray:
    def when(r):
        return datetime.fromisoformat(r[ts_key]).timestamp()

    return np.array([r["durations_ms"][metric] if metric in r["durations_ms"] else r[metric]
                     for r in records if r[flow_key] == flow and r["status"] == "success"
                     and (when(r) >= SPLIT) == after])


def said(capsys) -> str:
    """What the command printed (stdout and stderr), with rich's line wrapping undone."""
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def assert_quantiles(stats: dict, expected: np.ndarray) -> None:
    assert stats["count"] == len(expected)
    assert stats["mean"] == pytest.approx(float(expected.mean()), rel=1e-12)
    for name, q in QUANTILES.items():
        # exact: the same float64 values, numpy's default (linear) method
        assert stats[name]["value"] == float(np.quantile(expected, q))


def test_a_mixed_log_gives_numpys_quantiles_of_the_selected_records(tmp_path, capsys):
    log, kept, excluded = mixed_log(tmp_path / "mixed.jsonl")
    out = tmp_path / "out"
    code = main(["analyze-log", str(log), "--split-at", SPLIT_ISO, "--out", str(out)])
    assert code == 0
    s = summary_of(out)
    assert s["excluded"] == excluded
    assert s["log"]["records"] == len(kept)
    assert s["log"]["lines"] == len(kept) + sum(excluded.values())
    assert s["log"]["ts_fields"] == {"ts": len(kept)}
    for phase, after in (("before", False), ("after", True)):
        for flow in ("provider", "local"):
            assert_quantiles(s["phases"][phase][flow]["executor_ms"],
                             values(kept, flow, after))
    # nothing of the other endpoint or component pooled in (their figures are >= 1065 ms)
    assert s["phases"]["before"]["provider"]["executor_ms"]["p99"]["value"] < 1000
    # the rejections are counted per phase, not timed
    rejected = sum(1 for r in kept if r["status"] == "rejected")
    assert sum(info["status"][f].get("rejected", 0) for info in s["phase_info"].values()
               for f in ("provider", "local")) == rejected
    # malformed lines are the ingest's too (bad JSON, not an object, no metric)
    assert s["ingest"]["timings"]["malformed"]["count"] == 2 + excluded["no_metric"]
    terminal = said(capsys)
    assert (f"log lines: {s['log']['lines']}, records {len(kept)}; excluded: other_endpoint "
            f"{excluded['other_endpoint']}, other_component {excluded['other_component']}, "
            f"no_metric {excluded['no_metric']}") in terminal
    html = (out / "report.html").read_text()
    section = html[html.index("<h2>Excluded lines</h2>"):]
    for reason, count in excluded.items():
        assert f"<td>{reason}</td><td class=\"num\">{count}</td>" in section
    assert "endpoint orders/instant/execute" in section


def test_an_explicit_component_or_endpoint_excludes_records_without_it(tmp_path):
    log, kept, excluded = mixed_log(tmp_path / "mixed.jsonl", n=800)
    out = tmp_path / "o"
    assert analyze_log(log, SPLIT_ISO, out_dir=out, console=quiet(), checks="none",
                       component="python_api", endpoint="orders/instant/execute", plots=False) in ANALYSED
    s = summary_of(out)
    without = [r for r in kept if "component" not in r]
    # the component is tested first: a record with neither field counts as no_component
    assert s["excluded"]["no_component"] == len(without)
    assert "no_endpoint" not in s["excluded"]
    named = [r for r in kept if "component" in r]
    assert_quantiles(s["phases"]["after"]["provider"]["executor_ms"],
                     values(named, "provider", True))
    # '*' takes any component: the gateway's lines pool in again
    out = tmp_path / "any"
    assert analyze_log(log, SPLIT_ISO, out_dir=out, console=quiet(), checks="none",
                       component="*", plots=False) in ANALYSED
    s = summary_of(out)
    assert "other_component" not in s["excluded"]
    assert s["excluded"]["other_endpoint"] == excluded["other_endpoint"]
    assert s["log"]["records"] == len(kept) + excluded["other_component"]


def test_where_flow_field_and_metric(tmp_path):
    """--where compares top-level fields as text (numbers and booleans by their JSON text),
    all of them; --flow-field and --metric name the fields of another log's format."""
    rng = np.random.default_rng(3)
    n = 900
    ts = np.sort(rng.uniform(SPLIT - 300, SPLIT + 300, n))
    lines, kept = [], []
    mismatched = 0
    for i in range(n):
        route = "provider" if i % 3 else "local"
        after = bool(ts[i] >= SPLIT)
        rec = {"timestamp": _iso(ts[i]), "component": "python_api", "status": "success",
               "route": route, "region": "eu" if i % 5 else "us", "code": 200 if i % 7 else 500,
               "canary": bool(i % 11), "latency_ms": float(_executor(rng, route, after, 1)[0]),
               "durations_ms": {"persist_ms": round(float(rng.uniform(5, 15)), 3)}}
        if rec["region"] == "eu" and rec["code"] == 200 and rec["canary"] is True:
            kept.append(rec)
        else:
            mismatched += 1
        lines.append(rec)
    log = write_lines(tmp_path / "other.jsonl", lines)
    out = tmp_path / "o"
    code = main(["analyze-log", str(log), "--split-at", str(SPLIT), "--out", str(out),
                 "--where", "region=eu", "--where", "code=200", "--where", "canary=true",
                 "--flow-field", "route", "--metric", "latency_ms", "--checks", "none"])
    assert code in ANALYSED
    s = summary_of(out)
    assert s["excluded"] == {"where_mismatch": mismatched}
    assert s["primary_metric"] == "latency_ms"
    assert s["log"]["ts_fields"] == {"timestamp": len(kept)}
    for phase, after in (("before", False), ("after", True)):
        for flow in ("provider", "local"):
            assert_quantiles(s["phases"][phase][flow]["latency_ms"],
                             values(kept, flow, after, "latency_ms", "timestamp", "route"))
    # the log's own metric is compared between the phases, not only executor_ms
    shift = s["comparisons"][0]["flows"]["provider"]["latency_ms"]
    assert shift["shift_pct"]["value"] < -50
    # a durations_ms key as the metric
    out = tmp_path / "persist"
    assert analyze_log(log, SPLIT_ISO, out_dir=out, console=quiet(), checks="none",
                       flow_field="route", metric="persist_ms", where=["region=eu"], plots=False) in ANALYSED
    s = summary_of(out)
    eu = [r for r in lines if r["region"] == "eu"]
    assert_quantiles(s["phases"]["after"]["local"]["persist_ms"],
                     values(eu, "local", True, "persist_ms", "timestamp", "route"))


def _ts_forms():
    plus2 = timezone(timedelta(hours=2))
    return {
        "iso_z": lambda t: _iso(t),
        "iso_offset": lambda t: datetime.fromtimestamp(t, plus2).isoformat(),
        "iso_naive": lambda t: datetime.fromtimestamp(t, UTC).replace(tzinfo=None).isoformat(),
        "iso_space": lambda t: datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "epoch_s": lambda t: t,
        "epoch_s_int": lambda t: int(t),
        "epoch_ms": lambda t: round(t * 1000),
        "epoch_s_string": lambda t: f"{t:.3f}",
        "epoch_ms_string": lambda t: str(round(t * 1000)),
    }


@pytest.mark.parametrize(("form", "field"), [
    *((form, "ts") for form in _ts_forms()),
    *((form, field) for field in ("timestamp", "time", "@timestamp", "logged_at")
      for form in ("iso_z", "epoch_ms")),
])
def test_every_timestamp_form_and_field(tmp_path, form, field):
    """Each form places the records on the right side of the split, in each field detected
    (ts, timestamp, time, @timestamp) and in another named with --ts-field."""
    fmt = _ts_forms()[form]
    rng = np.random.default_rng(11)
    # whole seconds, away from the split: every form (an int too) keeps the side
    ts = SPLIT + np.concatenate([-np.arange(1, 61), np.arange(0, 50)]).astype(float)
    recs = []
    for i, t in enumerate(ts):
        flow = "provider" if i % 2 else "local"
        rec = note_record(flow, float(_executor(rng, flow, t >= SPLIT, 1)[0]))
        rec[field] = fmt(float(t))
        recs.append(rec)
    log = write_lines(tmp_path / "log.jsonl", recs)
    out = tmp_path / "o"
    args = ["analyze-log", str(log), "--split-at", SPLIT_ISO, "--out", str(out),
            "--checks", "none"]
    if field == "logged_at":
        args += ["--ts-field", field]
    assert main(args) in ANALYSED
    s = summary_of(out)
    assert s["excluded"] == {}
    assert s["log"]["ts_fields"] == {field: len(recs)}
    assert s["phase_info"]["before"]["kept"] == 60
    assert s["phase_info"]["after"]["kept"] == 50
    prov = [r["durations_ms"]["executor_ms"] for r, t in zip(recs, ts)
            if r["flow"] == "provider" and t >= SPLIT]
    assert_quantiles(s["phases"]["after"]["provider"]["executor_ms"], np.array(prov))
    assert s["phase_info"]["after"]["start"] == SPLIT_ISO


def test_the_split_time_takes_the_same_forms(tmp_path):
    log, kept, _ = mixed_log(tmp_path / "m.jsonl", n=400)
    counts = []
    for split in (SPLIT_ISO, "2026-11-25T14:00:00+02:00", "2026-11-25T12:00:00",
                  str(int(SPLIT)), str(int(SPLIT * 1000))):
        out = tmp_path / f"o{len(counts)}"
        assert analyze_log(log, split, out_dir=out, console=quiet(), checks="none", plots=False) in ANALYSED
        counts.append(summary_of(out)["phase_info"]["after"]["records"])
    assert len(set(counts)) == 1
    assert counts[0] == sum(1 for r in kept
                            if datetime.fromisoformat(r["ts"]).timestamp() >= SPLIT)


def test_records_without_a_usable_timestamp_are_counted(tmp_path):
    log, kept, excluded = mixed_log(tmp_path / "m.jsonl", n=400)
    lines = log.read_bytes().splitlines()
    recs = [orjson.loads(x) if x.strip().startswith(b"{\"") else x for x in lines]
    dicts = [r for r in recs if isinstance(r, dict) and r.get("endpoint", "orders/instant/execute")
             == "orders/instant/execute" and r.get("component", "python_api") == "python_api"
             and "executor_ms" in r["durations_ms"]]
    del dicts[0]["ts"]
    dicts[1]["ts"] = "yesterday"
    dicts[2]["ts"] = True
    write_lines(log, recs)
    out = tmp_path / "o"
    assert analyze_log(log, SPLIT_ISO, out_dir=out, console=quiet(), checks="none", plots=False) in ANALYSED
    s = summary_of(out)
    assert s["excluded"] == {**excluded, "no_timestamp": 1, "bad_timestamp": 2}
    assert s["log"]["records"] == len(kept) - 3


def test_no_timestamp_anywhere_names_the_fields_tried(tmp_path, capsys):
    rng = np.random.default_rng(1)
    log = write_lines(tmp_path / "note.log", [note_record("provider", float(v))
                                              for v in _executor(rng, "provider", False, 50)])
    assert main(["analyze-log", str(log), "--split-at", SPLIT_ISO]) == 2
    err = said(capsys)
    assert "unusable input" in err and "excluded by reason: no_timestamp 50" in err
    assert "fields tried: ts, timestamp, time, @timestamp" in err and "--ts-field" in err
    assert "analyze-log BEFORE.log AFTER.log" in err
    assert main(["analyze-log", str(log), "--split-at", SPLIT_ISO, "--ts-field", "when"]) == 2
    assert "fields tried: when (" in said(capsys)


def _note_files(tmp_path: Path, n: int = 1000, seed: int = 5, stamped: bool = False):
    """Two logs in the note's exact format, before and after the deploy."""
    rng = np.random.default_rng(seed)
    out = []
    for name, after in (("before.log", False), ("after.log", True)):
        recs = []
        for i in range(n):
            flow = "provider" if i % 2 else "local"
            rec = note_record(flow, float(_executor(rng, flow, after, 1)[0]))
            if stamped:
                rec["ts"] = _iso(SPLIT + (i if after else i - n))
            recs.append(rec)
        recs.append(note_record("provider", 1065.0, endpoint="orders/close"))
        out.append((write_lines(tmp_path / name, [*recs, b"oops"]), recs[:-1]))
    return out


def test_two_files_in_the_notes_format(tmp_path, capsys):
    (before, b_recs), (after, a_recs) = _note_files(tmp_path)
    out = tmp_path / "out"
    assert main(["analyze-log", str(before), str(after), "--out", str(out)]) == 0
    s = summary_of(out)
    assert s["verdict"] == "pass"
    assert set(s["phases"]) == {"before", "after"}
    for phase, recs in (("before", b_recs), ("after", a_recs)):
        for flow in ("provider", "local"):
            expected = np.array([r["durations_ms"]["executor_ms"] for r in recs
                                 if r["flow"] == flow])
            assert_quantiles(s["phases"][phase][flow]["executor_ms"], expected)
    assert s["excluded"] == {"other_endpoint": 2, "bad_json": 2}
    assert [f["excluded"] for f in s["log"]["files"]] == [{"other_endpoint": 1,
                                                          "bad_json": 1}] * 2
    assert [f["records"] for f in s["log"]["files"]] == [len(b_recs), len(a_recs)]
    assert s["log"]["time_axis"] == "record order"
    assert s["flips"] == [] and s["phase_info"]["after"]["throughput_rps"] is None
    # the seed's claims were judged on the two files
    seed = {c["kind"]: c["verdict"] for c in s["checks"] if c["source"] == "seed"}
    assert seed == {"quantile_below": "pass", "reduction_at_least": "pass", "equivalent": "pass"}
    # a malformed line names its file
    assert s["ingest"]["timings"]["malformed"]["lines"][0]["reason"].startswith("before.log: ")
    assert "excluded: bad_json 2, other_endpoint 2" in said(capsys)
    assert "<h2>Excluded lines</h2>" in (out / "report.html").read_text()


def test_two_files_with_timestamps_keep_their_times(tmp_path):
    (before, _), (after, _) = _note_files(tmp_path, n=120, stamped=True)
    out = tmp_path / "o"
    assert analyze_log(before, after=after, out_dir=out, console=quiet(), checks="none", plots=False) in ANALYSED
    s = summary_of(out)
    assert s["log"]["time_axis"] == "timestamps"
    assert s["phase_info"]["after"]["start"] == SPLIT_ISO
    assert s["phase_info"]["before"]["records"] == s["phase_info"]["after"]["records"] == 120


def test_checks_take_the_experiment_kinds(tmp_path):
    """--checks FILE: the kinds and fields of an experiment's [[checks]], on the log's phases
    (by name or role) and its own metric."""
    log, kept, _ = mixed_log(tmp_path / "m.jsonl")
    checks = tmp_path / "slo.toml"
    checks.write_text('''source = "slo"
[[checks]]
name = "provider p95 after under 200 ms"
kind = "quantile_below"
flow = "provider"
phase = "after"
q = 0.95
max = 200
[[checks]]
kind = "quantile_between"
flow = "provider"
phase = "baseline"
quantile = "p50"
low = 200
high = 320
[[checks]]
kind = "reduction_at_least"
flow = "provider"
from = "baseline"
to = "treatment"
pct = 40
[[checks]]
kind = "equivalent"
flow = "local"
phases = ["before", "after"]
margin_pct = 10
[[checks]]
kind = "error_rate_below"
phase = "after"
max_ratio = 0.01
[[checks]]
kind = "no_errors"
''')
    out = tmp_path / "o"
    assert analyze_log(log, SPLIT_ISO, out_dir=out, console=quiet(), checks=checks, plots=False) == 0
    s = summary_of(out)
    mine = [c for c in s["checks"] if c["source"] == "slo"]
    assert [c["kind"] for c in mine] == ["quantile_below", "quantile_between",
                                         "reduction_at_least", "equivalent",
                                         "error_rate_below", "no_errors"]
    assert all(c["verdict"] == "pass" for c in mine), mine
    after = values(kept, "provider", True)
    assert f"p95 {np.quantile(after, 0.95):.1f} ms" in mine[0]["observed"]
    # a check that does not hold fails the log
    checks.write_text('[[checks]]\nkind = "quantile_below"\nflow = "provider"\n'
                      'phase = "after"\nq = 0.5\nmax = 50\n')
    assert analyze_log(log, SPLIT_ISO, out_dir=out, console=quiet(), checks=checks, plots=False) == 1


@pytest.mark.parametrize(("args", "says"), [
    (["{log}"], "give FILE --split-at TIME, or two files"),
    (["{log}", "{log}", "--split-at", SPLIT_ISO], "give FILE --split-at TIME, or two files"),
    (["{log}", "--split-at", "soon"], "is not a time"),
    (["{log}", "--split-at", "2020-01-01T00:00:00Z"], "outside the log's time range"),
    (["{log}", "--split-at", SPLIT_ISO, "--where", "region"], "expected FIELD=VALUE"),
    (["{log}", "--split-at", SPLIT_ISO, "--endpoint", "orders/cancel"],
     "no record left to analyse"),
    (["{log}", "--split-at", SPLIT_ISO, "--metric", "nope_ms"], "metric 'nope_ms'"),
    (["{log}", "--split-at", SPLIT_ISO, "--flow-field", "lane"], "flow field 'lane'"),
    (["{log}", "{tmp}/missing.log"], "no such file"),
    (["{log}", "{tmp}/blank.log"], "empty or blank"),
    (["{log}", "--split-at", SPLIT_ISO, "--checks", "{tmp}/none.toml"], "no such file"),
])
def test_unusable_input_exits_2_and_says_why(tmp_path, capsys, args, says):
    log, _, _ = mixed_log(tmp_path / "m.jsonl", n=200)
    (tmp_path / "blank.log").write_text("\n \n")
    argv = ["analyze-log", *(a.format(log=log, tmp=tmp_path) for a in args),
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert says in said(capsys)
    assert not (tmp_path / "o" / "summary.json").exists()
