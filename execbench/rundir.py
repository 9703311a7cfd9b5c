"""The run directory's format: one module that names its files, events and record fields, and
reads them back. The writer (loadtests/records.py) and every reader (analysis/, the demo, tests)
use these names, so the format is stated once in code and not only in prose (docs/DESIGN.md,
"Run directory records").

Stdlib and orjson only: a bottom-layer module, like execbench/contract.py, importable from any
package (the engine, the reference pack, the analysis of a run copied to another machine).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

# ---------------------------------------------------------------- files

EXPERIMENT = "experiment.toml"  # the spec, as run
TIMELINE = "timeline.jsonl"  # phases, flips, ledger samples, provider settings
REQUESTS = "requests.jsonl"  # client records, one per request
TIMINGS = "timings.jsonl"  # server timing log (the reference pack, or a user's own log); optional
# the gateway tier's timing log (component "gateway"), when the orders went through it; optional
GATEWAY_TIMINGS = "gateway.jsonl"
LEDGER = "ledger.json"  # the reference pack's safety ledger at the end of the run; optional
SUMMARY = "summary.json"  # written by the analysis
REPORT = "report.html"  # written by the analysis
PLOTS = "plots"  # directory of SVG plots, written by the analysis

# ---------------------------------------------------------------- timeline.jsonl

# every event: {"ts", "event", "phase", "mode", ...extra}
EV_RUN_START = "run_start"
EV_PHASE_START = "phase_start"
EV_PHASE_END = "phase_end"
EV_FLIP_REQUESTED = "flip_requested"
EV_FLIP_APPLIED = "flip_applied"
EV_FLIP_FAILED = "flip_failed"
EV_RUN_END = "run_end"
EV_LEDGER = "ledger"  # a sample of the reference ledger during the run (orders_nonterminal, ...)
EV_PROVIDER_SET = "provider_set"  # the reference provider's fault settings, {"provider": {...}}
# an on/off switch of the latency plan set at a phase start, {"switch", "value", "tier", "flip_ms"}
EV_SWITCH_APPLIED = "switch_applied"
EV_SWITCH_FAILED = "switch_failed"
EVENTS = (EV_RUN_START, EV_PHASE_START, EV_PHASE_END, EV_FLIP_REQUESTED, EV_FLIP_APPLIED,
          EV_FLIP_FAILED, EV_RUN_END, EV_LEDGER, EV_PROVIDER_SET, EV_SWITCH_APPLIED,
          EV_SWITCH_FAILED)
TIMELINE_FIELDS = ("ts", "event", "phase", "mode")
# run_end's extra fields about the ledger samples
RUN_END_LEDGER_SAMPLES = "ledger_samples"
RUN_END_LEDGER_FAILURES = "ledger_sample_failures"
RUN_END_LEDGER_INTERVAL = "ledger_interval_s"

# ---------------------------------------------------------------- requests.jsonl

R_INTENDED_TS = "intended_ts"
R_SENT_TS = "sent_ts"
R_LATENCY_MS = "latency_ms"  # from the actual send
R_LATENCY_FROM_INTENDED_MS = "latency_from_intended_ms"  # from the intended send (open model)
R_STATUS = "status"  # HTTP status code (a number), absent/null when no response came
R_OUTCOME = "outcome"  # one of OUTCOMES
R_FLOW = "flow"
R_NAME = "name"
R_PHASE = "phase"  # the phase the client was in at the intended send time
R_LATE = "late"  # true: sent more than load.late_ms after the intended time
R_SERVED_MODE = "served_mode"  # the mode the service reports it served in; null when unknown
R_SERVER_METRICS = "server_metrics"  # {"<name>_ms": number}: read from the response
REQUEST_FIELDS = (R_INTENDED_TS, R_SENT_TS, R_LATENCY_MS, R_LATENCY_FROM_INTENDED_MS, R_STATUS,
                  R_OUTCOME, R_FLOW, R_NAME, R_PHASE, R_LATE, R_SERVED_MODE, R_SERVER_METRICS)
OUTCOME_OK = "ok"
OUTCOME_REJECTED = "expected_rejection"  # a business rejection: counted apart, not an error
OUTCOME_FAILURE = "failure"
OUTCOMES = (OUTCOME_OK, OUTCOME_REJECTED, OUTCOME_FAILURE)
# the client metrics every request has (besides its server_metrics)
CLIENT_METRICS = (R_LATENCY_MS, R_LATENCY_FROM_INTENDED_MS)
METRIC_SUFFIX = "_ms"

# ---------------------------------------------------------------- timings.jsonl

T_TS = "ts"
T_STATUS = "status"  # one of TIMING_STATUSES
T_FLOW = "flow"
T_MODE = "mode"
T_DURATIONS = "durations_ms"  # {"executor_ms": ..., "<stage>_ms": ...}
TIMING_STATUSES = ("success", "rejected", "error")
# a client outcome as the timing log's status, for reading both kinds of record alike
STATUS_OF_OUTCOME = {OUTCOME_OK: "success", OUTCOME_REJECTED: "rejected",
                     OUTCOME_FAILURE: "error"}

# ---------------------------------------------------------------- experiment.toml: modes, roles, pack

REFERENCE_MODES = ("off", "skip", "skip_reserve")
REFERENCE_BASELINE = "off"
REFERENCE_TREATMENT = ("skip", "skip_reserve")
REFERENCE_PACK = "reference"


def server_metric_name(name: str) -> str:
    """The name a server metric is recorded under: always with the `_ms` suffix."""
    return name if name.endswith(METRIC_SUFFIX) else name + METRIC_SUFFIX


def is_reference_pack(spec: dict | None) -> bool:
    """No `[target]` table, or `[target] pack = "reference"`: the reference service's pack
    (ledger expected, the seed's claims apply). A `[target]` with `requests` is a generic HTTP
    target."""
    target = (spec or {}).get("target")
    if not isinstance(target, dict):
        return True
    return target.get("pack") == REFERENCE_PACK


def spec_modes(spec: dict | None) -> tuple[str, ...]:
    """`modes = [...]` (any variant names), or the reference pack's three."""
    modes = (spec or {}).get("modes")
    if isinstance(modes, list) and modes and all(isinstance(m, str) and m for m in modes):
        return tuple(modes)
    return REFERENCE_MODES


def spec_roles(spec: dict | None) -> tuple[str, tuple[str, ...]]:
    """(baseline mode, treatment modes) from `[roles]`: `baseline = "legacy"`, `treatment =
    "fast"` or an array. Without `[roles]`: the reference pack's `off` / `skip, skip_reserve`
    when the modes are the reference ones, else the first mode / the others. A missing key takes
    its default the same way (the treatment: every mode but the baseline)."""
    raw = spec or {}
    modes = spec_modes(raw)
    roles = raw.get("roles") if isinstance(raw.get("roles"), dict) else {}
    reference = modes == REFERENCE_MODES
    base = roles.get("baseline")
    if not isinstance(base, str) or not base:
        base = REFERENCE_BASELINE if reference else modes[0]
    treat = roles.get("treatment")
    if isinstance(treat, str) and treat:
        treatment: tuple[str, ...] = (treat,)
    elif isinstance(treat, list) and treat and all(isinstance(m, str) for m in treat):
        treatment = tuple(treat)
    elif reference and base == REFERENCE_BASELINE:
        treatment = REFERENCE_TREATMENT
    else:
        treatment = tuple(m for m in modes if m != base)
    return base, treatment


# ---------------------------------------------------------------- times

UTC = dt.UTC


def iso(ts: float) -> str:
    """Epoch seconds -> the format's time: ISO-8601 UTC with microseconds and `Z`."""
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    """ISO-8601 (with `Z` or an offset, any fraction length; naive = UTC) -> epoch seconds."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", text)
    if m:
        frac = (m.group(2) or "0")[:6].ljust(6, "0")
        text = f"{m.group(1)}.{frac}{m.group(3)}"
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


# ---------------------------------------------------------------- reading


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, in file order. Blank lines, lines that are not JSON
    (a torn last line of a file still being written) and lines that are not objects are
    skipped: use the analysis' columnar reader where every bad line must be counted."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """`iter_jsonl` as a list ([] when the file does not exist)."""
    return list(iter_jsonl(path))


def read_spec(path: Path) -> dict:
    """experiment.toml as a dict ({} when absent); tomllib.TOMLDecodeError when invalid."""
    path = Path(path)
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def read_json(path: Path) -> Any:
    """A JSON file (ledger.json, summary.json); None when absent; orjson.JSONDecodeError when
    invalid."""
    path = Path(path)
    if not path.exists():
        return None
    return orjson.loads(path.read_bytes())


class RunDir:
    """Paths of one run directory, and its small files read."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def experiment(self) -> Path:
        return self.path / EXPERIMENT

    @property
    def timeline(self) -> Path:
        return self.path / TIMELINE

    @property
    def requests(self) -> Path:
        return self.path / REQUESTS

    @property
    def timings(self) -> Path:
        return self.path / TIMINGS

    @property
    def gateway_timings(self) -> Path:
        return self.path / GATEWAY_TIMINGS

    @property
    def ledger(self) -> Path:
        return self.path / LEDGER

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def report(self) -> Path:
        return self.path / REPORT

    @property
    def plots(self) -> Path:
        return self.path / PLOTS

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    def spec(self) -> dict:
        return read_spec(self.experiment)

    def events(self, *kinds: str) -> list[dict[str, Any]]:
        """Timeline events (of these kinds, or all), in file order."""
        return [e for e in iter_jsonl(self.timeline) if not kinds or e.get("event") in kinds]
