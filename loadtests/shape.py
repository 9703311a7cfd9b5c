"""`ExperimentShape`: a Locust `LoadTestShape` that runs one experiment spec.

Users are open-model generators, so the shape does not ramp user counts to make load: it
starts `generators` users per scenario of the mix at once and keeps them until the schedule
and its drain are over; the arrival rate of each phase lives in the schedule the conductor
ships. The first tick starts the conductor (initial flag mode, t0, schedule, boundary clock).
"""

from __future__ import annotations

import time
from typing import ClassVar

from locust import LoadTestShape

from loadtests.conductor import Conductor


class ExperimentShape(LoadTestShape):
    abstract = True
    # the load's user classes by the names `load.mix` uses (the target's, e.g. the reference
    # pack's scenarios, or the generic HTTP requests user)
    user_classes: ClassVar[dict[str, type]] = {}

    def __init__(self, conductor: Conductor | None = None,
                 user_classes: dict[str, type] | None = None):
        super().__init__()
        self.conductor = conductor
        if user_classes is not None:
            self.user_classes = user_classes

    def make_conductor(self) -> Conductor:  # plain-Locust subclasses build theirs lazily
        raise RuntimeError("ExperimentShape needs a conductor")

    def tick(self):
        if self.conductor is None:
            self.conductor = self.make_conductor()
        conductor = self.conductor
        if not conductor.started:
            conductor.start()
        if time.time() >= conductor.stop_at:
            return None
        mix = conductor.experiment.mix
        classes = [self.user_classes[name] for name in mix]
        load = conductor.experiment.load
        per_class = int(load["users"]) if load.get("model") == "users" else conductor.generators
        users = per_class * len(classes)
        return users, float(users), classes
