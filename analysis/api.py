"""Stable entry points: `analyze_run` (called by `execbench demo` and `execbench report`),
`analyze_log` (`execbench analyze-log`) and `compare_runs` (`execbench compare`).

Exit status: 0 every check passed, 1 a check failed, 2 unusable input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import orjson

EXIT_PASS, EXIT_FAIL, EXIT_UNUSABLE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
EXIT_CODES = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "inconclusive": EXIT_INCONCLUSIVE}


class UnusableInput(Exception):
    """The input cannot be analysed (missing files, no valid records, no phases)."""


@dataclass
class Outputs:
    summary_path: Path
    report_path: Path
    plots_dir: Path


def _console(console):
    if console is None:
        from execbench.console import make_console

        console = make_console()
    return console


def _read_ledger(path: Path, notes: list[str]) -> dict | None:
    if not path.exists():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        notes.append(f"ledger.json is not valid JSON ({exc}); safety not verified")
        return None
    if not isinstance(data, dict):
        notes.append("ledger.json is not an object; safety not verified")
        return None
    return data


DEFAULT_CHECKS = "default"  # the pack's own checks file (the reference pack: the seed's claims)


def checks_file(choice, *, reference: bool):
    """The checks file to apply besides the experiment's: `choice` None or "default" -> the
    reference pack's seed claims when `reference`, else none; "none" -> none; a path -> that
    file (UnusableInput when it cannot be read)."""
    from .checks import default_checks_path, load_checks_file

    if choice is None or str(choice) == DEFAULT_CHECKS:
        path = default_checks_path() if reference else None
        if reference and path is None:
            raise UnusableInput("the reference pack's checks (reference/checks/seed-claims.toml)"
                                " are not installed: pass --checks FILE or --checks none")
    elif str(choice) == "none":
        path = None
    else:
        path = Path(choice)
        if not path.is_file():
            raise UnusableInput(f"--checks {choice}: no such file")
    if path is None:
        return None
    try:
        return load_checks_file(path)
    except ValueError as exc:
        raise UnusableInput(f"checks file {exc}") from None


def load_run(run_dir: Path, *, checks=None):
    """Ingest a run directory into an Analysis (not yet summarised). `checks`: see
    `checks_file`. A run without timings.jsonl is analysed from its client records."""
    from execbench import rundir as rd

    from .core import CLIENT_ONLY_NOTE, Analysis, Settings
    from .ingest import (
        as_records,
        read_ledger_samples,
        read_provider_events,
        read_requests,
        read_timeline,
        read_timings,
    )
    from .phases import attribute, windows_from_timeline
    from .spec import SpecError, load_spec

    run = rd.RunDir(run_dir)
    run_dir = run.path
    if not run_dir.is_dir():
        raise UnusableInput(f"{run_dir}: not a directory")
    timings_path = run.timings
    client_only = not timings_path.exists()
    if client_only and not run.requests.exists():
        raise UnusableInput(f"{run_dir}: no {rd.TIMINGS} and no {rd.REQUESTS}")
    notes: list[str] = []
    spec = None
    if run.experiment.exists():
        try:
            spec = load_spec(run.experiment)
        except SpecError as exc:
            raise UnusableInput(f"{rd.EXPERIMENT}: {exc}") from None
    else:
        notes.append(f"no {rd.EXPERIMENT}: phases from the timeline only")
    requests = None
    if client_only:
        requests = read_requests(run.requests, timed=True)
        if requests.n == 0:
            raise _no_valid_records(run.requests, requests)
        timings = as_records(requests)
        notes.append(CLIENT_ONLY_NOTE)
    else:
        timings = read_timings(timings_path)
        if timings.n == 0:
            raise _no_valid_records(timings_path, timings)
        if run.requests.exists():
            requests = read_requests(run.requests)
    events: list[dict] = []
    if run.timeline.exists():
        events, tl_bad = read_timeline(run.timeline)
        if tl_bad.count:
            notes.append(f"{rd.TIMELINE}: {tl_bad.count} malformed lines skipped")
    else:
        notes.append(f"no {rd.TIMELINE}")
    ts = timings.times["ts"]
    finite = ts[~_isnan(ts)]
    if len(finite) == 0:
        raise UnusableInput(f"{run.requests if client_only else timings_path}: no record has "
                            "a timestamp")
    windows, wnotes = windows_from_timeline(spec, events, float(finite.min()),
                                            float(finite.max()))
    notes += wnotes
    if not any(w.analysed for w in windows):
        raise UnusableInput(f"{run_dir}: no analysed phase (timeline and spec give none)")
    attribution = attribute(timings, windows)
    attribution.notes += notes
    if not attribution.kept.any():
        raise UnusableInput(f"{run_dir}: no record falls in an analysed phase")
    a = Analysis("run", str(run_dir), timings, attribution, Settings.from_spec(spec), spec,
                 requests, _read_ledger(run.ledger, notes))
    a.client_only = client_only
    a.primary = rd.R_LATENCY_MS if client_only else "executor_ms"
    a.reference = spec.reference if spec is not None else True
    a.checks_file = checks_file(checks, reference=a.reference)
    if run.timeline.exists():
        a.provider_events = read_provider_events(run.timeline)
        a.ledger_samples = read_ledger_samples(run.timeline)
    return a


def _no_valid_records(path: Path, timings, shown: int = 5) -> UnusableInput:
    """Why a file gave no record: its first malformed lines with their reasons."""
    mal = timings.malformed
    if mal.count == 0:
        return UnusableInput(f"{path}: no records (the file is empty or blank)")
    lines = [f"  line {n}: {reason}" for n, reason in mal.examples[:shown]]
    if mal.count > len(lines):
        lines.append(f"  ... and {mal.count - len(lines)} more")
    return UnusableInput(f"{path}: no valid records ({mal.count} malformed lines):\n"
                         + "\n".join(lines))


def _unusable(console, exc: UnusableInput) -> int:
    from rich.markup import escape

    console.print(f"[bold red]unusable input:[/] {escape(str(exc))}")
    return EXIT_UNUSABLE


def _isnan(a):
    import numpy as np

    return np.isnan(a)


def write_outputs(a, out_dir: Path, console=None, *, title: str) -> Outputs:
    from .plots import make_plots
    from .report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "summary.json"
    summary_path.write_bytes(
        orjson.dumps(a.summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                     default=_json_default))
    plots_dir = out_dir / "plots"
    errors: list[str] = []
    plots = make_plots(a, plots_dir, errors)
    report_path = out_dir / "report.html"
    write_report(a, plots, report_path, title=title, errors=errors)
    if errors and console is not None:
        for e in errors:
            console.print(f"[yellow]warning:[/] {e}")
    return Outputs(summary_path, report_path, plots_dir)


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return
    raise TypeError


def analyze_run(run_dir: Path, *, console=None, checks=None) -> int:
    """Analyse a run directory: write summary.json, report.html and plots/ into it, print the
    terminal table, return the exit status (0 pass, 1 a check failed, 2 unusable input).
    `checks`: None (the pack's own: the seed's claims for a reference-pack run), "none", or the
    path of a checks file."""
    from .core import build_summary
    from .terminal import print_summary

    console = _console(console)
    try:
        a = load_run(Path(run_dir), checks=checks)
    except UnusableInput as exc:
        return _unusable(console, exc)
    build_summary(a)
    out = write_outputs(a, Path(run_dir), console, title=f"execbench report: {Path(run_dir).name}")
    print_summary(a.summary, console)
    console.print(f"summary: {out.summary_path}\nreport:  {out.report_path}")
    return EXIT_CODES[a.summary["verdict"]]


def parse_split(value: str) -> float:
    from .ingest import _parse_one_time

    try:
        return _parse_one_time(value)
    except (ValueError, TypeError):
        raise UnusableInput(f"--split-at {value!r} is not an ISO-8601 time") from None


def load_log(path: Path, split: float, *, checks=None):
    from .core import Analysis, Settings
    from .ingest import read_timings
    from .phases import attribute, split_windows

    path = Path(path)
    if not path.is_file():
        raise UnusableInput(f"{path}: no such file")
    timings = read_timings(path)
    if timings.n == 0:
        raise _no_valid_records(path, timings)
    ts = timings.times["ts"]
    finite = ts[~_isnan(ts)]
    notes = []
    if len(finite) < timings.n:
        notes.append(f"{timings.n - len(finite)} records without ts cannot be placed and are left out")
    if len(finite) == 0:
        raise UnusableInput(f"{path}: no record has a timestamp")
    lo, hi = float(finite.min()), float(finite.max())
    if not lo < split <= hi:
        raise UnusableInput("--split-at is outside the log's time range")
    windows = split_windows(lo, hi, split)
    attribution = attribute(timings, windows)
    attribution.notes += notes
    for w in windows:
        if attribution.counts[w.name]["kept"] == 0:
            raise UnusableInput(f"no records {w.name} the split")
    a = Analysis("log", str(path), timings, attribution, Settings(), None, None, None)
    # a timing log in the seed's format is the reference executor's: its claims by default
    a.checks_file = checks_file(checks, reference=True)
    return a


def analyze_log(path: Path, split_at: str, *, out_dir: Path | None = None, console=None,
                checks=None) -> int:
    """`checks`: None (the seed's claims, reference/checks/seed-claims.toml), "none", or the
    path of a checks file applied instead."""
    from .core import build_summary
    from .terminal import print_summary

    console = _console(console)
    path = Path(path)
    try:
        a = load_log(path, parse_split(split_at), checks=checks)
    except UnusableInput as exc:
        return _unusable(console, exc)
    build_summary(a)
    a.summary["split_at"] = split_at
    out_dir = Path(out_dir) if out_dir else path.parent / f"{path.stem}-analysis"
    out = write_outputs(a, out_dir, console, title=f"execbench log analysis: {path.name}")
    print_summary(a.summary, console)
    console.print(f"summary: {out.summary_path}\nreport:  {out.report_path}")
    return EXIT_CODES[a.summary["verdict"]]


def compare_runs(run_a: Path, run_b: Path, *, out_dir: Path | None = None, console=None) -> int:
    """Two runs side by side: each phase both have, per flow, B relative to A. The check:
    B is not slower than A by more than the margin (non-inferiority: the upper bound of the 90%
    HL interval of B - A below +margin% of A's p50)."""
    from .compare import compare_analyses

    console = _console(console)
    try:
        a = load_run(Path(run_a))
        b = load_run(Path(run_b))
    except UnusableInput as exc:
        return _unusable(console, exc)
    return compare_analyses(a, b, out_dir=out_dir, console=console)
