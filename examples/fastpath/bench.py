"""Print what the fast_path flag does to fastpath's latency, and how long a flip takes to apply.

    .venv/bin/python examples/fastpath/bench.py [--port 9150] [--poll-ms 500] [--requests 200] [--flips 10]

Starts the service (default delays: the ones a user would see) with a fresh flag file in a temp
directory, then for each variant sends checkouts one at a time and reports the client and the
`Server-Timing: app` percentiles; then flips the flag back and forth through PUT /flags/fast_path
and through a direct temp-file-and-rename of the flag file, and reports the time until
GET /flags/fast_path reads the new variant (the provider's poll lag). A figure, not a test: on a
busy machine the numbers move, which is why the test suite asserts none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
TOKEN = "bench-token"


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {cuts[49]:7.2f}  p90 {cuts[89]:7.2f}  p99 {cuts[98]:7.2f}  (n={len(values)})"


def wait_for(client: httpx.Client, variant: str, timeout: float = 30.0) -> float:
    started = time.perf_counter()
    while client.get("/flags/fast_path").json()["variant"] != variant:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"flag never read {variant!r} within {timeout} s")
        time.sleep(0.002)
    return (time.perf_counter() - started) * 1000


def replace_file(path: Path, variant: str) -> None:
    document = json.loads(path.read_text())
    document["flags"]["fast_path"]["defaultVariant"] = variant
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(document, out)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9150)
    parser.add_argument("--poll-ms", type=int, help="FASTPATH_FLAG_POLL_MS (provider default 500)")
    parser.add_argument("--requests", type=int, default=200, help="checkouts per variant")
    parser.add_argument("--flips", type=int, default=10, help="flips per method")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fastpath-bench-"))
    flags = workdir / "flags.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FASTPATH_FLAG_TOKEN": TOKEN}
    if args.poll_ms is not None:
        env["FASTPATH_FLAG_POLL_MS"] = str(args.poll_ms)
    cmd = [sys.executable, "-m", "examples.fastpath.app", "--port", str(args.port)]
    process = subprocess.Popen(
        [*cmd, "--flags", str(flags)], cwd=workdir, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=10)
        for _ in range(300):
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("the service did not start")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        print(f"poll interval: {args.poll_ms or 'provider default (500)'} ms")
        for variant in ("legacy", "fast"):
            client.put("/flags/fast_path", json={"variant": variant}, headers=auth)
            wait_for(client, variant)
            client_ms, app_ms = [], []
            for _ in range(args.requests):
                body = {"user": "bench", "amount": 100, "ref": str(uuid.uuid4())}
                started = time.perf_counter()
                response = client.post("/api/checkout", json=body)
                client_ms.append((time.perf_counter() - started) * 1000)
                assert response.headers["X-Variant"] == variant
                app_ms.append(float(response.headers["Server-Timing"].split("dur=")[1]))
            print(f"checkout {variant:6}  client ms  {percentiles(client_ms)}")
            print(f"checkout {variant:6}  app ms     {percentiles(app_ms)}")
        current = "fast"
        for method in ("PUT", "file"):
            lags = []
            for _ in range(args.flips):
                variant = "legacy" if current == "fast" else "fast"
                # A flip right after a reload would always wait one whole poll: start at a random
                # phase of the provider's poll, as a harness's phase boundary does.
                time.sleep(random.uniform(0, (args.poll_ms or 500) / 1000))
                started = time.perf_counter()
                if method == "PUT":
                    client.put("/flags/fast_path", json={"variant": variant}, headers=auth)
                else:
                    replace_file(flags, variant)
                wait_for(client, variant)
                lags.append((time.perf_counter() - started) * 1000)
                current = variant
            print(f"flip via {method:4}  ms until GET reads it  {percentiles(lags)}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


if __name__ == "__main__":
    main()
