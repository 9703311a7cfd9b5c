"""`execbench report`, `execbench compare`, `execbench analyze-log`.

Only argument declarations here: numpy, scipy and matplotlib are imported by the handlers, so
`execbench --help` stays fast. Exit status: 0 every check passed, 1 a check failed, 2 unusable
input.
"""

from __future__ import annotations

from pathlib import Path


def _report(args) -> int:
    from .api import analyze_run

    return analyze_run(args.run_dir, checks=args.checks)


def _compare(args) -> int:
    from .api import compare_runs

    return compare_runs(args.run_a, args.run_b, out_dir=args.out)


def _analyze_log(args) -> int:
    from .api import analyze_log

    return analyze_log(args.file, args.split_at, out_dir=args.out, checks=args.checks)


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
    p.set_defaults(handler=_report)

    p = subparsers.add_parser(
        "compare", help="two runs side by side (B relative to A)",
        description="Compare RUN_B with RUN_A phase by phase and flow by flow (Hodges-Lehmann "
                    "shift, Mann-Whitney, non-inferiority). Exit 1 when B is slower than A beyond "
                    "the margin somewhere, 2 for unusable input.")
    p.add_argument("run_a", type=Path, metavar="RUN_A")
    p.add_argument("run_b", type=Path, metavar="RUN_B")
    p.add_argument("--out", type=Path, default=None,
                   help="write compare.json and compare.html here (default: RUN_B/compare-<A>)")
    p.set_defaults(handler=_compare)

    p = subparsers.add_parser(
        "analyze-log", help="before/after a deploy time in a production timing log",
        description="Read a timing log in the seed's format (JSONL) and compare the records before "
                    "and after --split-at with the same statistics, checks and report.")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--split-at", required=True, metavar="ISO_TIME",
                   help="the deploy time, ISO-8601 (UTC if no offset), e.g. 2026-11-25T12:00:00Z")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default: FILE's directory / <stem>-analysis)")
    p.add_argument("--checks", default=None, metavar="FILE",
                   help="a TOML file of [[checks]] to judge the log on (default: the seed's "
                        "claims, reference/checks/seed-claims.toml); 'none' for none")
    p.set_defaults(handler=_analyze_log)
