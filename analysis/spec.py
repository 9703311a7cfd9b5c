"""The experiment spec (experiment.toml) as the analysis needs it, read tolerantly.

Only what the analysis uses is interpreted: the modes and roles (`modes = [...]`, `[roles]
baseline/treatment`; the reference pack's `off | skip | skip_reserve` when absent), whether the
target is the reference pack (no `[target]`, or `[target] pack = "reference"`), the phases
(name, duration, mode, analysed) and the checks. `[target]` and `[flag]` are otherwise the
engine's business. Spelling variants are accepted (`analyse`/`analysed`/`analyze`, `duration_s`/`duration`
as seconds or "90s"/"2m"), unknown keys are ignored, and a check of a kind the analysis does not
know is kept and reported as "unsupported", never a crash.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from execbench import rundir as rd

MODES = rd.REFERENCE_MODES  # the reference pack's modes: the default when the spec names none


class SpecError(ValueError):
    pass


@dataclass
class Phase:
    name: str
    mode: str | None
    duration_s: float | None
    analysed: bool
    group: str | None = None
    rate: float | None = None


@dataclass
class Spec:
    name: str
    phases: list[Phase]
    checks: list[dict]
    raw: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    modes: tuple[str, ...] = MODES
    baseline_mode: str = rd.REFERENCE_BASELINE
    treatment_modes: tuple[str, ...] = rd.REFERENCE_TREATMENT
    reference: bool = True  # the reference pack (no [target], or [target] pack = "reference")

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)


_DUR = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|min|h)?\s*$")


def parse_duration(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise SpecError(f"bad duration {v!r}")
    if isinstance(v, (int, float)):
        return float(v)
    m = _DUR.match(str(v))
    if not m:
        raise SpecError(f"bad duration {v!r}")
    scale = {"ms": 1e-3, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[m.group(2)]
    return float(m.group(1)) * scale


def _first(d: dict, *keys, default=None):
    for k in keys:
        if k in d:
            return d[k]
    return default


def spec_from_dict(raw: dict, fallback_name: str = "experiment") -> Spec:
    exp = raw.get("experiment") if isinstance(raw.get("experiment"), dict) else {}
    name = str(_first(raw, "name", default=_first(exp, "name", default=fallback_name)))
    phases_raw = _first(raw, "phases", "phase", default=None)
    if phases_raw is None:
        phases_raw = _first(exp, "phases", default=[])
    if not isinstance(phases_raw, list):
        raise SpecError("`phases` must be an array of tables ([[phases]])")
    if "modes" in raw and rd.spec_modes(raw) != tuple(raw["modes"] or ()):
        raise SpecError("`modes` must be a non-empty array of mode names")
    modes = rd.spec_modes(raw)
    if "roles" in raw and not isinstance(raw["roles"], dict):
        raise SpecError("`roles` must be a table ([roles] baseline = ..., treatment = ...)")
    baseline, treatment = rd.spec_roles(raw)
    for role, names in (("baseline", (baseline,)), ("treatment", treatment)):
        unknown = [m for m in names if m not in modes]
        if unknown:
            raise SpecError(f"roles.{role}: unknown mode {unknown[0]!r} (expected one of {modes})")
    phases = []
    for i, p in enumerate(phases_raw):
        if not isinstance(p, dict):
            raise SpecError(f"phase #{i + 1} is not a table")
        pname = p.get("name")
        if not isinstance(pname, str) or not pname:
            raise SpecError(f"phase #{i + 1} has no name")
        mode = _first(p, "mode", "flag", "provider_skip")
        if mode is not None and mode not in modes:
            raise SpecError(f"phase {pname!r}: unknown mode {mode!r} (expected one of {modes})")
        dur = parse_duration(_first(p, "duration_s", "duration", "seconds"))
        analysed = _first(p, "analyse", "analysed", "analyze", "analyzed")
        if analysed is None:
            analysed = pname.lower() not in ("warmup", "warm-up", "warm_up", "cooldown")
        group = p.get("group") if isinstance(p.get("group"), str) else None
        rate = p.get("rate") if isinstance(p.get("rate"), (int, float)) else None
        phases.append(Phase(pname, mode, dur, bool(analysed), group or pname, rate))
    names = [p.name for p in phases]
    if len(set(names)) != len(names):
        raise SpecError(f"phase names repeat: {names}")
    checks_raw = _first(raw, "checks", "check", default=None)
    if checks_raw is None:
        checks_raw = _first(exp, "checks", default=[])
    if isinstance(checks_raw, dict):  # [checks] table of name -> table
        checks_raw = [{"name": k, **v} if isinstance(v, dict) else {"name": k, "value": v}
                      for k, v in checks_raw.items()]
    checks = [c if isinstance(c, dict) else {"kind": None, "value": c} for c in checks_raw]
    settings = raw.get("analysis") if isinstance(raw.get("analysis"), dict) else {}
    return Spec(name, phases, checks, raw, settings, modes, baseline, treatment,
                rd.is_reference_pack(raw))


def load_spec(path: Path) -> Spec:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    return spec_from_dict(raw, fallback_name=Path(path).parent.name)
