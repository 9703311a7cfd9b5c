"""Service benchmarks: the CPU cost of instrumentation, unloaded throughput per mode, and the
CPU a real `execbench serve` spends per order and when idle, old code against new.

    .venv/bin/python benchmarks/service_bench.py [--seconds 5] [--concurrency 16]
    .venv/bin/python benchmarks/service_bench.py --serve-cpu REV_OR_DIR [REV_OR_DIR ...]
        [--rate 10] [--seconds 30] [--idle-seconds 20] [--reps 3]

1. Instrumentation per request — everything the executor adds to observe one order:
   nine perf_counter_ns laps, the durations dict, the metric observations (label
   children bound once) and the timing-log record (enqueue + orjson line written by
   the writer thread). Measured as the instrumented loop minus an uninstrumented loop
   of the same shape, in one run.
2. Throughput with profile `none` (only the real work: SQLite, margin walk, JSON): an
   in-process ASGI client keeps `--concurrency` orders in flight for `--seconds` per
   mode and flow. One process = one event loop = at most one core, so orders/s here is
   orders/s per core.
3. `--serve-cpu`: for each git revision (exported with `git archive`) or source directory, a
   real `execbench serve` (profile `seed`, its workers in-process, SQLite in a temporary
   directory, 200 + 200 seeded accounts) is measured idle for `--idle-seconds` (CPU % of one
   core), then driven at a steady `--rate` orders/s (every 1/rate s, half provider, half local,
   mode off) for `--seconds`; its CPU seconds (user + system, every thread, the workers'
   confirmations included) over the orders sent is its CPU per order, beside the p50 of the
   timing log's executor_ms per flow over the same orders. The revisions alternate (A B, B A,
   ...) for `--reps` rounds, so a machine that gets busier or quieter moves both.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import orjson
from inprocess import seeded_client, set_mode  # benchmarks/inprocess.py
from prometheus_client import CollectorRegistry

from execbench.contract import STAGES
from service.executor import _Stopwatch
from service.metrics import ExecutorMetrics
from service.timing_log import TimingLog, iso_utc


class StockMetrics:
    """The peer: the executor's two histograms and its counter as stock prometheus-client
    objects (same buckets, same labels, children bound once), where ExecutorMetrics uses the
    bisecting collector of service/histogram.py."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        from service.metrics import LATENCY_BUCKETS

        registry = CollectorRegistry()
        orders = Counter("orders", "", ["flow", "mode", "status"], registry=registry)
        duration = Histogram("duration_seconds", "", ["flow", "mode", "status"],
                             buckets=LATENCY_BUCKETS, registry=registry)
        stage = Histogram("stage_seconds", "", ["stage", "flow", "mode"], buckets=LATENCY_BUCKETS,
                          registry=registry)
        self._orders = orders.labels("provider", "skip", "success")
        self._duration = duration.labels("provider", "skip", "success")
        self._stages = {s: stage.labels(s, "provider", "skip") for s in STAGES}

    def observe_order(self, flow: str, mode: str, status: str, durations_ms: dict) -> None:
        self._orders.inc()
        self._duration.observe(durations_ms["executor_ms"] / 1000)
        for name, child in self._stages.items():
            child.observe(durations_ms[name] / 1000)


def instrumentation_cost_us(n: int, log_path: Path, metrics=None) -> tuple[float, float]:
    metrics = metrics or ExecutorMetrics(CollectorRegistry(), runtime_collectors=False)
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


REPO = Path(__file__).resolve().parent.parent
_CLI = "import sys; from execbench.cli import main; sys.exit(main())"


def export_source(rev_or_dir: str, into: Path) -> Path:
    """A directory holding the code to run: the directory itself, or the revision's tree."""
    if Path(rev_or_dir).is_dir():
        return Path(rev_or_dir).resolve()
    target = into / rev_or_dir.replace("/", "_")
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev_or_dir],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _steady_orders(base: str, rate: float, seconds: float, seed: int) -> int:
    """One order every 1/rate s for `seconds` (open model: a slow answer delays no send)."""
    import httpx

    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def one(i: int) -> None:
            response = await client.post("/api/orders/instant/execute", json={
                "user_id": rng.randint(1, 200), "user_type": "live" if i % 2 else "demo",
                "symbol": rng.choice(("EURUSD", "GBPUSD", "USDJPY")), "side": rng.choice(("buy", "sell")),
                "volume": 0.01})
            if response.status_code not in (200, 409):
                raise RuntimeError(f"order answered {response.status_code}: {response.text[:200]}")

        start, tasks, i = time.perf_counter(), [], 0
        while i / rate < seconds:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
            i += 1
        await asyncio.gather(*tasks)
    return i


def serve_cpu_once(source: Path, *, rate: float, seconds: float, idle_s: float) -> dict:
    import httpx
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(source), "EXECBENCH_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
               "EXECBENCH_TIMING_LOG": f"{tmp}/timings.jsonl", "EXECBENCH_PROFILE": "seed",
               "EXECBENCH_MODE": "off"}
        python = [sys.executable, "-c", _CLI]
        subprocess.run([*python, "seed", "--users", "200", "--orders-per-user", "8"], env=env, cwd=source,
                       check=True, capture_output=True)
        port = _free_port()
        with open(Path(tmp) / "serve.log", "wb") as log:
            server = subprocess.Popen([*python, "serve", "--port", str(port)], env=env, cwd=source,
                                      stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serve did not start:\n" + (Path(tmp) / "serve.log").read_text())
                time.sleep(0.1)
            process = psutil.Process(server.pid)

            def cpu_s() -> float:
                times = process.cpu_times()
                return times.user + times.system

            time.sleep(2.0)  # startup work done
            load_start = os.getloadavg()[0]
            c0, w0 = cpu_s(), time.perf_counter()
            time.sleep(idle_s)
            idle_pct = (cpu_s() - c0) / (time.perf_counter() - w0) * 100
            asyncio.run(_steady_orders(base, rate, 2.0, seed=0))  # warm-up: caches, pool, first compiles
            time.sleep(1.0)
            log_path = Path(tmp) / "timings.jsonl"
            skip = len(log_path.read_bytes().splitlines())
            c0 = cpu_s()
            orders = asyncio.run(_steady_orders(base, rate, seconds, seed=1))
            time.sleep(1.5)  # the provider answers of the last orders (150 ms lognormal) are part of them
            busy_s = cpu_s() - c0
            records = [orjson.loads(line) for line in log_path.read_bytes().splitlines()[skip:]]
            p50 = {flow: statistics.median([r["durations_ms"]["executor_ms"] for r in records
                                            if r["flow"] == flow and r["status"] == "success"] or [math.nan])
                   for flow in ("provider", "local")}
            return {"cpu_ms_per_order": busy_s / orders * 1000, "idle_pct": idle_pct, "orders": orders,
                    "load": (load_start + os.getloadavg()[0]) / 2, "p50": p50}
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def serve_cpu(revisions: list[str], *, rate: float, seconds: float, idle_s: float, reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sources = {rev: export_source(rev, Path(tmp)) for rev in revisions}
        results: dict[str, list[dict]] = {rev: [] for rev in revisions}
        print(f"execbench serve, profile seed, SQLite, {rate:g} orders/s for {seconds:g} s "
              f"(half provider, half local, mode off), idle {idle_s:g} s; {reps} interleaved rounds")
        for rep in range(reps):
            for rev in (revisions if rep % 2 == 0 else revisions[::-1]):
                r = serve_cpu_once(sources[rev], rate=rate, seconds=seconds, idle_s=idle_s)
                results[rev].append(r)
                print(f"  round {rep + 1} {rev:>14}: {r['cpu_ms_per_order']:6.2f} ms CPU/order "
                      f"({r['orders']} orders)   idle {r['idle_pct']:5.2f} % of a core   executor_ms p50 "
                      f"provider {r['p50']['provider']:.1f} local {r['p50']['local']:.1f}   load {r['load']:.2f}",
                      flush=True)
        print("median [min, max] over rounds:")
        for rev, rows in results.items():
            per_order = [r["cpu_ms_per_order"] for r in rows]
            idle = [r["idle_pct"] for r in rows]
            provider = [r["p50"]["provider"] for r in rows]
            print(f"  {rev:>14}: {statistics.median(per_order):6.2f} [{min(per_order):.2f}, {max(per_order):.2f}] "
                  f"ms CPU/order   idle {statistics.median(idle):5.2f} [{min(idle):.2f}, {max(idle):.2f}] %   "
                  f"provider executor_ms p50 {statistics.median(provider):.1f} [{min(provider):.1f}, {max(provider):.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=None, help="per mode and flow (5), or per --serve-cpu run (30)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--serve-cpu", nargs="+", metavar="REV_OR_DIR",
                        help="measure `execbench serve` CPU per order and idle, interleaved across these")
    parser.add_argument("--rate", type=float, default=10.0, help="--serve-cpu: orders per second")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.serve_cpu:
        serve_cpu(args.serve_cpu, rate=args.rate, seconds=args.seconds or 30.0, idle_s=args.idle_seconds,
                  reps=args.reps)
        return
    args.seconds = args.seconds or 5.0
    with tempfile.TemporaryDirectory() as tmp:
        # the executor's and the stock peer's alternately, twice each: a ratio from one run
        runs = {"execbench": [], "stock": []}
        for i in range(4):
            name = ("execbench", "stock")[i % 2]
            runs[name].append(instrumentation_cost_us(
                args.iterations, Path(tmp) / f"t{i}.jsonl",
                StockMetrics() if name == "stock" else None)[0])
    ours, stock = min(runs["execbench"]), min(runs["stock"])
    print(f"instrumentation CPU per request: {ours:.2f} µs (best of 2, {args.iterations} iterations; "
          f"target ≤ 10 µs); with stock prometheus-client histograms {stock:.2f} µs: "
          f"ratio {ours / stock:.2f}")
    print(f"throughput, profile none, {args.concurrency} in flight, {args.seconds:.0f} s each "
          "(in-process client shares the core):")
    for flow, mode, rate, cpu in asyncio.run(throughput(args.seconds, args.concurrency)):
        print(f"  {flow:8} {mode:12} {rate:8.0f} orders/s   process CPU {cpu:4.2f} cores")


if __name__ == "__main__":
    main()
