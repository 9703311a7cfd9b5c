"""The reference executor behind the target seam (loadtests/seam.py).

Target: `/healthz`; pre-flight = the admin token is accepted and the population's accounts
exist; settle = wait until the provider has answered every order, then the ledger
(`ledger.json`); sampler = the ledger every `load.ledger_interval_s`.
Flag: `PUT /admin/flags/provider_skip`, applied at the service's own `applied_at`.
Faults: the provider simulator (`PUT /admin/provider`), back to its defaults after the run.
Switches: `PUT /admin/flags/<switch>` on the tier that owns it — the executor's parallel_config,
the gateway's keepalive and async_logging (`[target] gateway_url`, where the orders then go).
"""

from __future__ import annotations

import time
from typing import Any

from loadtests.seam import Binding, FlagError, Flip, TargetError
from loadtests.spec import Experiment
from reference.admin import AdminClient, AdminError
from reference.ledger_sampler import LedgerSampler


class ReferenceTarget:
    def __init__(self, base_url: str, token: str | None, experiment: Experiment):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.experiment = experiment
        self.admin = AdminClient(self.base_url, token)

    def health(self, timeout_s: float) -> None:
        try:
            self.admin.wait_healthy(timeout=timeout_s)
        except AdminError as exc:
            raise TargetError(str(exc)) from None

    def prepare(self) -> list[str]:
        pop = self.experiment.load["population"]
        last = int(pop["first"]) + int(pop["users"]) - 1
        try:
            for user_type in ("live", "demo"):
                if not self.admin.account_exists(user_type, last):
                    raise TargetError(
                        f"{self.experiment.source}: load.population covers user ids "
                        f"{pop['first']}..{last}, but the service has no {user_type} account "
                        f"{last}: seed it with `execbench seed --users {last}` or lower "
                        "load.population.users")
        except AdminError as exc:
            raise TargetError(str(exc)) from None
        return []

    def settle(self, timeout_s: float) -> dict[str, Any]:
        """The ledger once the provider has answered every order sent (or after `timeout_s`):
        orders sent in the last moments are still queued, which is not an order lost."""
        import gevent  # the runner's process is monkey-patched: sleep without blocking Locust

        deadline = time.time() + timeout_s
        ledger = self.admin.ledger()
        while ledger.get("orders_nonterminal") and time.time() < deadline:
            gevent.sleep(0.5)
            ledger = self.admin.ledger()
        return {"ledger.json": ledger}

    def user_classes(self) -> dict[str, type]:
        from reference.scenarios import BY_NAME

        return dict(BY_NAME)

    def sampler(self, timeline, *, phase, mode, ready):
        interval = float(self.experiment.load.get("ledger_interval_s", 0.0))
        if interval <= 0:
            return None
        # its own client: a slow ledger answer must not delay a flip on the flag's client
        admin = AdminClient(self.base_url, self.token,
                            timeout=min(10.0, max(2.0, 2 * interval)))
        return LedgerSampler(admin, timeline, interval_s=interval, phase=phase, mode=mode,
                             ready=ready)

    def close(self) -> None:
        self.admin.close()


class ReferenceFlag:
    name = "provider_skip"

    def __init__(self, base_url: str, token: str | None):
        self.admin = AdminClient(base_url, token)
        self.needs_credentials = True

    @property
    def has_credentials(self) -> bool:
        return bool(self.admin.token)

    def check(self) -> None:
        try:
            self.admin.check_token()
        except AdminError as exc:
            raise FlagError(str(exc)) from None

    def get(self) -> str | None:
        try:
            return self.admin.flags().get("mode")
        except AdminError as exc:
            raise FlagError(str(exc)) from None

    def set(self, mode: str, reason: str) -> Flip:
        try:
            requested, applied, state = self.admin.set_mode(mode, reason)
        except AdminError as exc:
            raise FlagError(str(exc)) from None
        return Flip(mode=mode, requested=requested, applied=applied, state=state)

    def close(self) -> None:
        self.admin.close()


class ReferenceSwitches:
    """The latency plan's switches, each set on its own tier through that tier's admin API."""

    def __init__(self, base_url: str, gateway_url: str | None, token: str | None):
        from loadtests.spec import EXECUTOR_SWITCHES, GATEWAY_SWITCHES

        self.tiers = {"executor": AdminClient(base_url, token)}
        owner = dict.fromkeys(EXECUTOR_SWITCHES, "executor")
        if gateway_url:
            self.tiers["gateway"] = AdminClient(gateway_url, token)
            owner.update(dict.fromkeys(GATEWAY_SWITCHES, "gateway"))
        self.owner = owner
        self.names = tuple(owner)

    def check(self) -> None:
        for tier, admin in self.tiers.items():
            try:
                admin.wait_healthy(timeout=30)
                known = admin.http.get("/admin/flags", headers=admin.headers)
                admin._check(known, f"GET {admin.base_url}/admin/flags")
                missing = [n for n, t in self.owner.items() if t == tier and n not in known.json()]
            except AdminError as exc:
                raise FlagError(f"the {tier}: {exc}") from None
            if missing:
                raise FlagError(f"the {tier} at {admin.base_url} has no switch "
                                f"{', '.join(missing)} (GET /admin/flags)")

    def set(self, name: str, value: str, reason: str) -> Flip:
        tier = self.owner.get(name)
        if tier is None:
            raise FlagError(f"switch {name}: no tier of this run has it (a gateway switch needs "
                            "`run --gateway URL`)")
        try:
            requested, applied, state = self.tiers[tier].set_flag(name, value, reason)
        except AdminError as exc:
            raise FlagError(str(exc)) from None
        return Flip(mode=value, requested=requested, applied=applied, state={"tier": tier, **state})

    def close(self) -> None:
        for admin in self.tiers.values():
            admin.close()


class ReferenceFaults:
    """The provider simulator's settings per phase; restored only if a phase changed them."""

    def __init__(self, base_url: str, token: str | None):
        self.admin = AdminClient(base_url, token)
        self.touched = False

    def apply(self, settings: dict[str, Any], reason: str) -> None:
        self.admin.set_provider(settings, reason)
        self.touched = True

    def restore(self) -> None:
        if self.touched:
            self.admin.set_provider({"outage": False}, "execbench: run_end")  # the defaults


def bind(experiment: Experiment, base_url: str, token: str | None) -> Binding:
    gateway_url = experiment.data["target"].get("gateway_url")
    switches = None
    if gateway_url or any(p.switches for p in experiment.phases):
        switches = ReferenceSwitches(base_url, gateway_url, token)
    return Binding(target=ReferenceTarget(base_url, token, experiment),
                   flag=ReferenceFlag(base_url, token),
                   faults=ReferenceFaults(base_url, token), switches=switches, pack="reference")
