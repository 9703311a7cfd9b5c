"""Benchmark of the analysis on a synthetic run of N records (default 1,000,000).

    .venv/bin/python benchmarks/analysis_bench.py [--records N] [--workdir DIR] [--no-pandas]
        [--tasks ingest,stats,report,pandas,log,log-python,duckdb,polars] [--scaling M]

Writes a run directory (timings.jsonl and requests.jsonl of N records each, DESIGN format), then
measures, each in a fresh process so timings include imports and memory is that process's own:

  ingest      analysis.ingest.read_timings on timings.jsonl
  stats       ingest + every statistic and check (analysis.core.build_summary), no plots
  report      the whole `execbench report`: both files, statistics, plots, report.html, table
  pandas      pandas.read_json(timings.jsonl, lines=True), the same file, same machine, same run
  log         the whole `execbench analyze-log timings.jsonl --split-at MID` on the DuckDB engine
              (analysis/engine.py): every line classified, statistics, checks, plots, report.html
  log-python  the same on the Python reader (EXECBENCH_ANALYSIS_ENGINE=python)
  duckdb      DuckDB's own read_json of the same file + the same quantiles analyze-log reports
              (the peer `log` is held against: "<= 1.0x DuckDB's own time for the same
              quantiles"): p50/p90/p95/p99 and counts of executor_ms and every durations_ms
              stage, per phase (before / after the split) and flow, over the records analyze-log
              keeps (component, endpoint, status success); typed columns, 2 threads. It does not
              classify malformed lines, compute intervals, comparisons or plots: analyze-log does
  duckdb-narrow  the former peer: executor_ms only, p50..p99 per flow and mode (4 fields read)
  polars      polars' scan_ndjson of the same file + duckdb-narrow's quantiles (lazy, streaming)

Peak memory is the process's VmHWM plus the largest child's ru_maxrss (the ingest forks up to one
reader per CPU for big files; pages shared with the parent count twice), an upper bound of what was
resident at once. CPU seconds (user + system, children included) are printed beside wall time:
on a shared machine they are the steadier figure.

--scaling M also writes a run of M records (same generator, same seed) and measures those of
`stats`, `log` and `duckdb` that --tasks names on it, then prints how their time and peak memory grow from N to M records
against M / N (issue 15: at most linear). The figures are printed, never asserted. A run of 10 M
records is about 4.1 GB of timings.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time, io
t0 = time.perf_counter()
task, path = sys.argv[1], sys.argv[2]
if task == "ingest":
    from analysis.ingest import read_timings
    n = read_timings(path + "/timings.jsonl").n
elif task == "stats":
    from analysis.api import load_run
    from analysis.core import build_summary
    a = load_run(path)
    build_summary(a)
    n = a.timings.n
elif task == "report":
    from rich.console import Console
    from analysis.api import analyze_run
    rc = analyze_run(path, console=Console(file=io.StringIO(), width=160))
    assert rc in (0, 1), rc
    n = sum(1 for _ in open(path + "/timings.jsonl", "rb"))
elif task == "pandas":
    import pandas as pd
    n = len(pd.read_json(path + "/timings.jsonl", lines=True))
elif task in ("log", "log-python"):
    import os
    from rich.console import Console
    from analysis.api import analyze_log
    os.environ["EXECBENCH_ANALYSIS_ENGINE"] = "duckdb" if task == "log" else "python"
    rc = analyze_log(path + "/timings.jsonl", sys.argv[3], out_dir=path + "/log-" + task,
                     console=Console(file=io.StringIO(), width=160))
    assert rc in (0, 1, 3), rc
    s = json.load(open(path + "/log-" + task + "/summary.json"))
    n = s["log"]["records"]
elif task == "duckdb":
    # the quantiles analyze-log reports, by DuckDB alone: every metric it describes (executor_ms
    # and each durations_ms stage), p50/p90/p95/p99 (quantile_cont: numpy's linear, as
    # stats.describe) and the count, per phase (before / after --split-at) and flow, over
    # the records it keeps (component, endpoint, status success); typed columns, its threads
    import duckdb
    from execbench.contract import METRICS
    ms = list(dict.fromkeys(("executor_ms", *METRICS)))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # drawn on stdout: the child's JSON line
    con.execute("SET threads = 2")
    dtype = "STRUCT(" + ", ".join(f"{m} DOUBLE" for m in ms) + ")"
    qs = ", ".join(f"count(durations_ms.{m}), quantile_cont(durations_ms.{m}, "
                   "[0.5, 0.9, 0.95, 0.99])" for m in ms)
    rows = con.execute(f"SELECT epoch(ts) < {float(sys.argv[3])} AS before, flow, count(*), {qs} "
                       "FROM read_json(?, format = 'newline_delimited', columns = {ts: "
                       "'TIMESTAMPTZ', component: 'VARCHAR', endpoint: 'VARCHAR', flow: "
                       f"'VARCHAR', mode: 'VARCHAR', status: 'VARCHAR', durations_ms: '{dtype}'}}) "
                       "WHERE status = 'success' AND component = 'python_api' AND endpoint = "
                       "'orders/instant/execute' GROUP BY ALL", [path + "/timings.jsonl"]).fetchall()
    n = sum(r[2] for r in rows)
elif task == "duckdb-narrow":
    import duckdb
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # drawn on stdout: the child's JSON line
    rows = con.execute("SELECT flow, mode, count(*), quantile_disc(durations_ms.executor_ms, "
                       "[0.5, 0.9, 0.95, 0.99]) FROM read_json(?, format = 'newline_delimited', "
                       "columns = {ts: 'VARCHAR', flow: 'VARCHAR', mode: 'VARCHAR', "
                       "status: 'VARCHAR', durations_ms: 'STRUCT(executor_ms DOUBLE)'}) "
                       "WHERE status = 'success' GROUP BY flow, mode",
                       [path + "/timings.jsonl"]).fetchall()
    n = sum(r[2] for r in rows)
elif task == "polars":
    import polars as pl
    schema = {"ts": pl.String, "flow": pl.String, "mode": pl.String, "status": pl.String,
              "durations_ms": pl.Struct({"executor_ms": pl.Float64})}
    q = (pl.scan_ndjson(path + "/timings.jsonl", schema=schema)
         .filter(pl.col("status") == "success")
         .with_columns(pl.col("durations_ms").struct.field("executor_ms").alias("x"))
         .group_by("flow", "mode")
         .agg(pl.len().alias("n"), *[pl.col("x").quantile(q, "lower").alias(str(q))
                                     for q in (0.5, 0.9, 0.95, 0.99)]))
    n = int(q.collect(engine="streaming")["n"].sum())
dt = time.perf_counter() - t0
# VmHWM: this process's own peak since exec (ru_maxrss would carry the launcher's peak over exec)
me = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"task": task, "seconds": dt, "records": n, "peak_kb": me,
                  "child_peak_kb": c.ru_maxrss,
                  "cpu_seconds": s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime}))
"""


GENERATE = r"""
import sys
from pathlib import Path
from analysis.synthetic import DEFAULT_PHASES, PhaseSpec, RunSpec, write_run
n = int(sys.argv[2])
# phases stretched so the rate stays ~1,000 records/s, like a long steady test
scale = max(1.0, n / 200_000)
phases = tuple(PhaseSpec(p.name, p.duration_s * scale, p.mode, p.analysed) for p in DEFAULT_PHASES)
write_run(Path(sys.argv[1]), RunSpec(records=n, seed=7, phases=phases))
"""


def split_at(run_dir: Path) -> str:
    """The middle of the timing log's time range (its first and last records' ts)."""
    from datetime import datetime

    path = run_dir / "timings.jsonl"
    with open(path, "rb") as fh:
        first = json.loads(fh.readline())["ts"]
        fh.seek(max(0, path.stat().st_size - 4096))
        last = json.loads(fh.read().splitlines()[-1])["ts"]
    a, b = (datetime.fromisoformat(t).timestamp() for t in (first, last))
    return repr((a + b) / 2)


def run_child(task: str, run_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, task, str(run_dir), split_at(run_dir)],
                         cwd=REPO, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{task}: exit {out.returncode}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def ensure_run(work: Path, records: int) -> Path:
    """The run directory of `records` records under work (written once, then reused)."""
    run_dir = work / f"bench-run-{records}"
    t = time.perf_counter()
    if not (run_dir / "timings.jsonl").exists():
        # in a child, so this process stays small for the ones it starts
        subprocess.run([sys.executable, "-c", GENERATE, str(run_dir), str(records)], cwd=REPO,
                       check=True)
    size = (run_dir / "timings.jsonl").stat().st_size
    print(f"run directory: {run_dir} ({records:,} records; timings.jsonl "
          f"{size / 1e6:.0f} MB; ready in {time.perf_counter() - t:.1f} s)")
    return run_dir


def _ratios(a: dict, b: dict) -> str:
    """A's wall time, CPU time and peak memory as multiples of B's (one run's two tasks)."""
    return (f"{a['seconds'] / b['seconds']:.2f}x wall, {a['cpu_seconds'] / b['cpu_seconds']:.2f}x "
            f"CPU, {_mb(a) / _mb(b):.2f}x peak memory")


def _mb(r: dict) -> float:
    return (r["peak_kb"] + r["child_peak_kb"]) / 1024


def best_of(task: str, run_dir: Path, repeat: int) -> dict:
    best = None
    for _ in range(repeat):
        r = run_child(task, run_dir)
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the run directory here")
    ap.add_argument("--no-pandas", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="best of N for each measurement")
    ap.add_argument("--tasks", default="ingest,stats,report,pandas,log,log-python,duckdb,polars",
                    help="comma-separated measurements (default: all)")
    ap.add_argument("--scaling", type=int, default=None, metavar="M",
                    help="also measure stats on M records and print the growth from N to M")
    args = ap.parse_args()

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="execbench-bench-")
        work = Path(tmp.name)
    else:
        work = args.workdir
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    run_dir = ensure_run(work, args.records)

    tasks = [t for t in args.tasks.split(",") if t and not (args.no_pandas and t == "pandas")]
    for t, module in (("polars", "polars"), ("duckdb", "duckdb"), ("pandas", "pandas")):
        if t in tasks and not have(module):
            print(f"{t}: not installed, left out")
            tasks.remove(t)
    results = {task: best_of(task, run_dir, args.repeat) for task in tasks}

    print()
    print(f"{'measurement':<13} {'wall s':>7} {'CPU s':>7} {'records/s':>11} {'peak MB':>8}  notes")
    for task, r in results.items():
        peak = (r["peak_kb"] + r["child_peak_kb"]) / 1024
        rate = r["records"] / r["seconds"]
        note = {"ingest": "timings.jsonl -> columns",
                "stats": "ingest + all statistics and checks, no plots",
                "report": "whole `execbench report` (timings + requests, plots, html)",
                "pandas": "pandas.read_json(lines=True), same file",
                "log": "whole `analyze-log --split-at` on DuckDB (all lines, stats, plots, html)",
                "log-python": "the same on the Python reader",
                "duckdb": "DuckDB read_json + the same quantiles (9 metrics x phase x flow)",
                "duckdb-narrow": "DuckDB read_json + executor_ms quantiles per flow x mode",
                "polars": "polars scan_ndjson + executor_ms quantiles per flow x mode"}[task]
        print(f"{task:<13} {r['seconds']:>7.2f} {r['cpu_seconds']:>7.2f} {rate:>11,.0f} "
              f"{peak:>8.0f}  {note}")
    if "pandas" in results and "ingest" in results:
        cpu_ratio = results["pandas"]["cpu_seconds"] / results["ingest"]["cpu_seconds"]
        ratio = results["pandas"]["seconds"] / results["ingest"]["seconds"]
        mem = (results["pandas"]["peak_kb"] + results["pandas"]["child_peak_kb"]) / (
            results["ingest"]["peak_kb"] + results["ingest"]["child_peak_kb"])
        print(f"\ningest vs pandas: {ratio:.1f}x faster in wall time ({cpu_ratio:.1f}x in CPU time), "
              f"{mem:.1f}x less peak memory (target: >= 5x faster)")
    if "report" in results:
        rep = results["report"]
        print(f"whole report: {rep['seconds']:.1f} s (target < 10 s), peak "
              f"{(rep['peak_kb'] + rep['child_peak_kb']) / 1024:.0f} MB (target < 1024 MB)")
    if "log" in results:
        lg = results["log"]
        print(f"analyze-log (DuckDB engine): {lg['seconds']:.1f} s, peak {_mb(lg):.0f} MB "
              "(issue 15: 1 M records <= 4 s; 10 M <= 20 s and <= 1024 MB)")
        for peer in ("duckdb", "duckdb-narrow", "polars", "log-python"):
            if peer in results:
                print(f"  analyze-log / {peer}: {_ratios(lg, results[peer])}"
                      + (" (target for duckdb, the same quantiles: <= 1.0x)" if peer == "duckdb"
                         else ""))
    if args.scaling:
        big_dir = ensure_run(work, args.scaling)
        factor = args.scaling / args.records
        print()
        bigs = {}
        for task in [t for t in ("stats", "log", "duckdb") if t in tasks]:
            small = results.get(task) or best_of(task, run_dir, args.repeat)
            big = bigs[task] = best_of(task, big_dir, args.repeat)
            print(f"{task} scaling: {args.records:,} records {small['seconds']:.1f} s "
                  f"({small['cpu_seconds']:.1f} CPU s, {_mb(small):.0f} MB) -> {args.scaling:,} "
                  f"records {big['seconds']:.1f} s ({big['cpu_seconds']:.1f} CPU s, "
                  f"{_mb(big):.0f} MB): {big['seconds'] / small['seconds']:.1f}x wall, "
                  f"{big['cpu_seconds'] / small['cpu_seconds']:.1f}x CPU, "
                  f"{_mb(big) / _mb(small):.1f}x peak memory for {factor:g}x the records "
                  f"(target: time <= {1.1 * factor:g}x, memory <= {factor:g}x)")
        if "log" in bigs:
            lg = bigs["log"]
            print(f"analyze-log at {args.scaling:,} records: {lg['seconds']:.1f} s, peak "
                  f"{_mb(lg):.0f} MB (issue 15: <= 20 s, <= 1024 MB)")
            if "duckdb" in bigs:
                dk = bigs["duckdb"]
                print(f"  analyze-log / duckdb (the same quantiles) at {args.scaling:,}: "
                      f"{_ratios(lg, dk)} (target <= 1.0x)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
