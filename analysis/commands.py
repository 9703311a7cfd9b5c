"""`execbench report`, `execbench compare`, `execbench analyze-log`.

Only argument declarations here: numpy, scipy and matplotlib are imported by the handlers, so
`execbench --help` stays fast. Exit status: 0 every check passed, 1 a check failed, 3 a check
undecided (inconclusive), 2 unusable input.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _report(args) -> int:
    from .api import analyze_run

    return analyze_run(args.run_dir, checks=args.checks, plots=not args.no_plots)


def _margin(text: str) -> float:
    v = float(text)
    if not 0 < v < 100:
        raise argparse.ArgumentTypeError(f"a margin in percent between 0 and 100, not {text}")
    return v


def _fraction(text: str) -> float:
    v = float(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"a quantile between 0 and 1 (exclusive), not {text}")
    return v


def _compare(args) -> int:
    from .api import compare_runs

    return compare_runs(args.run_a, args.run_b, out_dir=args.out, margin_pct=args.margin,
                        quantiles=tuple(args.q or (0.5,)))


def _analyze_log(args) -> int:
    from .api import EXIT_UNUSABLE, analyze_log

    files = args.files
    if len(files) > 2 or (len(files) == 2) == (args.split_at is not None):
        import sys

        print("execbench analyze-log: error: give FILE --split-at TIME, or two files BEFORE AFTER "
              "(no --split-at)", file=sys.stderr)
        return EXIT_UNUSABLE
    return analyze_log(files[0], args.split_at, after=files[1] if len(files) == 2 else None,
                       out_dir=args.out, checks=args.checks, component=args.component,
                       endpoint=args.endpoint, where=args.where or (),
                       flow_field=args.flow_field, metric=args.metric, ts_field=args.ts_field,
                       plots=not args.no_plots)


def _no_plots(p) -> None:
    p.add_argument("--no-plots", action="store_true",
                   help="write summary.json and report.html without drawing the figures (most "
                        "of a small report's time: for a pipeline that reads the verdict)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="analyse a run directory: summary.json, report.html, verdict",
        description="Analyse RUN_DIR (timings, timeline, requests, ledger) and write summary.json, "
                    "report.html and plots/ into it. Exit 0 when every check passes, 1 when one "
                    "fails, 2 for unusable input.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--checks", default=None, metavar="FILE",
                   help="a TOML file of [[checks]] to apply besides the experiment's, instead of "
                        "the pack's own (a reference-pack run: the seed's claims, "
                        "reference/checks/seed-claims.toml); 'none' for none")
    _no_plots(p)
    p.set_defaults(handler=_report)

    p = subparsers.add_parser(
        "compare", help="two runs side by side (B relative to A)",
        description="Compare RUN_B with RUN_A phase by phase and flow by flow: quantiles with "
                    "their intervals, the Hodges-Lehmann shift, Mann-Whitney, and per judged "
                    "quantile an answer on the ratio B/A against 1 +- margin: better, equivalent, "
                    "worse or inconclusive. Exit 0 (better or equivalent everywhere), 1 (worse "
                    "somewhere), 3 (undecided somewhere), 2 (unusable input).")
    p.add_argument("run_a", type=Path, metavar="RUN_A")
    p.add_argument("run_b", type=Path, metavar="RUN_B")
    p.add_argument("--out", type=Path, default=None,
                   help="write compare.json and compare.html here (default: RUN_B/compare-<A>)")
    p.add_argument("--margin", type=_margin, default=None, metavar="PCT",
                   help="equivalence margin in percent of A's quantile, fixed before the data "
                        "(default 5)")
    p.add_argument("--q", type=_fraction, action="append", default=None, metavar="Q",
                   help="a quantile to judge, e.g. 0.5 or 0.95 (repeatable; default 0.5)")
    p.set_defaults(handler=_compare)

    p = subparsers.add_parser(
        "analyze-log", help="before/after a deploy in a production timing log (or two logs)",
        description="Read a timing log (JSONL, the seed's format or your own) and compare the "
                    "records before and after --split-at with the same statistics, checks and "
                    "report; or two logs, BEFORE AFTER, each one phase (no timestamps needed). "
                    "Lines left out are counted by reason (summary.json `excluded`).")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE",
                   help="one log with --split-at, or two (BEFORE AFTER) without it")
    p.add_argument("--split-at", default=None, metavar="TIME",
                   help="the deploy time: ISO 8601 (UTC if no offset), e.g. 2026-11-25T12:00:00Z, "
                        "or epoch seconds/milliseconds")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default: FILE's directory / <stem>-analysis)")
    p.add_argument("--checks", default=None, metavar="FILE",
                   help="a TOML file of [[checks]] (the experiment's check kinds) to judge the "
                        "log on (default: the seed's claims, reference/checks/seed-claims.toml); "
                        "'none' for none")
    p.add_argument("--component", default=None, metavar="NAME",
                   help="keep records of this component (default python_api; records without "
                        "`component` are kept unless this is given; '*' for any)")
    p.add_argument("--endpoint", default=None, metavar="NAME",
                   help="keep records of this endpoint (default orders/instant/execute; records "
                        "without `endpoint` are kept unless this is given; '*' for any)")
    p.add_argument("--where", action="append", default=None, metavar="FIELD=VALUE",
                   help="keep records whose top-level FIELD is VALUE, as text (a number or "
                        "boolean by its JSON text: status_code=200, cached=true); repeatable, "
                        "all must hold")
    p.add_argument("--flow-field", default=None, metavar="NAME",
                   help="the field that names the flow (default flow)")
    p.add_argument("--metric", default=None, metavar="NAME",
                   help="the metric analysed: a durations_ms key or a top-level number "
                        "(default executor_ms)")
    p.add_argument("--ts-field", default=None, metavar="NAME",
                   help="the timestamp field (default: the first present of ts, timestamp, "
                        "time, @timestamp); ISO 8601, epoch seconds or milliseconds")
    _no_plots(p)
    p.set_defaults(handler=_analyze_log)
