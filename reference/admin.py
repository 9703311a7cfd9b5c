"""The executor's admin API as the experiment runner uses it (flag, provider faults, ledger).

Plain httpx, no Locust: the conductor calls it from the master (or the local runner), and
`demo` uses it before any Locust code is imported.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from loadtests.records import parse_iso


class AdminError(RuntimeError):
    pass


class AdminClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def close(self) -> None:
        self.http.close()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                resp = self.http.get("/healthz", timeout=2)
                if resp.status_code == 200:
                    return
                kind = resp.headers.get("content-type", "").split(";")[0] or "no content type"
                last = f"HTTP {resp.status_code} ({kind})"
                if resp.status_code not in (502, 503, 504):  # not starting: another service
                    raise AdminError(f"GET {self.base_url}/healthz answered {last}: is this the "
                                     "execbench reference service? (for your own service, "
                                     "describe it in the experiment's [target])")
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.2)
        raise AdminError(f"{self.base_url}/healthz not healthy after {timeout:.0f} s: {last}")

    def flags(self) -> dict[str, Any]:
        resp = self.http.get("/admin/flags", headers=self.headers)
        self._check(resp, "GET /admin/flags")
        return resp.json()["provider_skip"]

    def check_token(self) -> None:
        """Fail before the run, not at the first flip, when the token is refused."""
        resp = self.http.get("/admin/flags/audit", headers=self.headers)
        if resp.status_code in (401, 403):
            raise AdminError(f"the admin token was refused (HTTP {resp.status_code})")
        self._check(resp, "GET /admin/flags/audit")

    def set_mode(self, mode: str, reason: str) -> tuple[float, float, dict[str, Any]]:
        """Flip the flag. Returns (requested_at, applied_at, state), epoch seconds.

        applied_at is the service's own `applied_at` (when the replica started using the mode);
        without one, the time the answer arrived.
        """
        return self.set_flag("provider_skip", mode, reason)

    def set_flag(self, name: str, mode: str, reason: str) -> tuple[float, float, dict[str, Any]]:
        """`PUT /admin/flags/<name>`: provider_skip, or an on/off switch (parallel_config on
        the executor, keepalive and async_logging on the gateway); as set_mode."""
        if not self.token:
            raise AdminError("no admin token (EXECBENCH_ADMIN_TOKEN or --admin-token): cannot flip the flag")
        requested = time.time()
        resp = self.http.put(f"/admin/flags/{name}", headers=self.headers,
                             json={"mode": mode, "reason": reason})
        answered = time.time()
        self._check(resp, f"PUT /admin/flags/{name} mode={mode}")
        state = resp.json()
        state = state.get(name, state)
        applied = answered
        if state.get("applied_at"):
            try:
                applied = parse_iso(str(state["applied_at"]))
            except ValueError:
                pass
        return requested, applied, state

    def set_provider(self, settings: dict[str, Any], reason: str) -> dict[str, Any]:
        if not self.token:
            raise AdminError("no admin token: cannot change the provider simulator")
        resp = self.http.put("/admin/provider", headers=self.headers, json={**settings, "reason": reason})
        self._check(resp, "PUT /admin/provider")
        return resp.json()

    def account_exists(self, user_type: str, user_id: int) -> bool:
        resp = self.http.get(f"/api/accounts/{user_type}/{user_id}")
        if resp.status_code in (404, 422):
            return False
        self._check(resp, f"GET /api/accounts/{user_type}/{user_id}")
        return True

    def ledger(self, *, by_mode: bool = True) -> dict[str, Any]:
        resp = self.http.get("/admin/ledger", headers=self.headers,
                             params=None if by_mode else {"by_mode": "false"})
        self._check(resp, "GET /admin/ledger")
        return resp.json()

    @staticmethod
    def _check(resp: httpx.Response, what: str) -> None:
        if resp.status_code >= 400:
            raise AdminError(f"{what}: HTTP {resp.status_code}: {resp.text[:300]}")
