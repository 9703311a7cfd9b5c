"""Start the examples/fastpath service as a real uvicorn subprocess (for this package's tests and
for experiments run against it): `start_fastpath(tmp_path)` -> a handle; `handle.stop()`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
FLAGCTL = REPO / "examples" / "fastpath" / "flagctl.py"
TOKEN = "fastpath-test-token"
# Small delays keep the tests quick (the variant still changes which code path runs); the limit
# is pinned so a developer's own FASTPATH_* environment cannot change what the tests expect.
QUICK = {
    "FASTPATH_CHECKOUT_LIMIT": "450",
    "FASTPATH_LEGACY_DELAY_MS": "4",
    "FASTPATH_FAST_DELAY_MS": "1",
    "FASTPATH_LEGACY_CPU_ROUNDS": "200",
    "FASTPATH_FAST_CPU_ROUNDS": "20",
    "FASTPATH_SEARCH_LEGACY_DELAY_MS": "2",
    "FASTPATH_SEARCH_FAST_DELAY_MS": "1",
}


@dataclass
class Fastpath:
    url: str
    flags_file: Path
    token: str
    process: subprocess.Popen
    log_path: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def evaluated_variant(self) -> str:
        return httpx.get(f"{self.url}/flags/fast_path", timeout=5).json()["variant"]

    def wait_for_variant(self, variant: str, timeout: float = 60.0) -> str:
        """Poll GET /flags/fast_path until it reads `variant`; return the last value read."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.evaluated_variant()
            if seen == variant or time.monotonic() > deadline:
                return seen
            time.sleep(0.02)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_fastpath(
    tmp_path: Path,
    *,
    flags_file: Path | None = None,
    poll_ms: int | None = 50,
    token: str = TOKEN,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Fastpath:
    """`python -m examples.fastpath.app` in tmp_path (PYTHONPATH = the repo), healthy or raise."""
    port = port or free_port()
    flags_file = flags_file or tmp_path / "flags.json"
    child_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FASTPATH_FLAG_TOKEN": token,
        **QUICK,
        **(env or {}),
    }
    if poll_ms is not None:
        child_env["FASTPATH_FLAG_POLL_MS"] = str(poll_ms)
    log_path = tmp_path / f"fastpath-{port}.log"
    # A deprecation inside the service fails it here, as pytest's own settings would.
    args = [sys.executable, "-W", "error::DeprecationWarning", "-m", "examples.fastpath.app"]
    args += ["--port", str(port), "--flags", str(flags_file)]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args, cwd=tmp_path, env=child_env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fastpath exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Fastpath(url, flags_file, token, process, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"fastpath did not become healthy:\n{log_path.read_text()}")
