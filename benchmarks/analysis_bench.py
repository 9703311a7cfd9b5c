"""Benchmark of the analysis on a synthetic run of N records (default 1,000,000).

    .venv/bin/python benchmarks/analysis_bench.py [--records N] [--workdir DIR] [--no-pandas]
        [--tasks ingest,stats,report,pandas] [--scaling M]

Writes a run directory (timings.jsonl and requests.jsonl of N records each, DESIGN format), then
measures, each in a fresh process so timings include imports and memory is that process's own:

  ingest      analysis.ingest.read_timings on timings.jsonl
  stats       ingest + every statistic and check (analysis.core.build_summary), no plots
  report      the whole `execbench report`: both files, statistics, plots, report.html, table
  pandas      pandas.read_json(timings.jsonl, lines=True), the same file, same machine, same run

Peak memory is the process's VmHWM plus the largest child's ru_maxrss (the ingest forks up to one
reader per CPU for big files; pages shared with the parent count twice), an upper bound of what was
resident at once. CPU seconds (user + system, children included) are printed beside wall time:
on a shared machine they are the steadier figure.

--scaling M also writes a run of M records (same generator, same seed) and measures `stats` on it,
then prints how stats time grows from N to M records against M / N (issue 16: <= 11x for 10x;
the Hodges-Lehmann search once made 10 M records 26x the 1 M time). The figures are printed,
never asserted. A run of 10 M records is about 2.4 GB of JSON lines per file.
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


def run_child(task: str, run_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, task, str(run_dir)], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--tasks", default="ingest,stats,report,pandas",
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
    results = {task: best_of(task, run_dir, args.repeat) for task in tasks}

    print()
    print(f"{'measurement':<10} {'wall s':>7} {'CPU s':>7} {'records/s':>11} {'peak MB':>8}  notes")
    for task, r in results.items():
        peak = (r["peak_kb"] + r["child_peak_kb"]) / 1024
        rate = r["records"] / r["seconds"]
        note = {"ingest": "timings.jsonl -> columns",
                "stats": "ingest + all statistics and checks, no plots",
                "report": "whole `execbench report` (timings + requests, plots, html)",
                "pandas": "pandas.read_json(lines=True), same file"}[task]
        print(f"{task:<10} {r['seconds']:>7.2f} {r['cpu_seconds']:>7.2f} {rate:>11,.0f} "
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
    if args.scaling:
        small = results.get("stats") or best_of("stats", run_dir, args.repeat)
        big = best_of("stats", ensure_run(work, args.scaling), args.repeat)
        factor = args.scaling / args.records
        print(f"\nstats scaling: {args.records:,} records {small['seconds']:.1f} s "
              f"({small['cpu_seconds']:.1f} CPU s) -> {args.scaling:,} records "
              f"{big['seconds']:.1f} s ({big['cpu_seconds']:.1f} CPU s): "
              f"{big['seconds'] / small['seconds']:.1f}x wall, "
              f"{big['cpu_seconds'] / small['cpu_seconds']:.1f}x CPU for {factor:g}x the records "
              f"(target <= {1.1 * factor:g}x)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
