"""Which pack drives an experiment's target: the application layer's one choice.

No `[target]` table, or `pack = "reference"`: the reference executor (reference/pack.py), its
order scenarios, admin API flag, provider faults and ledger. `[[target.requests]]`: any HTTP
service (loadtests/adapters/), its flag through the `[flag]` adapter (http, command, flagd).
The engine gets the result through the seam (loadtests/seam.py) and never imports a pack.
"""

from __future__ import annotations

from pathlib import Path

from loadtests.seam import Binding
from loadtests.spec import Experiment


def bind(experiment: Experiment, base_url: str, token: str | None) -> Binding:
    if experiment.pack == "reference":
        from reference.pack import bind as bind_reference

        return bind_reference(experiment, base_url, token)
    from loadtests.adapters import flags
    from loadtests.adapters.http_target import HttpTarget

    conf = experiment.data["flag"]
    flag = None
    if conf.get("adapter") not in (None, "none"):
        flag = flags.build(conf, base_url, Path(experiment.source).resolve().parent,
                           experiment.modes)
    return Binding(target=HttpTarget(base_url, experiment), flag=flag, faults=None, pack="http")


def worker_user_classes() -> list[type]:
    """Every pack's Locust users: a distributed worker learns the experiment (and so which
    of them run) only from the master's schedule."""
    from loadtests.adapters.http_user import HttpRequestsUser
    from reference.scenarios import BY_NAME

    return [*BY_NAME.values(), HttpRequestsUser]
