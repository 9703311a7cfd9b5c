"""The target seam: the three small interfaces the engine talks to, and nothing else.

The engine (arrival clock, conductor, runner, records) drives *a* target: a service it sends
requests to, a flag it flips between variants, and optionally faults it applies. What a target
is, is a pack's business: the reference pack (`reference/`) binds the reference executor, the
generic adapters (`loadtests/adapters/`) bind any HTTP service and flag system described in the
experiment's `[target]` and `[flag]` tables. The application layer (`execbench/packs.py`)
chooses the binding; the engine never imports a pack. No Locust import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class TargetError(RuntimeError):
    """The target cannot be used as asked: one line a user can act on (the URL, the status)."""


class FlagError(RuntimeError):
    """A flip that did not happen, or was never confirmed: the run stops with this message."""


@dataclass(frozen=True)
class Flip:
    """One confirmed flag change, epoch seconds. `applied` is when the target was first seen
    using the new variant (a confirming read), or the target's own applied time where it says;
    `resolution_s` bounds how early it may really have happened (the previous read)."""

    mode: str
    requested: float
    applied: float
    resolution_s: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)


class Target(Protocol):
    base_url: str

    def health(self, timeout_s: float) -> None:
        """Return once the target answers its health check; raise TargetError otherwise."""

    def prepare(self) -> list[str]:
        """Pre-flight before any load (credentials, data the load needs). Raise TargetError
        on a problem that makes the run pointless; return notes worth printing."""

    def settle(self, timeout_s: float) -> dict[str, Any]:
        """After the load: wait for the target's own work to finish and return the files the
        run directory should keep (name -> JSON data), e.g. the reference ledger."""

    def user_classes(self) -> list[type]:
        """The Locust user classes that generate this target's load (imports Locust)."""

    def sampler(self, timeline, *, phase, mode, ready) -> Any | None:
        """An optional periodic sampler (start(), stop(), counts(), stopped) writing timeline
        events during the run, or None."""

    def close(self) -> None: ...


class FlagControl(Protocol):
    name: str  # what the flag is called, for messages and the timeline
    needs_credentials: bool

    def check(self) -> None:
        """Fail before the run, not at its first flip: credentials refused, flag unknown."""

    def get(self) -> str | None:
        """The variant the target uses now, as the control can tell (None: cannot read)."""

    def set(self, mode: str, reason: str) -> Flip:
        """Request `mode` and return once it is confirmed applied; raise FlagError."""

    def close(self) -> None: ...


class SwitchControl(Protocol):
    """On/off runtime switches beside the flag (the latency plan's later steps), set per phase."""

    names: tuple[str, ...]

    def check(self) -> None:
        """Fail before the run: a tier not reachable, a switch it does not know, a token refused."""

    def set(self, name: str, value: str, reason: str) -> Flip:
        """Set one switch and return once it is applied; raise FlagError."""

    def close(self) -> None: ...


class FaultControl(Protocol):
    def apply(self, settings: dict[str, Any], reason: str) -> None:
        """Apply a phase's fault settings (e.g. the provider simulator's outage)."""

    def restore(self) -> None:
        """Back to the target's defaults after the run (only if something was applied)."""


@dataclass
class Binding:
    """What a pack gives the engine for one run."""

    target: Target
    flag: FlagControl | None
    faults: FaultControl | None = None
    switches: SwitchControl | None = None
    # the variables of `{mode}`-style templates do not need a pack; this names the pack for
    # experiment.toml and the analysis (`reference` or `http`)
    pack: str = "http"
