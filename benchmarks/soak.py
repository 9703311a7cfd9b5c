"""Soak: N minutes at a steady arrival rate against a real `execbench serve`.

    .venv/bin/python benchmarks/soak.py --minutes 10 --rate 40 [--profile seed] [--mode skip_reserve]

Starts its own service (SQLite in a temp dir, or --database-url) as a child process and
sends orders on a fixed schedule (open model: each send is planned, not paced by the
previous response). Prints, per minute, the count and the client p50/p99; at the end the
memory growth (RSS) of the service and of this load process, the p50 drift between the
first and the last minute, and the service's ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

TOKEN = secrets.token_hex(8)


def start_service(tmp: Path, args) -> tuple[subprocess.Popen, str]:
    port = args.port
    env = {**os.environ, "EXECBENCH_DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{tmp / 'soak.db'}",
           "EXECBENCH_PROFILE": args.profile, "EXECBENCH_MODE": args.mode,
           "EXECBENCH_ADMIN_TOKEN": TOKEN, "EXECBENCH_TIMING_LOG": str(tmp / "timings.jsonl")}
    exe = [sys.executable, "-m", "execbench"]
    subprocess.run([*exe, "seed", "--users", "500", "--orders-per-user", "10"], env=env, check=True,
                   capture_output=True)
    process = subprocess.Popen([*exe, "serve", "--port", str(port)], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("service did not start")


async def load(url: str, minutes: float, rate: float) -> list[list[float]]:
    per_minute: list[list[float]] = [[] for _ in range(int(minutes) + 1)]
    start = time.perf_counter()
    interval = 1.0 / rate
    total = int(minutes * 60 * rate)
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=200)) as client:
        async def one(i: int, planned: float) -> None:
            user_type = "live" if i % 3 else "demo"
            await client.post("/api/orders/instant/execute", json={
                "user_id": 1 + i % 500, "user_type": user_type, "symbol": "EURUSD",
                "side": "buy" if i % 2 else "sell", "volume": 0.01})
            latency_ms = (time.perf_counter() - (start + planned)) * 1000  # from the planned send
            per_minute[int(planned // 60)].append(latency_ms)

        tasks = []
        for i in range(total):
            planned = i * interval
            delay = start + planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, planned)))
            if i and i % int(rate * 60) == 0:
                done = per_minute[int(planned // 60) - 1]
                q = statistics.quantiles(done, n=100) if len(done) > 1 else [0] * 99
                print(f"minute {int(planned // 60):3d}: n={len(done):6d} p50={q[49]:7.1f} ms p99={q[98]:7.1f} ms",
                      flush=True)
        await asyncio.gather(*tasks)
    return [m for m in per_minute if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=40, help="orders per second")
    parser.add_argument("--profile", default="seed")
    parser.add_argument("--mode", default="off", choices=["off", "skip", "skip_reserve"])
    parser.add_argument("--database-url")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_service(Path(tmp), args)
        service = psutil.Process(process.pid)
        me = psutil.Process()
        rss0 = service.memory_info().rss, me.memory_info().rss
        try:
            minutes = asyncio.run(load(url, args.minutes, args.rate))
            time.sleep(3)  # let the provider answer the last orders
            rss1 = service.memory_info().rss, me.memory_info().rss
            ledger = httpx.get(f"{url}/admin/ledger", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    first, last = statistics.median(minutes[0]), statistics.median(minutes[-1])
    print(f"service RSS {rss0[0] / 2**20:.1f} -> {rss1[0] / 2**20:.1f} MiB "
          f"({(rss1[0] - rss0[0]) / 2**20:+.1f} MiB); load process {rss0[1] / 2**20:.1f} -> "
          f"{rss1[1] / 2**20:.1f} MiB")
    print(f"p50 first minute {first:.1f} ms, last minute {last:.1f} ms, drift {last - first:+.1f} ms "
          f"({(last - first) / first:+.1%})")
    print("ledger:", ledger)


if __name__ == "__main__":
    main()
