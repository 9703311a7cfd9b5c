"""How long `execbench report` takes on a quick run, and where the time goes.

    .venv/bin/python benchmarks/report_bench.py [--records 1080] [--repeat 5] [--run DIR]

Writes a synthetic run of --records records (analysis.synthetic, the quick run's size by default;
or reports on --run DIR), then, each measurement in a fresh process, median of --repeat:

  total       `execbench report RUN` from exec to exit (interpreter start, imports, all of it),
              with the default plot workers, with EXECBENCH_PLOT_WORKERS=1 and with --no-plots
  imports     what the report imports, split as: the analysis modules (numpy, orjson, rich...),
              then scipy.special, then matplotlib.pyplot (imported up front in this child, so the
              phases below exclude them)
  stats       load_run + build_summary (ingest, statistics, checks)
  plots       analysis.plots.make_plots, one worker per CPU and 1 worker
  html        summary.json, report.html and the terminal table

Figures are printed, never asserted (issue 16 asks for a quick report <= 1.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATE = ("import sys; from analysis.synthetic import RunSpec, write_run; "
            "write_run(sys.argv[1], RunSpec(records=int(sys.argv[2])))")
WORKERS = "from analysis.plots import plot_workers; print(plot_workers())"
EXECBENCH = Path(sys.executable).with_name("execbench")

PHASES = r"""
import io, json, sys, time
t = [time.perf_counter()]
def lap():
    t.append(time.perf_counter()); return t[-1] - t[-2]
out = {}
from pathlib import Path
from rich.console import Console
from analysis.api import load_run, write_outputs
from analysis.core import build_summary
from analysis.plots import make_plots
from analysis.terminal import print_summary
out["import_analysis"] = lap()
import scipy.special  # noqa: F401  (the statistics import it on the first interval)
out["import_scipy"] = lap()
import matplotlib.pyplot  # noqa: F401  (the plots import it)
out["import_pyplot"] = lap()
run = Path(sys.argv[1])
a = load_run(run)
build_summary(a)
out["stats"] = lap()
tmp = Path(sys.argv[2])
make_plots(a, tmp / "p1", [], workers=1)
out["plots_1"] = lap()
import os
make_plots(a, tmp / "pn", [], workers=len(os.sched_getaffinity(0)))
out["plots_n"] = lap()
write_outputs(a, tmp / "out", title="bench")  # plots again (default workers), report, summary
out["write_outputs"] = lap()
print_summary(a.summary, Console(file=io.StringIO(), width=160))
out["table"] = lap()
print(json.dumps(out))
"""


def total(run: Path, workers: str | None, *extra: str) -> float:
    env = dict(os.environ)
    if workers is not None:
        env["EXECBENCH_PLOT_WORKERS"] = workers
    t = time.perf_counter()
    subprocess.run([str(EXECBENCH), "report", *extra, str(run)], cwd=REPO, env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1080)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--run", type=Path, default=None, help="report on this run directory")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="execbench-report-bench-") as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "qr"
            subprocess.run([sys.executable, "-c", GENERATE, str(run), str(args.records)],
                           cwd=REPO, check=True)
        total(run, None)  # warm the page cache and __pycache__
        rows: dict[str, list[float]] = {}
        for i in range(args.repeat):
            rows.setdefault("total", []).append(total(run, None))
            rows.setdefault("total_1", []).append(total(run, "1"))
            rows.setdefault("total_bare", []).append(total(run, None, "--no-plots"))
            work = Path(tmp) / f"phases{i}"
            res = subprocess.run([sys.executable, "-c", PHASES, str(run), str(work)], cwd=REPO,
                                 capture_output=True, text=True, check=True)
            for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items():
                rows.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in rows.items()}
    workers = subprocess.run([sys.executable, "-c", WORKERS], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average "
          f"{os.getloadavg()[0]:.2f}; run: {run if args.run else f'{args.records} records'}; "
          f"median of {args.repeat}")
    imports = med["import_analysis"] + med["import_scipy"] + med["import_pyplot"]
    lines = [
        ("total, execbench report", med["total"],
         f"exec to exit, default plot workers ({workers} at this load)"),
        ("total, 1 plot worker", med["total_1"], "EXECBENCH_PLOT_WORKERS=1"),
        ("total, --no-plots", med["total_bare"], "summary.json, report.html, table; no figure"),
        ("imports", imports, "the three below"),
        ("  analysis modules", med["import_analysis"], "numpy, orjson, rich, analysis.*"),
        ("  scipy.special", med["import_scipy"], "after the above"),
        ("  matplotlib.pyplot", med["import_pyplot"], "after the above"),
        ("stats", med["stats"], "load_run + build_summary"),
        ("plots, one per CPU", med["plots_n"], f"make_plots(workers={os.cpu_count()})"),
        ("plots, 1 worker", med["plots_1"], "make_plots(workers=1)"),
        ("html + summary + plots", med["write_outputs"], "write_outputs (default workers)"),
        ("table", med["table"], "print_summary"),
    ]
    for name, v, note in lines:
        print(f"{name:<26} {v:6.2f} s  {note}")
    print(f"target: total <= 1.5 s; measured {med['total']:.2f} s, {med['total_bare']:.2f} s "
          "with --no-plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
