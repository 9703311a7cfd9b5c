"""A real gateway process (`python -m gateway`) on a free port, stopped by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from tests.support import free_port

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDER = {"user_id": 1, "user_type": "live", "symbol": "EURUSD", "side": "buy", "volume": 0.01}


class GatewayHandle:
    def __init__(self, url: str, process: subprocess.Popen, timing_log, log_path):
        self.url, self.process, self.timing_log, self.log_path = url, process, timing_log, log_path

    def order(self, client: httpx.Client | None = None, **fields) -> httpx.Response:
        return (client or httpx).post(f"{self.url}/api/orders/instant/execute",
                                      json={**ORDER, **fields}, timeout=30)

    def flip(self, name: str, mode: str, headers=AUTH) -> httpx.Response:
        return httpx.put(f"{self.url}/admin/flags/{name}", headers=headers, timeout=10,
                         json={"mode": mode, "reason": "test", "actor": "tester"})

    def metric(self, name: str, labels: dict | None = None) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        want = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series == (f"{name}{{{want}}}" if want else name):
                return float(value)
        raise KeyError(f"{name}{{{want}}} not in /metrics")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_gateway(tmp_path, upstream: str, *, name: str = "gateway", args: list[str] | None = None,
                  env: dict[str, str] | None = None) -> GatewayHandle:
    port = free_port()
    timing_log = tmp_path / f"{name}-timings.jsonl"
    full_env = {**os.environ, "EXECBENCH_ADMIN_TOKEN": TOKEN, "EXECBENCH_PROFILE": "none",
                "EXECBENCH_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / f'{name}.db'}",
                "EXECBENCH_GATEWAY_TIMING_LOG": str(timing_log),
                "EXECBENCH_GATEWAY_FLAG_TTL_S": "0.2", **(env or {})}
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--upstream", upstream, "--host", "127.0.0.1",
             "--port", str(port), *(args or [])], env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return GatewayHandle(url, process, timing_log, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gateway did not become healthy:\n{log_path.read_text()}")
