"""Margin edge: orders sized just inside and just outside the account's free margin.

Each arrival reads an unused account's free margin and sends one order whose margin is a
fraction of it, drawn from `fractions` (never within 5 % of 1, so the right answer is
unambiguous). Above 1 the service must refuse with 409 insufficient_margin: that is counted
as an expected outcome; an acceptance is a failure (over-commit at the door). Below 1 it must
accept. It exercises the margin checks (`single_margin_ms`, `free_margin_ms`) and moves
`executor_orders_total{status="rejected"}`.
"""

from __future__ import annotations

from loadtests.arrival import Arrival
from reference.orders import MarginSizer, OrderUser
from reference.scenarios.accounts import AccountPicker


class MarginEdge(OrderUser):
    scenario = "margin_edge"

    def on_start(self) -> None:
        super().on_start()
        self.picker = AccountPicker(self.state, self.scenario, self.rng)
        self.sizer = MarginSizer()

    def act(self, arrival: Arrival) -> None:
        conf = self.state.load["scenarios"]["margin_edge"]
        user_type = conf["user_type"]
        account_id = self.picker.acquire(self.state.phase_index_at(arrival.intended))
        if account_id is None:
            self.skip(arrival, "no_account", flow="provider" if user_type == "live" else "local")
            return
        flow = "provider" if user_type == "live" else "local"
        exhausted = False
        try:
            symbol = self.rng.choice(conf["symbols"])
            per_lot = self.sizer.margin_per_lot(self, arrival, user_type, account_id, symbol)
            account = self.account(user_type, account_id)
            if not per_lot or not account:
                self.skip(arrival, "prep_failed", flow=flow, elapsed=True)
                return
            free = float(account["free_margin"])
            volume = round(self.rng.choice(conf["fractions"]) * free / per_lot, 2)
            if volume < 0.01 or free <= 0:
                exhausted = True
                self.skip(arrival, "too_small", flow=flow, elapsed=True)
                return
            actual = volume * per_lot / free
            if 0.95 <= actual <= 1.05:
                # rounding brought it too close to the edge to judge
                self.skip(arrival, "edge_ambiguous", flow=flow, elapsed=True)
                return
            arrival.prepared()
            self.order(arrival, user_type=user_type, user_id=account_id, symbol=symbol,
                       side="buy", volume=volume, expect="accept" if actual < 1 else "reject")
        finally:
            self.picker.release(account_id, exhausted)
