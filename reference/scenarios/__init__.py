"""Locust scenarios, one file each; every one is an open-model `ArrivalRateUser`."""

from reference.scenarios.margin_edge import MarginEdge
from reference.scenarios.same_user_burst import SameUserBurst
from reference.scenarios.trader_mix import TraderMix

BY_NAME = {cls.scenario: cls for cls in (TraderMix, SameUserBurst, MarginEdge)}

__all__ = ["BY_NAME", "MarginEdge", "SameUserBurst", "TraderMix"]
