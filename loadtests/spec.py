"""Experiment specs: load a TOML file, validate it, and say exactly what is wrong.

No Locust import here: the CLI, the analysis and the tests read specs without gevent.
The schema is documented in docs/loadtests.md; every error names the file, the field
(a dotted path such as `phases[2].duration_s`) and the problem.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from execbench.contract import METRICS as CONTRACT_METRICS
from execbench.contract import MODES, SYMBOLS

# Faults a phase may carry; applied at the phase start by the process that owns the service
# (`execbench demo`); `execbench run` only records them (it cannot restart a remote service).
FAULTS = ("kill_service",)
# The demo sets these itself: a spec's [service.env] may not override them.
DEMO_OWNED_ENV = ("EXECBENCH_DATABASE_URL", "EXECBENCH_ADMIN_TOKEN", "EXECBENCH_TIMING_LOG",
                  "EXECBENCH_PROFILE", "EXECBENCH_MODE")
SCENARIOS = ("trader_mix", "same_user_burst", "margin_edge")
FLOWS = ("provider", "local")
STAGE_METRICS = CONTRACT_METRICS
# Client-side metrics come from requests.jsonl, the others from the service's timings.jsonl.
CLIENT_METRICS = ("latency_ms", "latency_from_intended_ms")
METRICS = STAGE_METRICS + CLIENT_METRICS

# Role names a check may use wherever it names a phase (docs/loadtests.md "Roles").
ROLES = ("baseline", "treatment", "rollback")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FLAG_ADAPTERS = ("reference", "http", "command", "flagd")
# The reference pack's own check kinds: its ledger knows orders, over-commits, a capacity knee.
REFERENCE_CHECK_KINDS = ("overcommits", "no_orders_lost", "capacity_knee", "ledger_max")
# The latency plan's later steps (docs/provider-skip-step1.md Steps 2-4): on/off runtime switches
# of the reference executor (parallel_config) and of the gateway tier in front of it (keepalive,
# async_logging), set per phase (`[phases.switches]`) beside the provider_skip mode.
EXECUTOR_SWITCHES = ("parallel_config",)
GATEWAY_SWITCHES = ("keepalive", "async_logging")
SWITCHES = (*GATEWAY_SWITCHES, *EXECUTOR_SWITCHES)
# A factorial design's factors: provider_skip (the mode: off | skip) and the switches.
FACTORS = ("provider_skip", *SWITCHES)

# Per check kind: required fields, optional fields with defaults.
CHECK_KINDS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "quantile_between": (
        {"flow": "flow", "metric": "metric", "phase": "phase", "q": "quantile",
         "low": "number", "high": "number"},
        {},
    ),
    "quantile_below": (
        {"flow": "flow", "metric": "metric", "phase": "phase", "q": "quantile", "max": "number"},
        {},
    ),
    "reduction_at_least": (
        {"flow": "flow", "metric": "metric", "from": "phase", "to": "phase", "pct": "number"},
        {"q": 0.5},
    ),
    "equivalent": (
        {"flow": "flow", "metric": "metric", "phases": "phase_pair", "margin_pct": "number"},
        {"q": 0.5},
    ),
    "no_errors": ({}, {"phases": None, "max_failure_ratio": 0.0}),
    "error_rate_below": ({"max_ratio": "ratio"}, {"flow": None, "phase": None}),
    "overcommits": ({"mode": "mode", "max": "count"}, {}),
    "no_orders_lost": ({}, {}),
    "capacity_knee": (
        {"flow": "flow", "metric": "metric", "q": "quantile", "slo_ms": "number"},
        {"baseline_mode": "off"},
    ),
    # Also understood by the analysis (docs/analysis.md).
    "recovery_max_s": ({"max_s": "number"}, {"phase": None, "flow": None}),
    "ledger_max": ({"field": "string", "max": "number"}, {}),
}

LOAD_DEFAULTS: dict[str, Any] = {
    "model": "arrival",
    "arrival": "poisson",
    "users": 10,
    "think_s": 0.5,
    "generators": 1,
    "max_inflight": 256,
    "late_ms": 10.0,
    "timeout_s": 10.0,
    "drain_s": 2.0,
    "provider_share": 0.5,
    "client_order_ids": False,
    "retry_s": 0.0,
    # seconds between samples of GET /admin/ledger during the run (`ledger` timeline events);
    # 0 turns sampling off
    "ledger_interval_s": 1.0,
}
# Load keys of the reference pack's order scenarios and ledger; a generic target has none.
REFERENCE_LOAD_KEYS = ("mix", "scenarios", "provider_share", "client_order_ids", "retry_s",
                       "ledger_interval_s")
LEDGER_INTERVAL_MIN_S = 0.1  # each sample scans the orders table on the service
SCENARIO_DEFAULTS: dict[str, dict[str, Any]] = {
    "trader_mix": {"volume_min": 0.01, "volume_max": 0.05, "symbols": list(SYMBOLS)},
    "same_user_burst": {"burst_size": 4, "fraction": 0.4, "user_type": "live",
                        "symbols": ["EURUSD", "GBPUSD"]},
    "margin_edge": {"fractions": [0.5, 0.8, 1.25, 1.6], "user_type": "demo",
                    "symbols": ["EURUSD", "GBPUSD"]},
}


class SpecError(ValueError):
    """A spec problem, formatted `file: field: problem`."""

    def __init__(self, source: str, fieldname: str, problem: str):
        self.source, self.field, self.problem = source, fieldname, problem
        super().__init__(f"{source}: {fieldname}: {problem}")


@dataclass(frozen=True)
class Phase:
    name: str
    duration_s: float
    mode: str
    analyse: bool
    rate: float | None
    group: str
    provider: dict[str, Any] | None
    start_s: float = 0.0  # offset from the run's t0, computed
    fault: str | None = None
    switches: dict[str, str] | None = None  # name -> "on" | "off", set at the phase start
    block: int | None = None  # a factorial design's block (randomized order inside it)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass
class Experiment:
    name: str
    source: str
    data: dict[str, Any]  # the validated, defaults-filled document (what experiment.toml records)
    phases: list[Phase] = field(default_factory=list)

    @property
    def pack(self) -> str:
        """`reference` (the reference executor, the default) or `http` (a `[target]` with
        `requests`: any service)."""
        return self.data.get("target", {}).get("pack", "reference")

    @property
    def modes(self) -> list[str]:
        return self.data["modes"]

    @property
    def roles(self) -> dict[str, Any]:
        return self.data["roles"]

    @property
    def load(self) -> dict[str, Any]:
        return self.data["load"]

    @property
    def mix(self) -> dict[str, float]:
        """User class name -> weight: the reference scenarios, or the one generic HTTP user
        (which draws among `[[target.requests]]` by their weights)."""
        return self.load.get("mix") or {"requests": 1.0}

    @property
    def checks(self) -> list[dict[str, Any]]:
        return self.data.get("checks", [])

    @property
    def total_s(self) -> float:
        return self.phases[-1].end_s if self.phases else 0.0

    def phase_rate(self, phase: Phase) -> float:
        return phase.rate if phase.rate is not None else float(self.load.get("rate", 0.0))

    def schedule(self) -> list[dict[str, Any]]:
        """The phase list as plain data, as shipped to Locust workers."""
        return [
            {"name": p.name, "group": p.group, "start_s": p.start_s, "duration_s": p.duration_s,
             "mode": p.mode, "rate": self.phase_rate(p), "analyse": p.analyse,
             "provider": p.provider, "fault": p.fault, "switches": p.switches, "block": p.block}
            for p in self.phases
        ]

    @property
    def gateway(self) -> dict[str, Any] | None:
        """`[gateway]`: the orders go through the gateway tier (the reference pack only)."""
        return self.data.get("gateway")

    @property
    def factorial(self) -> dict[str, Any] | None:
        return self.data.get("factorial")


def experiments_dir() -> Path:
    return Path(str(resources.files("loadtests") / "experiments"))


def available() -> list[str]:
    return sorted(p.stem for p in experiments_dir().glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """A bundled experiment name (`provider-skip-ab`) or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists() or "/" in name_or_path:
        if not path.is_file():
            raise SpecError(str(path), "(file)", "no such file")
        return path
    bundled = experiments_dir() / f"{name_or_path}.toml"
    if not bundled.is_file():
        raise SpecError(
            name_or_path, "(name)",
            f"no bundled experiment of that name; available: {', '.join(available())}",
        )
    return bundled


def load(name_or_path: str, *, duration_scale: float = 1.0) -> Experiment:
    path = resolve(name_or_path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), "(syntax)", f"not valid TOML: {exc}") from None
    return validate(doc, str(path), duration_scale=duration_scale)


# --- validation ---------------------------------------------------------------------------


class _V:
    def __init__(self, source: str):
        self.source = source

    def fail(self, fieldname: str, problem: str):
        raise SpecError(self.source, fieldname, problem)

    def table(self, value, fieldname) -> dict:
        if not isinstance(value, dict):
            self.fail(fieldname, f"must be a table, got {_show(value)}")
        return value

    def keys(self, table: dict, fieldname: str, allowed) -> None:
        for key in table:
            if key not in allowed:
                where = f"{fieldname}.{key}" if fieldname else key
                self.fail(where, f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def string(self, value, fieldname, choices=None, pattern=None) -> str:
        if not isinstance(value, str) or not value:
            self.fail(fieldname, f"must be a non-empty string, got {_show(value)}")
        if choices is not None and value not in choices:
            self.fail(fieldname, f"must be one of {', '.join(choices)}, got {value!r}")
        if pattern is not None and not re.fullmatch(pattern, value):
            self.fail(fieldname, f"must match {pattern}, got {value!r}")
        return value

    def number(self, value, fieldname, *, low=None, high=None, low_open=False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(fieldname, f"must be a finite number, got {_show(value)}")
        if low is not None and (value <= low if low_open else value < low):
            self.fail(fieldname, f"must be {'>' if low_open else '>='} {low}, got {value}")
        if high is not None and value > high:
            self.fail(fieldname, f"must be <= {high}, got {value}")
        return float(value)

    def integer(self, value, fieldname, *, low=None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(fieldname, f"must be an integer, got {_show(value)}")
        if low is not None and value < low:
            self.fail(fieldname, f"must be >= {low}, got {value}")
        return value

    def boolean(self, value, fieldname) -> bool:
        if not isinstance(value, bool):
            self.fail(fieldname, f"must be true or false, got {_show(value)}")
        return value


def _show(value) -> str:
    kind = {dict: "a table", list: "an array", bool: "a boolean", str: "a string",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
    return f"{kind} ({value!r})" if not isinstance(value, (dict, list)) else kind


def validate(doc: dict[str, Any], source: str, *, duration_scale: float = 1.0) -> Experiment:
    v = _V(source)
    doc = copy.deepcopy(doc)
    v.keys(doc, "", {"name", "description", "profile", "load", "phases", "checks", "analysis",
                     "service", "modes", "roles", "target", "flag", "gateway", "factorial"})
    if "analysis" in doc:  # the analysis' own settings (docs/analysis.md), passed through as is
        v.table(doc["analysis"], "analysis")
    name = v.string(doc.get("name"), "name", pattern=r"[a-z0-9][a-z0-9_-]*")
    if "description" in doc:
        v.string(doc["description"], "description")
    doc["profile"] = v.string(doc.get("profile", "seed"), "profile")

    target = _validate_target(v, doc.get("target", {}))
    doc["target"] = target
    pack = target["pack"]
    load = _validate_load(v, doc.get("load", {}), pack)
    doc["load"] = load
    if "service" in doc:
        if pack != "reference":
            v.fail("service", "only for the reference pack (how `execbench demo` starts it)")
        doc["service"] = _validate_service(v, doc["service"])
    modes = _validate_modes(v, doc, pack)
    if "gateway" in doc:
        if pack != "reference":
            v.fail("gateway", "only for the reference pack (the gateway tier in front of the "
                              "reference executor)")
        doc["gateway"] = _validate_gateway(v, doc["gateway"])
    if "factorial" in doc:
        doc["factorial"] = _validate_factorial(v, doc["factorial"], doc, pack)
        if "phases" not in doc:
            doc["phases"] = factorial_phases(doc["factorial"])

    raw_phases = doc.get("phases")
    if not isinstance(raw_phases, list) or not raw_phases:
        v.fail("phases", "must be a non-empty array of tables ([[phases]])")
    phases: list[Phase] = []
    seen: set[str] = set()
    start = 0.0
    if not (duration_scale > 0 and math.isfinite(duration_scale)):
        v.fail("(duration scale)", f"must be a positive number, got {duration_scale}")
    raw_phases = _expand_repeats(v, raw_phases, modes)
    for where, raw in raw_phases:
        v.keys(raw, where, {"name", "duration_s", "mode", "analyse", "rate", "group", "provider",
                            "fault", "switches", "block"})
        pname = v.string(raw.get("name"), f"{where}.name", pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
        if pname in seen:
            v.fail(f"{where}.name", f"duplicate phase name {pname!r}")
        seen.add(pname)
        if "duration_s" not in raw:
            v.fail(f"{where}.duration_s", "missing (seconds, > 0)")
        duration = v.number(raw["duration_s"], f"{where}.duration_s", low=0, low_open=True)
        duration = round(duration * duration_scale, 3)
        raw["duration_s"] = duration
        if "mode" not in raw:
            v.fail(f"{where}.mode", f"missing (one of {', '.join(modes)})")
        mode = v.string(raw["mode"], f"{where}.mode", choices=modes)
        analyse = v.boolean(raw.setdefault("analyse", True), f"{where}.analyse")
        rate = None
        if "rate" in raw:
            rate = v.number(raw["rate"], f"{where}.rate", low=0)
        elif load["model"] == "arrival" and "rate" not in load:
            v.fail(f"{where}.rate", "missing, and load.rate gives no default")
        group = v.string(raw.setdefault("group", pname), f"{where}.group")
        if pack != "reference":
            for key in ("provider", "fault"):
                if key in raw:
                    v.fail(f"{where}.{key}", "only for the reference pack (its provider "
                                             "simulator and service process)")
        provider = None
        if "provider" in raw:
            provider = _validate_provider(v, raw["provider"], f"{where}.provider")
            raw["provider"] = provider
        fault = None
        if "fault" in raw:
            fault = v.string(raw["fault"], f"{where}.fault", choices=FAULTS)
        switches = None
        if "switches" in raw:
            switches = _validate_switches(v, raw["switches"], f"{where}.switches", pack,
                                          gateway="gateway" in doc)
        block = v.integer(raw["block"], f"{where}.block", low=1) if "block" in raw else None
        phases.append(Phase(pname, duration, mode, analyse, rate, group, provider, start, fault,
                            switches, block))
        start = round(start + duration, 6)
    doc["phases"] = [raw for _, raw in raw_phases]  # expanded: experiment.toml lists every phase
    doc["roles"] = _validate_roles(v, doc.get("roles"), pack, modes, phases)
    doc["flag"] = _validate_flag(v, doc.get("flag"), pack, phases)

    names = {p.name for p in phases} | {p.group for p in phases} | set(ROLES)
    flows, metrics = _flows_and_metrics(target)
    raw_checks = doc.get("checks", [])
    if not isinstance(raw_checks, list):
        v.fail("checks", "must be an array of tables ([[checks]])")
    for i, raw in enumerate(raw_checks):
        _validate_check(v, v.table(raw, f"checks[{i}]"), f"checks[{i}]", names,
                        flows=flows, metrics=metrics, modes=modes, pack=pack)
    doc["checks"] = raw_checks
    return Experiment(name=name, source=source, data=doc, phases=phases)


def _expand_repeats(v: _V, raw_phases: list, all_modes: list[str]) -> list[tuple[str, dict]]:
    """`repeat = N` with `modes = [a, b, ...]` on a phase stands for N cycles of one phase per
    mode: `<name>-<k>-<mode>` (k from 1), group `<group or name>-<mode>`, so checks can compare
    the modes across every cycle. Each copy is then validated like a written-out phase."""
    out: list[tuple[str, dict]] = []
    for i, raw in enumerate(raw_phases):
        where = f"phases[{i}]"
        raw = v.table(raw, where)
        if "repeat" not in raw and "modes" not in raw:
            out.append((where, raw))
            continue
        repeat = v.integer(raw.get("repeat", 1), f"{where}.repeat", low=1)
        if "modes" in raw and "mode" in raw:
            v.fail(f"{where}.modes", "give either mode or modes, not both")
        modes = raw.get("modes", [raw.get("mode")] if "mode" in raw else None)
        if not isinstance(modes, list) or not modes:
            v.fail(f"{where}.modes", f"must be a non-empty array of modes ({', '.join(all_modes)})")
        for j, m in enumerate(modes):
            v.string(m, f"{where}.modes[{j}]", choices=all_modes)
        if "fault" in raw:
            v.fail(f"{where}.fault", "not allowed on a repeated phase (write that phase out)")
        name = v.string(raw.get("name"), f"{where}.name", pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
        group = v.string(raw.get("group", name), f"{where}.group")
        template = {k: val for k, val in raw.items() if k not in ("repeat", "modes", "mode")}
        for k in range(1, repeat + 1):
            for m in modes:
                copy_ = copy.deepcopy(template)
                copy_.update(name=f"{name}-{k}-{m}", group=f"{group}-{m}", mode=m)
                out.append((f"{where} (cycle {k}, mode {m})", copy_))
    return out


def _validate_switches(v: _V, raw, where: str, pack: str, *, gateway: bool) -> dict[str, str]:
    raw = v.table(raw, where)
    if pack != "reference":
        v.fail(where, "only for the reference pack (its executor's and gateway's switches)")
    v.keys(raw, where, set(SWITCHES))
    for name, value in raw.items():
        v.string(value, f"{where}.{name}", choices=("off", "on"))
        if name in GATEWAY_SWITCHES and not gateway:
            v.fail(f"{where}.{name}", "a switch of the gateway tier: the experiment needs a "
                                      "[gateway] table (orders through the gateway)")
    return raw


def _validate_gateway(v: _V, raw) -> dict[str, Any]:
    """[gateway]: orders go through the gateway tier (gateway/); `demo` starts it in front of
    the executor, with the link proxy (`link`, the profile's [link] RTT and TLS unless
    `rtt_ms`/`tls` say otherwise); `run` is given its URL (`--gateway`)."""
    raw = v.table(raw, "gateway")
    v.keys(raw, "gateway", {"link", "rtt_ms", "tls", "sink_latency_ms"})
    v.boolean(raw.setdefault("link", True), "gateway.link")
    if "rtt_ms" in raw:
        v.number(raw["rtt_ms"], "gateway.rtt_ms", low=0)
    if "tls" in raw:
        v.boolean(raw["tls"], "gateway.tls")
    if "sink_latency_ms" in raw:
        v.number(raw["sink_latency_ms"], "gateway.sink_latency_ms", low=0)
    return raw


FACTORIAL_DEFAULTS: dict[str, Any] = {"blocks": 8, "cell_s": 10.0, "warmup_s": 20.0, "seed": 1}


def _validate_factorial(v: _V, raw, doc: dict, pack: str) -> dict[str, Any]:
    """[factorial]: a 2^k design over `factors` (provider_skip and the switches), every cell run
    once in each of `blocks` blocks for `cell_s` seconds, in a seeded random order inside each
    block (so drift falls on every cell alike); `expected` holds a range per factor (ms, the
    saving as a negative number) that the analysis prints beside each main effect."""
    raw = v.table(raw, "factorial")
    if pack != "reference":
        v.fail("factorial", "only for the reference pack (its flag and switches)")
    v.keys(raw, "factorial", {"factors", *FACTORIAL_DEFAULTS, "expected", "metric"})
    raw = {**FACTORIAL_DEFAULTS, **raw}
    factors = raw.get("factors")
    if not isinstance(factors, list) or not factors:
        v.fail("factorial.factors", f"must be a non-empty array of {', '.join(FACTORS)}")
    for j, f in enumerate(factors):
        v.string(f, f"factorial.factors[{j}]", choices=FACTORS)
        if f in GATEWAY_SWITCHES and "gateway" not in doc:
            v.fail(f"factorial.factors[{j}]", f"{f} is a gateway switch: add a [gateway] table")
    if len(set(factors)) != len(factors):
        v.fail("factorial.factors", f"names repeat: {factors}")
    if len(factors) > 5:
        v.fail("factorial.factors", f"at most 5 factors (2^5 = 32 cells a block), got {len(factors)}")
    v.integer(raw["blocks"], "factorial.blocks", low=2)
    v.number(raw["cell_s"], "factorial.cell_s", low=0, low_open=True)
    v.number(raw["warmup_s"], "factorial.warmup_s", low=0)
    v.integer(raw["seed"], "factorial.seed", low=0)
    expected = v.table(raw.get("expected", {}), "factorial.expected")
    for name, rng in expected.items():
        v.string(name, "factorial.expected", choices=tuple(factors))
        if not (isinstance(rng, list) and len(rng) == 2):
            v.fail(f"factorial.expected.{name}", "must be [low, high] in ms")
        lo, hi = (v.number(x, f"factorial.expected.{name}[{j}]") for j, x in enumerate(rng))
        if hi < lo:
            v.fail(f"factorial.expected.{name}", f"high ({hi}) must be >= low ({lo})")
    raw["expected"] = expected
    return raw


def factorial_cell(factors: list[str], cell: int) -> tuple[str, dict[str, str], str]:
    """(mode, switches, label) of cell number `cell` (bit j: factor j on)."""
    on = [f for j, f in enumerate(factors) if cell >> j & 1]
    mode = "skip" if "provider_skip" in on else "off"
    switches = {f: ("on" if f in on else "off") for f in factors if f != "provider_skip"}
    return mode, switches, ".".join(on) if on else "all-off"


def factorial_phases(conf: dict[str, Any]) -> list[dict[str, Any]]:
    """The phases of a [factorial] design: a warmup with every factor off, then `blocks` blocks
    of the 2^k cells, each block in its own seeded random order."""
    import random

    factors = list(conf["factors"])
    rng = random.Random(int(conf["seed"]))
    phases: list[dict[str, Any]] = []
    if conf["warmup_s"] > 0:
        mode, switches, _ = factorial_cell(factors, 0)
        phases.append({"name": "warmup", "duration_s": conf["warmup_s"], "mode": mode,
                       "analyse": False, **({"switches": switches} if switches else {})})
    cells = list(range(1 << len(factors)))
    width = len(str(int(conf["blocks"])))
    for b in range(1, int(conf["blocks"]) + 1):
        order = cells[:]
        rng.shuffle(order)
        for c in order:
            mode, switches, label = factorial_cell(factors, c)
            phase = {"name": f"b{b:0{width}d}-{label}", "group": label, "block": b,
                     "duration_s": conf["cell_s"], "mode": mode}
            if switches:
                phase["switches"] = switches
            phases.append(phase)
    return phases

# --- target, modes, roles, flag ----------------------------------------------------------


def _url(v: _V, value, fname: str) -> str:
    v.string(value, fname)
    if not re.match(r"^https?://[^/\s]+", value):
        v.fail(fname, f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _server_source(v: _V, value, fname: str) -> None:
    v.string(value, fname)
    kind, _, where = value.partition(":")
    if kind == "header" and re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", where):
        return
    if kind == "json" and where.startswith("/") and len(where) > 1:
        return
    v.fail(fname, f"must be header:NAME (a Server-Timing metric) or json:/pointer, got {value!r}")


def _statuses(v: _V, value, fname: str) -> list[int]:
    if not isinstance(value, list):
        v.fail(fname, f"must be an array of HTTP status codes, got {_show(value)}")
    for j, code in enumerate(value):
        v.integer(code, f"{fname}[{j}]", low=100)
        if code > 599:
            v.fail(f"{fname}[{j}]", f"must be an HTTP status (100..599), got {code}")
    return value


def _validate_target(v: _V, raw) -> dict[str, Any]:
    """[target]: where the load goes. No table, or `pack = "reference"`: the reference
    executor (its scenarios, ledger and admin API). With `[[target.requests]]`: any HTTP
    service (docs/loadtests.md "Testing your own service")."""
    raw = v.table(raw, "target")
    v.keys(raw, "target", {"pack", "base_url", "health", "requests", "gateway_url"})
    pack = raw.get("pack", "http" if "requests" in raw else "reference")
    v.string(pack, "target.pack", choices=("reference", "http"))
    raw["pack"] = pack
    if "base_url" in raw:
        raw["base_url"] = _url(v, raw["base_url"], "target.base_url")
    if "gateway_url" in raw:
        if pack != "reference":
            v.fail("target.gateway_url", "only for the reference pack (its gateway tier)")
        # orders go to the gateway; admin, ledger and accounts to the executor (base_url)
        raw["gateway_url"] = _url(v, raw["gateway_url"], "target.gateway_url")
    if pack == "reference":
        for key in ("requests", "health"):
            if key in raw:
                v.fail(f"target.{key}", "not with pack = \"reference\" (its requests are the "
                                        "order scenarios of load.mix)")
        return raw
    health = v.string(raw.setdefault("health", "/health"), "target.health")
    if not health.startswith("/"):
        v.fail("target.health", f"must be a path starting with /, got {health!r}")
    requests = raw.get("requests")
    if not isinstance(requests, list) or not requests:
        v.fail("target.requests", "must be a non-empty array of tables ([[target.requests]])")
    names: set[str] = set()
    for i, req in enumerate(requests):
        where = f"target.requests[{i}]"
        v.table(req, where)
        v.keys(req, where, {"name", "flow", "weight", "method", "path", "json", "body",
                            "headers", "ok_status", "rejected_status", "server_timing",
                            "served_mode"})
        name = v.string(req.get("name"), f"{where}.name", pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
        if name in names:
            v.fail(f"{where}.name", f"duplicate request name {name!r}")
        names.add(name)
        v.string(req.setdefault("flow", name), f"{where}.flow",
                 pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
        v.number(req.setdefault("weight", 1), f"{where}.weight", low=0, low_open=True)
        req["method"] = v.string(req.get("method", "GET"), f"{where}.method").upper()
        v.string(req["method"], f"{where}.method", choices=HTTP_METHODS)
        path = v.string(req.get("path"), f"{where}.path")
        if not path.startswith("/"):
            v.fail(f"{where}.path", f"must start with / (it is joined to base_url), got {path!r}")
        if "json" in req and "body" in req:
            v.fail(f"{where}.body", "give either json or body, not both")
        if "body" in req:
            v.string(req["body"], f"{where}.body")
        headers = v.table(req.get("headers", {}), f"{where}.headers")
        for key, value in headers.items():
            v.string(value, f"{where}.headers.{key}")
        ok = _statuses(v, req.get("ok_status", []), f"{where}.ok_status")
        rejected = _statuses(v, req.get("rejected_status", []), f"{where}.rejected_status")
        both = sorted(set(ok) & set(rejected))
        if both:
            v.fail(f"{where}.rejected_status", f"{both} also in ok_status")
        timing = req.get("server_timing")
        if timing is not None:
            for j, src in enumerate([timing] if isinstance(timing, str) else timing
                                    if isinstance(timing, list) else [timing]):
                _server_source(v, src, f"{where}.server_timing" +
                               ("" if isinstance(timing, str) else f"[{j}]"))
        if "served_mode" in req:
            _server_source(v, req["served_mode"], f"{where}.served_mode")
        _check_templates(v, req, where)
    return raw


def _check_templates(v: _V, req: dict, where: str) -> None:
    from loadtests.adapters.templates import Template, TemplateError, compile_value

    try:
        Template(req["path"], ("*",))
        compile_value({k: req[k] for k in ("json", "body", "headers") if k in req}, ("*",))
    except TemplateError as exc:
        if "unknown variable" not in str(exc):  # CSV columns are known only at run time
            v.fail(where, str(exc))


def _validate_modes(v: _V, doc: dict, pack: str) -> list[str]:
    """`modes`: the flag's variant names. The reference pack's are its `provider_skip`
    modes; a generic target's default to the phases' modes in order of appearance."""
    if "modes" not in doc:
        if pack == "reference":
            doc["modes"] = list(MODES)
        else:
            seen: list[str] = []
            for i, raw in enumerate(doc.get("phases") or []):
                if isinstance(raw, dict):
                    for m in raw.get("modes", [raw.get("mode")]):
                        if isinstance(m, str) and m and m not in seen:
                            seen.append(m)
                    if not isinstance(raw.get("mode", raw.get("modes", [""])[0]), str):
                        v.fail(f"phases[{i}].mode", "must be a string")
            if not seen:
                v.fail("modes", "missing: name the flag's variants, e.g. modes = [\"off\", \"on\"]")
            doc["modes"] = seen
    modes = doc["modes"]
    if not isinstance(modes, list) or not modes:
        v.fail("modes", f"must be a non-empty array of variant names, got {_show(modes)}")
    for j, m in enumerate(modes):
        v.string(m, f"modes[{j}]", pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
    if len(set(modes)) != len(modes):
        v.fail("modes", f"names repeat: {modes}")
    if pack == "reference" and set(modes) - set(MODES):
        v.fail("modes", f"the reference service knows {', '.join(MODES)}, not "
                        f"{', '.join(sorted(set(modes) - set(MODES)))}")
    return modes


def _validate_roles(v: _V, raw, pack: str, modes: list[str], phases: list[Phase]) -> dict:
    """[roles]: which mode is the baseline and which the treatment(s). Defaults: the reference
    pack's `off` and [`skip`, `skip_reserve`]; otherwise the first phase's mode, and the others."""
    if raw is None:
        if pack == "reference":
            return {"baseline": "off", "treatment": ["skip", "skip_reserve"]}
        used = [p.mode for p in phases if p.analyse] or [p.mode for p in phases]
        base = used[0]
        return {"baseline": base, "treatment": [m for m in modes if m != base and m in used]}
    raw = v.table(raw, "roles")
    v.keys(raw, "roles", {"baseline", "treatment"})
    base = v.string(raw.get("baseline"), "roles.baseline", choices=modes)
    treatment = raw.get("treatment", [m for m in modes if m != base])
    listed = [treatment] if isinstance(treatment, str) else treatment
    if not isinstance(listed, list) or not listed:
        v.fail("roles.treatment", "must be a mode or an array of modes")
    for j, m in enumerate(listed):
        v.string(m, "roles.treatment" + ("" if isinstance(treatment, str) else f"[{j}]"),
                 choices=modes)
    if base in listed:
        v.fail("roles.treatment", f"{base!r} is the baseline")
    return {"baseline": base, "treatment": listed}


def _flag_call(v: _V, raw, fname: str, *, needs_url: bool = True) -> dict:
    raw = v.table(raw, fname)
    v.keys(raw, fname, {"method", "url", "json", "body", "headers", "pointer"})
    if needs_url:
        url = v.string(raw.get("url"), f"{fname}.url")
        if not (url.startswith("/") or re.match(r"^https?://", url)):
            v.fail(f"{fname}.url", f"must be a path (/...) or an http(s):// URL, got {url!r}")
    if "method" in raw:
        raw["method"] = v.string(raw["method"], f"{fname}.method").upper()
        v.string(raw["method"], f"{fname}.method", choices=HTTP_METHODS)
    if "pointer" in raw:
        ptr = v.string(raw["pointer"], f"{fname}.pointer")
        if not ptr.startswith("/"):
            v.fail(f"{fname}.pointer", f"must be a JSON pointer (/a/b), got {ptr!r}")
    for key, value in v.table(raw.get("headers", {}), f"{fname}.headers").items():
        v.string(value, f"{fname}.headers.{key}")
    return raw


def _flag_command(v: _V, raw, fname: str) -> None:
    if isinstance(raw, list):
        if not raw:
            v.fail(fname, "must not be empty")
        for j, part in enumerate(raw):
            v.string(part, f"{fname}[{j}]")
    else:
        v.string(raw, fname)


def _validate_flag(v: _V, raw, pack: str, phases: list[Phase]) -> dict[str, Any]:
    flips = len({p.mode for p in phases}) > 1
    if raw is None:
        if pack == "reference":
            return {"adapter": "reference"}
        if flips:
            v.fail("flag", "the phases use several modes, so the run flips a flag: give a "
                           "[flag] table (adapter = http | command | flagd)")
        return {"adapter": "none"}
    raw = v.table(raw, "flag")
    adapter = v.string(raw.get("adapter", "reference" if pack == "reference" else None),
                       "flag.adapter", choices=FLAG_ADAPTERS)
    raw["adapter"] = adapter
    common = {"adapter", "name", "confirm_timeout_s", "poll_interval_s", "timeout_s"}
    for key in ("confirm_timeout_s", "poll_interval_s", "timeout_s"):
        if key in raw:
            v.number(raw[key], f"flag.{key}", low=0, low_open=True)
    if "name" in raw:
        v.string(raw["name"], "flag.name")
    if adapter == "reference":
        if pack != "reference":
            v.fail("flag.adapter", "\"reference\" flips the reference service's provider_skip; "
                                   "this target is another service")
        v.keys(raw, "flag", common)
    elif adapter == "http":
        v.keys(raw, "flag", common | {"set", "get"})
        if "set" not in raw:
            v.fail("flag.set", "missing: the request that sets the flag, "
                               "e.g. { method = \"PUT\", url = \"/flags/x\", json = { variant = \"{mode}\" } }")
        _flag_call(v, raw["set"], "flag.set")
        if "get" in raw:
            _flag_call(v, raw["get"], "flag.get")
    elif adapter == "command":
        v.keys(raw, "flag", common | {"set", "get"})
        if "set" not in raw:
            v.fail("flag.set", "missing: the command that sets the flag, e.g. "
                               "\"myflags set fast_path {mode}\"")
        _flag_command(v, raw["set"], "flag.set")
        if "get" in raw:
            _flag_command(v, raw["get"], "flag.get")
    else:  # flagd
        v.keys(raw, "flag", common | {"file", "flag", "get"})
        v.string(raw.get("file"), "flag.file")
        v.string(raw.get("flag"), "flag.flag")
        if "get" not in raw:
            v.fail("flag.get", "missing: how to read the variant the service evaluates (an "
                               "HTTP { url, pointer } or a command), to confirm each flip")
        if isinstance(raw["get"], dict):
            _flag_call(v, raw["get"], "flag.get")
        else:
            _flag_command(v, raw["get"], "flag.get")
    return raw


def _flows_and_metrics(target: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The flows and metrics checks may name: the reference pack's, or those the requests
    of a generic target produce (client latency always; server metrics where named)."""
    if target["pack"] == "reference":
        return FLOWS, METRICS
    from loadtests.adapters.http_target import metric_name

    flows: list[str] = []
    metrics: list[str] = list(CLIENT_METRICS)
    for req in target["requests"]:
        if req["flow"] not in flows:
            flows.append(req["flow"])
        timing = req.get("server_timing") or []
        for src in [timing] if isinstance(timing, str) else timing:
            if metric_name(src) not in metrics:
                metrics.append(metric_name(src))
    return tuple(flows), tuple(metrics)



def _validate_service(v: _V, raw) -> dict[str, Any]:
    """[service]: how `execbench demo` starts the service for this experiment (`run` only
    records it). `env`: extra EXECBENCH_* settings, e.g. a short worker lease."""
    raw = v.table(raw, "service")
    v.keys(raw, "service", {"env"})
    env = v.table(raw.get("env", {}), "service.env")
    for key, value in env.items():
        where = f"service.env.{key}"
        if not re.fullmatch(r"EXECBENCH_[A-Z0-9_]+", key):
            v.fail(where, "must be an EXECBENCH_* setting name")
        if key in DEMO_OWNED_ENV:
            v.fail(where, f"set by execbench demo itself ({', '.join(DEMO_OWNED_ENV)})")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            v.fail(where, f"must be a string or a number, got {_show(value)}")
    raw["env"] = env
    return raw


def _validate_load(v: _V, raw, pack: str = "reference") -> dict[str, Any]:
    raw = v.table(raw, "load")
    allowed = set(LOAD_DEFAULTS) | {"rate", "seed", "population", "mix", "scenarios"}
    if pack != "reference":  # the reference pack's order scenarios and their knobs
        allowed -= set(REFERENCE_LOAD_KEYS)
    v.keys(raw, "load", allowed)
    load = {**LOAD_DEFAULTS, **raw}
    v.string(load["model"], "load.model", choices=("arrival", "users"))
    v.string(load["arrival"], "load.arrival", choices=("poisson", "fixed"))
    if "rate" in raw:
        load["rate"] = v.number(raw["rate"], "load.rate", low=0, low_open=True)
    v.integer(load["users"], "load.users", low=1)
    v.number(load["think_s"], "load.think_s", low=0)
    v.integer(load["generators"], "load.generators", low=1)
    v.integer(load["max_inflight"], "load.max_inflight", low=1)
    v.number(load["late_ms"], "load.late_ms", low=0, low_open=True)
    v.number(load["timeout_s"], "load.timeout_s", low=0, low_open=True)
    v.number(load["drain_s"], "load.drain_s", low=0)
    v.number(load["provider_share"], "load.provider_share", low=0, high=1)
    v.boolean(load["client_order_ids"], "load.client_order_ids")
    v.number(load["retry_s"], "load.retry_s", low=0)
    if load["retry_s"] > 0 and not load["client_order_ids"]:
        v.fail("load.retry_s", "needs load.client_order_ids = true (a retry without an id "
                               "could create a second order)")
    if "seed" in raw:
        v.integer(raw["seed"], "load.seed")
    interval = v.number(load["ledger_interval_s"], "load.ledger_interval_s", low=0)
    if 0 < interval < LEDGER_INTERVAL_MIN_S:
        v.fail("load.ledger_interval_s", f"must be 0 (no sampling) or >= {LEDGER_INTERVAL_MIN_S} "
                                         f"(each sample scans the service's orders), got {interval}")

    population = v.table(load.get("population", {}), "load.population")
    v.keys(population, "load.population",
           {"users", "first"} | ({"csv"} if pack != "reference" else set()))
    population.setdefault("users", 200)
    population.setdefault("first", 1)
    v.integer(population["users"], "load.population.users", low=1)
    v.integer(population["first"], "load.population.first", low=1)
    if "csv" in population:
        v.string(population["csv"], "load.population.csv")
    load["population"] = population
    if pack != "reference":
        for key in REFERENCE_LOAD_KEYS:  # filled from LOAD_DEFAULTS; not this target's
            load.pop(key, None)
        return load

    mix = v.table(load.get("mix", {"trader_mix": 1.0}), "load.mix")
    if not mix:
        v.fail("load.mix", "must name at least one scenario")
    for key, weight in mix.items():
        v.string(key, "load.mix", choices=SCENARIOS)
        mix[key] = v.number(weight, f"load.mix.{key}", low=0, low_open=True)
    load["mix"] = mix

    scenarios = v.table(load.get("scenarios", {}), "load.scenarios")
    v.keys(scenarios, "load.scenarios", set(SCENARIOS))
    filled = {}
    for sname in SCENARIOS:
        where = f"load.scenarios.{sname}"
        conf = v.table(scenarios.get(sname, {}), where)
        v.keys(conf, where, set(SCENARIO_DEFAULTS[sname]))
        conf = {**copy.deepcopy(SCENARIO_DEFAULTS[sname]), **conf}
        symbols = conf["symbols"]
        if not isinstance(symbols, list) or not symbols:
            v.fail(f"{where}.symbols", "must be a non-empty array of symbols")
        for j, sym in enumerate(symbols):
            v.string(sym, f"{where}.symbols[{j}]", choices=SYMBOLS)
        if sname == "trader_mix":
            lo = v.number(conf["volume_min"], f"{where}.volume_min", low=0, low_open=True)
            hi = v.number(conf["volume_max"], f"{where}.volume_max", low=0, low_open=True)
            if hi < lo:
                v.fail(f"{where}.volume_max", f"must be >= volume_min ({lo}), got {hi}")
        elif sname == "same_user_burst":
            v.integer(conf["burst_size"], f"{where}.burst_size", low=2)
            v.number(conf["fraction"], f"{where}.fraction", low=0, high=1, low_open=True)
            v.string(conf["user_type"], f"{where}.user_type", choices=("live", "demo"))
        else:
            fr = conf["fractions"]
            if not isinstance(fr, list) or not fr:
                v.fail(f"{where}.fractions", "must be a non-empty array of numbers")
            for j, f in enumerate(fr):
                f = v.number(f, f"{where}.fractions[{j}]", low=0, low_open=True)
                if 0.95 <= f <= 1.05:
                    v.fail(f"{where}.fractions[{j}]",
                           f"{f} is too close to 1: outside 0.95..1.05 the expected outcome is unambiguous")
            v.string(conf["user_type"], f"{where}.user_type", choices=("live", "demo"))
        filled[sname] = conf
    load["scenarios"] = filled
    return load


def _validate_provider(v: _V, raw, where: str) -> dict[str, Any]:
    raw = v.table(raw, where)
    v.keys(raw, where, {"outage", "reject_ratio", "timeout_ratio", "delay_ms"})
    # Fields left out take the service's configured defaults (PUT /admin/provider replaces all).
    out = {"outage": False, **raw}
    v.boolean(out["outage"], f"{where}.outage")
    for key in ("reject_ratio", "timeout_ratio"):
        if key in out:
            v.number(out[key], f"{where}.{key}", low=0, high=1)
    if "delay_ms" in out:
        v.number(out["delay_ms"], f"{where}.delay_ms", low=0)
    return out


def _validate_check(v: _V, raw: dict, where: str, phase_names: set[str], *,
                    flows=FLOWS, metrics=METRICS, modes=MODES, pack: str = "reference") -> None:
    kind = v.string(raw.get("kind"), f"{where}.kind", choices=tuple(CHECK_KINDS))
    if pack != "reference" and kind in REFERENCE_CHECK_KINDS:
        v.fail(f"{where}.kind", f"{kind!r} reads the reference service's ledger; this target "
                                "has none")
    required, optional = CHECK_KINDS[kind]
    v.keys(raw, where, {"kind", "name", *required, *optional})
    if "name" in raw:
        v.string(raw["name"], f"{where}.name")
    for key, default in optional.items():
        if key not in raw and default is not None:
            raw[key] = default
    for key, typ in required.items():
        if key not in raw:
            v.fail(f"{where}.{key}", f"missing (required by kind {kind!r})")
    for key, value in raw.items():
        typ = required.get(key) or {"q": "quantile", "phases": "phase_list",
                                     "max_failure_ratio": "ratio", "phase": "phase",
                                     "flow": "flow", "baseline_mode": "mode"}.get(key)
        fname = f"{where}.{key}"
        if typ is None and key in ("kind", "name"):
            continue
        if typ == "flow":
            v.string(value, fname, choices=tuple(flows))
        elif typ == "metric":
            v.string(value, fname, choices=tuple(metrics))
        elif typ == "phase":
            _phase_ref(v, value, fname, phase_names)
        elif typ == "quantile":
            v.number(value, fname, low=0, high=1, low_open=True)
        elif typ == "ratio":
            v.number(value, fname, low=0, high=1)
        elif typ == "number":
            v.number(value, fname, low=0)
        elif typ == "count":
            v.integer(value, fname, low=0)
        elif typ == "mode":
            v.string(value, fname, choices=tuple(modes))
        elif typ == "string":
            v.string(value, fname)
        elif typ in ("phase_pair", "phase_list"):
            if not isinstance(value, list) or not value or (typ == "phase_pair" and len(value) != 2):
                want = "an array of two phase names" if typ == "phase_pair" else "an array of phase names"
                v.fail(fname, f"must be {want}, got {_show(value)}")
            for j, ref in enumerate(value):
                _phase_ref(v, ref, f"{fname}[{j}]", phase_names)
    if kind == "quantile_between" and raw["high"] < raw["low"]:
        v.fail(f"{where}.high", f"must be >= low ({raw['low']}), got {raw['high']}")


def _phase_ref(v: _V, value, fname: str, phase_names: set[str]) -> None:
    v.string(value, fname)
    if value not in phase_names:
        v.fail(fname, f"no phase or phase group named {value!r} (have: {', '.join(sorted(phase_names))})")


# --- writing the spec as run --------------------------------------------------------------


def dumps(exp: Experiment, header: str = "") -> str:
    """TOML text of the validated spec (defaults filled, durations as run)."""
    doc = exp.data
    out: list[str] = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key in ("name", "description", "profile", "modes"):
        if key in doc:
            out.append(f"{key} = {_toml_value(doc[key])}")
    out.append("")
    for key in ("roles", "target", "flag", "gateway", "factorial"):
        if doc.get(key):
            _toml_table(out, key, doc[key])
    _toml_table(out, "load", doc["load"])
    if doc.get("service"):
        _toml_table(out, "service", doc["service"])
    if doc.get("analysis"):
        _toml_table(out, "analysis", doc["analysis"])
    for phase in doc["phases"]:
        out.append("[[phases]]")
        for key, value in phase.items():
            if not isinstance(value, dict):
                out.append(f"{key} = {_toml_value(value)}")
        for key, value in phase.items():
            if isinstance(value, dict):
                _toml_table(out, f"phases.{key}", value)
        out.append("")
    for check in doc.get("checks", []):
        out.append("[[checks]]")
        out.extend(f"{k} = {_toml_value(val)}" for k, val in check.items())
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _toml_table(out: list[str], name: str, table: dict) -> None:
    out.append(f"[{name}]")
    out.extend(f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict))
    out.append("")
    for key, value in table.items():
        if isinstance(value, dict):
            _toml_table(out, f"{name}.{_toml_key(key)}", value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(x) for x in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
