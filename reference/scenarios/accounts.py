"""Which seeded accounts a scenario may use, so scenarios that reason about one account's
margin never share it with another scenario, another worker, or a concurrent arrival."""

from __future__ import annotations

import random

from loadtests.spec import SCENARIOS
from loadtests.state import ProcessState


def account_range(state: ProcessState, scenario: str) -> range:
    """The population is split into equal consecutive slices, one per scenario of the mix
    (in the order trader_mix, same_user_burst, margin_edge); trader_mix alone gets it all."""
    pop = state.load.get("population", {"users": 200, "first": 1})
    first, users = int(pop.get("first", 1)), int(pop.get("users", 200))
    active = [s for s in SCENARIOS if s in state.load.get("mix", {"trader_mix": 1.0})] or [scenario]
    if scenario not in active:
        active.append(scenario)
    size = max(1, users // len(active))
    index = active.index(scenario)
    start = first + index * size
    return range(start, min(first + users, start + size))


class AccountPicker:
    """Random free account of this scenario's slice, partitioned across workers and phases.

    Each phase gets its own accounts, so an account drained or over-committed under one mode
    never carries that state into the next phase's measurement."""

    def __init__(self, state: ProcessState, scenario: str, rng: random.Random):
        self.state = state
        ids = list(account_range(state, scenario))
        workers = max(1, state.workers)
        mine = [i for n, i in enumerate(ids) if n % workers == state.worker_index % workers]
        self.ids = mine or ids
        self.rng = rng
        self.busy: set[int] = set()
        self.exhausted: set[int] = set()

    def acquire(self, phase_index: int | None = None) -> int | None:
        ids = self.ids
        phases = len(self.state.schedule)
        if phase_index is not None and phases > 1 and len(ids) >= phases:
            ids = ids[phase_index::phases]
        free = [i for i in ids if i not in self.busy and i not in self.exhausted]
        if not free:
            return None
        account = self.rng.choice(free)
        self.busy.add(account)
        return account

    def release(self, account: int, exhausted: bool = False) -> None:
        self.busy.discard(account)
        if exhausted:
            self.exhausted.add(account)
