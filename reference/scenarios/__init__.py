"""Locust scenarios, one file each; every one is an open-model `ArrivalRateUser`."""

from loadtests.scenarios.margin_edge import MarginEdge
from loadtests.scenarios.same_user_burst import SameUserBurst
from loadtests.scenarios.trader_mix import TraderMix

BY_NAME = {cls.scenario: cls for cls in (TraderMix, SameUserBurst, MarginEdge)}

__all__ = ["BY_NAME", "MarginEdge", "SameUserBurst", "TraderMix"]
