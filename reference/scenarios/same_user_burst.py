"""Same-user burst: several concurrent provider orders from one account near its margin limit.

Each arrival takes an account nobody else is using, reads its free margin, and sends
`burst_size` orders at once, each sized at `fraction` of that free margin (together more than
it). Serialised under the user lock (`off`) or reserved atomically (`skip_reserve`) at most
floor(1/fraction) can be accepted; `skip` checks each order against a stale free margin and can
accept them all. It moves `executor_margin_overcommit_total{mode}` and the ledger's
`overcommits`; the burst id in requests.jsonl groups the orders of one burst.
"""

from __future__ import annotations

import uuid

import gevent

from loadtests.arrival import Arrival
from reference.orders import MarginSizer, OrderUser
from reference.scenarios.accounts import AccountPicker


class SameUserBurst(OrderUser):
    scenario = "same_user_burst"

    def connections_per_arrival(self) -> int:
        return int(self.state.load["scenarios"]["same_user_burst"]["burst_size"])

    def on_start(self) -> None:
        super().on_start()
        self.picker = AccountPicker(self.state, self.scenario, self.rng)
        self.sizer = MarginSizer()

    def act(self, arrival: Arrival) -> None:
        conf = self.state.load["scenarios"]["same_user_burst"]
        user_type = conf["user_type"]
        account_id = self.picker.acquire(self.state.phase_index_at(arrival.intended))
        if account_id is None:
            self.skip(arrival, "no_account", flow="provider" if user_type == "live" else "local")
            return  # every account of the slice is busy or out of margin
        flow = "provider" if user_type == "live" else "local"
        exhausted = False
        try:
            symbol = self.rng.choice(conf["symbols"])
            per_lot = self.sizer.margin_per_lot(self, arrival, user_type, account_id, symbol)
            account = self.account(user_type, account_id)
            if not per_lot or not account:
                self.skip(arrival, "prep_failed", flow=flow, elapsed=True)
                return
            volume = round(float(conf["fraction"]) * float(account["free_margin"]) / per_lot, 2)
            if volume < 0.01:
                exhausted = True
                self.skip(arrival, "too_small", flow=flow, elapsed=True)
                return
            arrival.prepared()
            burst = uuid.uuid4().hex[:12]
            jobs = [
                gevent.spawn(self.order, arrival, user_type=user_type, user_id=account_id,
                             symbol=symbol, side="buy", volume=volume, burst=burst)
                for _ in range(int(conf["burst_size"]))
            ]
            gevent.joinall(jobs)
        finally:
            self.picker.release(account_id, exhausted)
