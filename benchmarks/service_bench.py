"""Service benchmarks: the CPU cost of instrumentation, and unloaded throughput per mode.

    .venv/bin/python benchmarks/service_bench.py [--seconds 5] [--concurrency 16]

1. Instrumentation per request — everything the executor adds to observe one order:
   nine perf_counter_ns laps, the durations dict, the metric observations (label
   children bound once) and the timing-log record (enqueue + orjson line written by
   the writer thread). Measured as the instrumented loop minus an uninstrumented loop
   of the same shape, in one run.
2. Throughput with profile `none` (only the real work: SQLite, margin walk, JSON): an
   in-process ASGI client keeps `--concurrency` orders in flight for `--seconds` per
   mode and flow. One process = one event loop = at most one core, so orders/s here is
   orders/s per core.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from inprocess import seeded_client, set_mode  # benchmarks/inprocess.py
from prometheus_client import CollectorRegistry

from execbench.contract import STAGES
from service.executor import _Stopwatch
from service.metrics import ExecutorMetrics
from service.timing_log import TimingLog, iso_utc


def instrumentation_cost_us(n: int, log_path: Path) -> tuple[float, float]:
    metrics = ExecutorMetrics(CollectorRegistry(), runtime_collectors=False)
    log = TimingLog(log_path)
    log.start()

    def instrumented():
        watch = _Stopwatch()
        for stage in STAGES:
            watch.lap(stage, time.perf_counter_ns())
        durations = watch.finish()
        metrics.observe_order("provider", "skip", "success", durations)
        log.write({"ts": iso_utc(time.time()), "component": "python_api", "endpoint": "orders/instant/execute",
                   "status": "success", "order_id": "0b6c7f9e-2f3a-4c1e-9a57-1f0d3f1c2b44", "flow": "provider",
                   "mode": "skip", "replica": "bench", "durations_ms": durations})

    def bare():
        durations = dict.fromkeys(STAGES, 0.0)
        for stage in STAGES:
            durations[stage] += 0.0
        return durations

    cpu = time.process_time  # counts the writer thread's serialization too
    start = cpu()
    for _ in range(n):
        bare()
    bare_s = cpu() - start
    start = cpu()
    for _ in range(n):
        instrumented()
    log.close()  # include the writer thread's work for every record
    instrumented_s = cpu() - start
    return (instrumented_s - bare_s) / n * 1e6, instrumented_s / n * 1e6


async def throughput(seconds: float, concurrency: int) -> list[tuple[str, str, float, float]]:
    results = []
    async with seeded_client(users=200, run_workers=True, profile="none", timing_log=True) as client:
        for mode in ("off", "skip", "skip_reserve"):
            await set_mode(client, mode)
            for user_type, flow in (("live", "provider"), ("demo", "local")):
                done = 0
                deadline = time.perf_counter() + seconds
                cpu0 = time.process_time()
                wall0 = time.perf_counter()

                async def client_loop(worker: int, deadline=deadline, user_type=user_type):
                    nonlocal done
                    i = worker
                    while time.perf_counter() < deadline:
                        r = await client.post("/api/orders/instant/execute", json={
                            "user_id": 1 + i % 200, "user_type": user_type, "symbol": "EURUSD",
                            "side": "buy" if i % 2 else "sell", "volume": 0.01})
                        r.raise_for_status()
                        done += 1
                        i += concurrency

                await asyncio.gather(*(client_loop(w) for w in range(concurrency)))
                wall = time.perf_counter() - wall0
                cpu = time.process_time() - cpu0
                results.append((flow, mode, done / wall, cpu / wall))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        extra, total = instrumentation_cost_us(args.iterations, Path(tmp) / "t.jsonl")
    print(f"instrumentation CPU per request: {extra:.2f} µs (instrumented loop {total:.2f} µs/iter, "
          f"{args.iterations} iterations; target ≤ 10 µs)")
    print(f"throughput, profile none, {args.concurrency} in flight, {args.seconds:.0f} s each "
          "(in-process client shares the core):")
    for flow, mode, rate, cpu in asyncio.run(throughput(args.seconds, args.concurrency)):
        print(f"  {flow:8} {mode:12} {rate:8.0f} orders/s   process CPU {cpu:4.2f} cores")


if __name__ == "__main__":
    main()
