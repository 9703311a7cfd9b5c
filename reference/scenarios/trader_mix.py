"""Trader mix: the everyday load.

Random seeded accounts place small market orders on random symbols and sides; a share
`load.provider_share` are live accounts (provider flow), the rest demo (local flow). This is
the scenario the headline measures: it moves `executor_duration_seconds{flow="provider"}` (and
`executor_ms` in the timing log) when the flag flips, and should leave the local flow alone.
"""

from __future__ import annotations

from loadtests.arrival import Arrival
from reference.orders import OrderUser
from reference.scenarios.accounts import account_range


class TraderMix(OrderUser):
    scenario = "trader_mix"

    def act(self, arrival: Arrival) -> None:
        load = self.state.load
        conf = load["scenarios"]["trader_mix"]
        ids = account_range(self.state, self.scenario)
        user_type = "live" if self.rng.random() < float(load.get("provider_share", 0.5)) else "demo"
        volume = round(self.rng.uniform(conf["volume_min"], conf["volume_max"]), 2)
        self.order(
            arrival,
            user_type=user_type,
            user_id=self.rng.choice(ids),
            symbol=self.rng.choice(conf["symbols"]),
            side=self.rng.choice(("buy", "sell")),
            volume=max(volume, 0.01),
        )
