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
    # the seed's claims are about provider-skip-ab's phases; a factorial run (latency-plan)
    # judges its cells with its own checks and its latency_plan section
    a.checks_file = checks_file(checks, reference=a.reference and a.factorial is None)
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

    from execbench.console import error_prefix

    console.print(f"[bold red]{error_prefix()}[/] unusable input: {escape(str(exc))}")
    return EXIT_UNUSABLE


def _isnan(a):
    import numpy as np

    return np.isnan(a)


def write_outputs(a, out_dir: Path, console=None, *, title: str, plots: bool = True) -> Outputs:
    """summary.json, report.html and (unless `plots` is False: `--no-plots`) plots/*.svg."""
    from .plots import make_plots
    from .report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "summary.json"
    summary_path.write_bytes(
        orjson.dumps(a.summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                     default=_json_default))
    plots_dir = out_dir / "plots"
    errors: list[str] = []
    drawn = make_plots(a, plots_dir, errors) if plots else {}
    report_path = out_dir / "report.html"
    write_report(a, drawn, report_path, title=title, errors=errors, drawn=plots)
    if errors and console is not None:
        for e in errors:
            console.print(f"[yellow]warning:[/] {e}")
    return Outputs(summary_path, report_path, plots_dir)


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return
    raise TypeError


def analyze_run(run_dir: Path, *, console=None, checks=None, plots: bool = True) -> int:
    """Analyse a run directory: write summary.json, report.html and plots/ into it, print the
    terminal table, return the exit status (0 pass, 1 a check failed, 2 unusable input).
    `checks`: None (the pack's own: the seed's claims for a reference-pack run), "none", or the
    path of a checks file. `plots` False: no figures (`--no-plots`), the rest the same."""
    from .core import build_summary
    from .terminal import print_summary

    console = _console(console)
    try:
        a = load_run(Path(run_dir), checks=checks)
    except UnusableInput as exc:
        return _unusable(console, exc)
    build_summary(a)
    out = write_outputs(a, Path(run_dir), console, title=f"execbench report: {Path(run_dir).name}",
                        plots=plots)
    print_summary(a.summary, console)
    console.print(f"summary: {Path(out.summary_path).resolve()}\nreport:  {Path(out.report_path).resolve()}")
    return EXIT_CODES[a.summary["verdict"]]


def parse_split(value: str) -> float:
    from .ingest import parse_log_time

    try:
        return parse_log_time(value)
    except (ValueError, TypeError, OverflowError):
        raise UnusableInput(f"--split-at {value!r} is not a time (ISO 8601, or epoch seconds or "
                            "milliseconds)") from None


def log_selection(*, component: str | None = None, endpoint: str | None = None, where=(),
                  flow_field: str | None = None, metric: str | None = None,
                  ts_field: str | None = None):
    """The records of a log `analyze-log` analyses (analysis/ingest.py `LogSelection`): None
    for an option not given (its default: component `python_api`, endpoint
    `orders/instant/execute`, each keeping records without the field; flow `flow`, metric
    `executor_ms`, the timestamp detected). `where`: "FIELD=VALUE" strings (or pairs)."""
    from .ingest import DEFAULT_COMPONENT, DEFAULT_ENDPOINT, LogSelection

    pairs = []
    for w in [where] if isinstance(where, str) else where or ():
        if isinstance(w, str):
            field, sep, value = w.partition("=")
            if not sep or not field.strip():
                raise UnusableInput(f"--where {w!r}: expected FIELD=VALUE")
            pairs.append((field.strip(), value))
        else:
            field, value = w
            pairs.append((str(field), str(value)))
    for name, v in (("--flow-field", flow_field), ("--metric", metric), ("--ts-field", ts_field),
                    ("--component", component), ("--endpoint", endpoint)):
        if v is not None and not str(v).strip():
            raise UnusableInput(f"{name}: empty")
    return LogSelection(
        component=DEFAULT_COMPONENT if component is None else component,
        component_explicit=component is not None,
        endpoint=DEFAULT_ENDPOINT if endpoint is None else endpoint,
        endpoint_explicit=endpoint is not None,
        where=tuple(pairs), flow_field=flow_field or "flow", metric=metric or "executor_ms",
        ts_field=ts_field or None)


def _reasons_text(excluded: dict) -> str:
    items = sorted(excluded.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v}" for k, v in items) or "none"


def _no_log_records(path: Path, info: dict, read, sel) -> UnusableInput:
    """Why a log gave no record: the lines excluded by reason, the first malformed ones, and
    what the selection and the timestamp detection looked for."""
    from .ingest import MALFORMED_REASONS

    excluded = info["excluded"]
    shown = {k: v for k, v in excluded.items() if k != "blank_line"}
    if not shown:
        return UnusableInput(f"{path}: no records (the file is empty or blank)")
    lines = []
    if all(k in MALFORMED_REASONS for k in shown):
        text = str(_no_valid_records(path, read.table))
    else:
        text = f"{path}: no record left to analyse ({info['lines']} lines)"
        d = sel.as_dict()
        lines.append(f"selection: component {d['component'] or 'any'}, endpoint "
                     f"{d['endpoint'] or 'any'}"
                     + (f", where {' and '.join(d['where'])}" if d["where"] else "")
                     + " (--component/--endpoint '*' take any)")
        lines += [f"line {n}: {r}" for n, r in read.table.malformed.examples[:5]]
    lines.insert(0, f"excluded by reason: {_reasons_text(shown)}")
    if "no_timestamp" in shown or "bad_timestamp" in shown:
        lines.append("no usable timestamp; fields tried: " + ", ".join(sel.ts_fields)
                     + " (ISO 8601, epoch seconds or milliseconds)")
        lines.append("name the field with --ts-field; logs without timestamps: "
                     "analyze-log BEFORE.log AFTER.log")
    if "no_metric" in shown:
        lines.append(f"metric {sel.metric!r}: not a durations_ms key or top-level number of "
                     "these records (--metric)")
    if "no_flow" in shown:
        lines.append(f"flow field {sel.flow_field!r}: absent (--flow-field)")
    return UnusableInput(text + "".join(f"\n  {x}" for x in lines))


def _log_analysis_class():
    from execbench.contract import METRICS

    from .core import Analysis

    class LogAnalysis(Analysis):
        """A log's metrics: the one it is analysed on (--metric) first, then the
        `durations_ms` stages it reports."""

        def _metrics(self) -> list[str]:
            from .ingest import has_values

            fl = self.timings.floats
            names = dict.fromkeys((self.primary, *METRICS))
            return [m for m in names if has_values(fl, m)]

    return LogAnalysis


def load_log(path: Path, split: float | None = None, *, checks=None, after: Path | None = None,
             selection=None):
    """A timing log as an Analysis with phases `before` and `after`: one file split at
    `split` (epoch seconds; its records need a timestamp), or two files (`path` before,
    `after` after; timestamps optional). `selection`: `log_selection(...)` (default: the
    note's executor records). The lines left out are counted by reason (`a.log["excluded"]`)."""
    import dataclasses

    import numpy as np

    from .core import Settings
    from .engine import read_log_any
    from .phases import PhaseWindow, attribute, split_windows

    path = Path(path)
    files = [path] if after is None else [path, Path(after)]
    for p in files:
        if not p.is_file():
            raise UnusableInput(f"{p}: no such file")
    if after is None and split is None:
        raise UnusableInput("one log needs --split-at TIME; or give two files, BEFORE AFTER")
    if after is not None and split is not None:
        raise UnusableInput("two files are the two phases: --split-at is for one file")
    sel = dataclasses.replace(selection or log_selection(), need_ts=after is None)
    try:
        read, engine = read_log_any(files, sel)
    except ValueError as exc:
        raise UnusableInput(f"{' + '.join(str(p) for p in files)}: {exc}") from None
    timings = read.table
    for p, info in zip(files, read.files):
        if info["records"] == 0:
            raise _no_log_records(p, info, read, sel)
    notes = []
    ts = timings.times["ts"]
    time_axis = "timestamps"
    if after is None:
        lo, hi = float(ts.min()), float(ts.max())
        if not lo < split <= hi:
            raise UnusableInput("--split-at is outside the log's time range")
        windows = split_windows(lo, hi, split)
    else:
        first = read.file_index == 0
        tb, ta = ts[first], ts[~first]
        if not _isnan(ts).any() and float(tb.max()) < float(ta.min()):
            windows = split_windows(float(tb.min()), float(ta.max()), float(ta.min()))
        else:
            # no timestamps (the note's format), or files that overlap in time: the records
            # are placed by their order, before's first; no time is read from them
            time_axis = "record order"
            nb, n = int(first.sum()), timings.n
            timings.times["ts"] = np.arange(n, dtype=np.float64)
            windows = [PhaseWindow("before", None, True, 0.0, float(nb), source="file"),
                       PhaseWindow("after", None, True, float(nb), float(n), source="file")]
            notes.append("two files without timestamps in every record (or overlapping in "
                         "time): each file is its phase, records placed by their order; the "
                         "time axis counts records, not seconds, and no recovery is dated")
    attribution = attribute(timings, windows)
    attribution.notes += notes
    for w in windows:
        if attribution.counts[w.name]["kept"] == 0:
            raise UnusableInput(f"no records {w.name} the split")
    a = _log_analysis_class()("log", " + ".join(str(p) for p in files), timings, attribution,
                              Settings(), None, None, None)
    a.primary = sel.metric
    # a timing log in the seed's format is the reference executor's: its claims by default
    a.checks_file = checks_file(checks, reference=True)
    a.log = {"files": read.files, "selection": sel.as_dict(),
             "lines": sum(f["lines"] for f in read.files), "records": timings.n,
             "excluded": read.excluded, "excluded_first_lines": read.examples,
             "ts_fields": read.ts_fields, "time_axis": time_axis, "engine": engine}
    return a


def _compare_primary(a) -> None:
    """The comparisons (and the checks quoting them) on the log's own metric when it is not
    `executor_ms` (the only one the run comparisons make from a timing log)."""
    from . import stats
    from .checks import evaluate, run_verdict

    s = a.summary
    metric = a.primary
    if metric == "executor_ms":
        return
    roles = s["roles"]
    for c in s["comparisons"]:
        for flow in a.flows():
            margin = a.settings.local_margin_pct if (a.reference and flow == "local"
                                                     and c["phase"] != roles["rollback"]) \
                else a.settings.rollback_margin_pct
            x, y = a.values(c["ref"], flow, metric), a.values(c["phase"], flow, metric)
            if len(x) and len(y):
                c["flows"].setdefault(flow, {})[metric] = stats.compare_samples(
                    x, y, margin_pct=margin)
    s["checks"], s["findings"] = evaluate(a, s)
    s["verdict"] = run_verdict(s["checks"])


def analyze_log(path: Path, split_at: str | None = None, *, after: Path | None = None,
                out_dir: Path | None = None, console=None, checks=None, component=None,
                endpoint=None, where=(), flow_field=None, metric=None, ts_field=None,
                plots: bool = True) -> int:
    """Before/after in a timing log: `split_at` a time in one file, or two files (`path`
    before, `after` after). `checks`: None (the seed's claims, reference/checks/
    seed-claims.toml), "none", or the path of a checks file applied instead (the
    experiment's check kinds). The selection options: see `log_selection`."""
    from .core import build_summary
    from .terminal import print_summary

    console = _console(console)
    path = Path(path)
    try:
        sel = log_selection(component=component, endpoint=endpoint, where=where,
                            flow_field=flow_field, metric=metric, ts_field=ts_field)
        split = parse_split(split_at) if split_at is not None else None
        a = load_log(path, split, checks=checks, after=after, selection=sel)
    except UnusableInput as exc:
        return _unusable(console, exc)
    build_summary(a)
    _compare_primary(a)
    s = a.summary
    if split_at is not None:
        s["split_at"] = split_at
    s["excluded"] = a.log["excluded"]
    s["log"] = a.log
    if a.log["time_axis"] == "record order":
        for info in s["phase_info"].values():
            info.update(start=None, end=None, duration_s=None, throughput_rps=None)
    out_dir = Path(out_dir) if out_dir else path.parent / f"{path.stem}-analysis"
    out = write_outputs(a, out_dir, console, title=f"execbench log analysis: {path.name}"
                        + (f" vs {Path(after).name}" if after is not None else ""), plots=plots)
    print_summary(s, console)
    console.print(excluded_line(s), highlight=False)
    console.print(f"summary: {Path(out.summary_path).resolve()}\nreport:  {Path(out.report_path).resolve()}")
    return EXIT_CODES[s["verdict"]]


def excluded_line(summary: dict) -> str:
    """The terminal's account of a log's lines: records kept, lines excluded by reason."""
    log = summary.get("log") or {}
    return (f"log lines: {log.get('lines', '?')}, records {log.get('records', '?')}; excluded: "
            f"{_reasons_text(summary.get('excluded') or {})}")


def compare_runs(run_a: Path, run_b: Path, *, out_dir: Path | None = None, console=None,
                 margin_pct: float | None = None, quantiles: tuple[float, ...] = (0.5,)) -> int:
    """Two runs side by side: each phase both have, per flow, B relative to A, answered better /
    equivalent / worse / inconclusive per judged quantile against +-margin_pct (analysis/compare.py);
    exit 1 when B is worse somewhere, 3 when something is undecided, else 0."""
    from .compare import compare_analyses

    console = _console(console)
    try:
        a = load_run(Path(run_a))
        b = load_run(Path(run_b))
    except UnusableInput as exc:
        return _unusable(console, exc)
    return compare_analyses(a, b, out_dir=out_dir, console=console, margin_pct=margin_pct,
                            quantiles=quantiles)
