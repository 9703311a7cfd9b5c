"""Order latency under a flood of unauthenticated admin calls, against the real service.

    .venv/bin/python benchmarks/flood_bench.py [--backend sqlite|postgres|both] [--runs 1]
        [--rate 10] [--seconds 20] [--after 10] [--flood-clients 8] [--flood-procs 2]
        [--no-throttle] [--service-root DIR]

Starts `execbench serve` (uvicorn, profile `seed`, mode `off`, 200 live accounts) the way the
tests do (tests/support.py), on a temporary SQLite file and/or a fresh PostgreSQL database.
Then, in one run: a steady open-model order load (`--rate` live-account orders a second on a
fixed schedule) for `--seconds` quiet, the same load for `--seconds` while `--flood-clients`
connections (spread over `--flood-procs` processes, so the flood's client CPU is not the order
client's) send unauthenticated admin calls as fast as the service answers them, ignoring
Retry-After: PUT /admin/flags/provider_skip and POST /admin/flags without a token and with a
wrong one, GET /admin/ledger without and with a wrong token; then `--after` seconds quiet again.

Prints per phase the orders' client latency p50/p95/p99 (from the scheduled send) and the
server's `executor_ms` p50 (timing log), the flood/quiet ratios, the flood's request rate and
its answers by status (401/403/429), the audit rows the flood left, and the load average at
each phase's start (the box is shared: read the figures beside it). `--no-throttle` lifts the
per-source refusal budget (the gate alone, every refusal a 401/403); `--service-root DIR` runs
the service package found in DIR (e.g. a `git archive` of an older commit) for a before/after.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
import orjson

from tests.support import create_postgres_database, drop_postgres_database, start_service

ORDER = "/api/orders/instant/execute"
USERS = 200


def _flood_requests(host: str) -> list[bytes]:
    body = b'{"mode": "skip", "reason": "flood"}'
    head = f"Host: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
    wrong = b"Authorization: Bearer not-the-token\r\n"
    get_head = f"Host: {host}\r\n".encode()
    return [
        b"PUT /admin/flags/provider_skip HTTP/1.1\r\n" + head + b"\r\n" + body,
        b"PUT /admin/flags/provider_skip HTTP/1.1\r\n" + head + wrong + b"\r\n" + body,
        b"POST /admin/flags HTTP/1.1\r\n" + head + b"\r\n" + body,
        b"POST /admin/flags HTTP/1.1\r\n" + head + wrong + b"\r\n" + body,
        b"GET /admin/ledger HTTP/1.1\r\n" + get_head + b"\r\n",
        b"GET /admin/ledger HTTP/1.1\r\n" + get_head + wrong + b"\r\n",
    ]


async def _flood_connection(host: str, port: int, requests: list[bytes], stop, counts: Counter) -> None:
    """One keep-alive connection sending the requests in turn as fast as answers come back
    (a raw HTTP/1.1 client: an attacker's tool costs little CPU per request; httpx would make
    the flood as slow as its own client)."""
    i = random.randrange(len(requests))
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            counts["connect_error"] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while not stop.is_set():
                writer.write(requests[i % len(requests)])
                i += 1
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length, close = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)
                counts[status] += 1
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["connection_lost"] += 1
        finally:
            writer.close()


def _flood_process(host: str, port: int, connections: int, ready, stop, out) -> None:
    async def main():
        counts: Counter = Counter()
        requests = _flood_requests(f"{host}:{port}")

        class Stop:  # the multiprocessing event, polled without blocking the loop
            def is_set(self):
                return stop.is_set()

        tasks = [asyncio.create_task(_flood_connection(host, port, requests, Stop(), counts))
                 for _ in range(connections)]
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await asyncio.wait(tasks, timeout=10)
        out.put(dict(counts))

    asyncio.run(main())


class Flood:
    def __init__(self, url: str, clients: int, procs: int):
        host, port = url.removeprefix("http://").split(":")
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self.out = ctx.Queue()
        procs = max(1, min(procs, clients))
        shares = [clients // procs + (k < clients % procs) for k in range(procs)]
        self.ready = [ctx.Event() for _ in shares]
        self.processes = [ctx.Process(target=_flood_process, daemon=True,
                                      args=(host, int(port), n, ready, self.stop, self.out))
                          for n, ready in zip(shares, self.ready, strict=True)]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        for ready in self.ready:
            ready.wait(60)
        self.started = time.monotonic()

    def finish(self) -> tuple[Counter, float]:
        self.stop.set()
        elapsed = time.monotonic() - self.started
        counts: Counter = Counter()
        for _ in self.processes:
            counts.update(self.out.get(timeout=60))
        for process in self.processes:
            process.join(timeout=30)
        return counts, elapsed


async def _order_phase(client: httpx.AsyncClient, rate: float, seconds: float, rng: random.Random) -> dict:
    """`rate` orders a second on a fixed schedule; latency from each order's scheduled time."""
    latencies, statuses, order_ids = [], Counter(), []

    async def one(intended: float) -> None:
        body = {"user_id": rng.randint(1, USERS), "user_type": "live", "symbol": "EURUSD",
                "side": rng.choice(("buy", "sell")), "volume": 0.01}
        try:
            response = await client.post(ORDER, json=body)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                order_ids.append(response.json()["order_id"])
        except httpx.HTTPError:
            statuses["error"] += 1
            return
        latencies.append((time.perf_counter() - intended) * 1000)

    start = time.perf_counter()
    tasks = []
    for k in range(int(rate * seconds)):
        intended = start + k / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(intended)))
    await asyncio.gather(*tasks)
    return {"latencies": latencies, "statuses": statuses, "order_ids": order_ids}


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def _drive(svc, args) -> dict:
    rng = random.Random(20261202)
    phases: dict[str, dict] = {}
    async with httpx.AsyncClient(base_url=svc.url, timeout=60,
                                 limits=httpx.Limits(max_connections=200)) as client:
        await _order_phase(client, args.rate, 3, rng)  # warm-up, not recorded
        for name in ("quiet", "flood", "after"):
            seconds = args.after if name == "after" else args.seconds
            if not seconds:
                continue
            flood = None
            if name == "flood":
                flood = Flood(svc.url, args.flood_clients, args.flood_procs)
                flood.start()
            load = _loadavg()
            phases[name] = await _order_phase(client, args.rate, seconds, rng)
            phases[name]["load"] = load
            if flood is not None:
                phases[name]["flood"], phases[name]["flood_s"] = flood.finish()
        headers = {"Authorization": f"Bearer {svc.admin_token}"}
        audit = (await client.get("/admin/flags/audit", headers=headers,
                                  params={"action": "refused", "limit": 500})).json()["entries"]
    phases["audit"] = {"rows": len(audit), "attempts": sum(e["attempts"] for e in audit)}
    return phases


def _server_p50(timing_log: Path, order_ids: list[str]) -> float:
    wanted = set(order_ids)
    values = []
    if timing_log.exists():
        for line in timing_log.read_bytes().splitlines():
            record = orjson.loads(line)
            if record.get("order_id") in wanted:
                values.append(record["durations_ms"]["executor_ms"])
    return _q(values, 0.5)


def run_once(backend: str, args, index: int) -> None:
    with tempfile.TemporaryDirectory(prefix="flood-bench-") as tmp:
        tmp_path = Path(tmp)
        url = create_postgres_database() if backend == "postgres" else None
        env = {"EXECBENCH_PROVIDER_SEED": "7"}
        if args.no_throttle:
            env["EXECBENCH_ADMIN_REFUSAL_BURST"] = "1000000000"
        if args.service_root:
            env["PYTHONPATH"] = str(Path(args.service_root).resolve())
        try:
            svc = start_service(tmp_path, database_url=url, profile="seed", mode="off",
                                admin_token="flood-bench-token", seed_users=USERS, orders_per_user=5,
                                extra_env=env)
            try:
                phases = asyncio.run(_drive(svc, args))
            finally:
                svc.stop()
            _report(backend, index, args, phases, svc.timing_log)
        finally:
            if url:
                drop_postgres_database(url)


def _report(backend: str, index: int, args, phases: dict, timing_log: Path) -> None:
    label = "gate, no throttle" if args.no_throttle else "gate + throttle"
    if args.service_root:
        label = f"service from {args.service_root}" + (", no throttle" if args.no_throttle else "")
    print(f"\n== {backend}, run {index} ({label}); {args.rate:g} orders/s, {args.seconds:g} s per phase, "
          f"{args.flood_clients} flood connections in {args.flood_procs} processes")
    print(f"{'phase':<6} {'orders':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'server p50':>11}  "
          f"statuses            load avg 1/5/15 at start")
    for name in ("quiet", "flood", "after"):
        if name not in phases:
            continue
        p = phases[name]
        lat = p["latencies"]
        print(f"{name:<6} {len(lat):>6} {_q(lat, .5):>8.1f} {_q(lat, .95):>8.1f} {_q(lat, .99):>8.1f} "
              f"{_server_p50(timing_log, p['order_ids']):>11.1f}  {dict(p['statuses'])!s:<19} {p['load']}")
    quiet, flood = phases["quiet"]["latencies"], phases["flood"]["latencies"]
    print(f"flood/quiet: p50 x{_q(flood, .5) / _q(quiet, .5):.3f}, p95 x{_q(flood, .95) / _q(quiet, .95):.3f}, "
          f"p99 x{_q(flood, .99) / _q(quiet, .99):.3f}")
    counts, seconds = phases["flood"]["flood"], phases["flood"]["flood_s"]
    total = sum(v for k, v in counts.items() if isinstance(k, int))
    print(f"flood: {total:,} answers in {seconds:.1f} s = {total / seconds:,.0f} req/s; "
          + ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))))
    print(f"audit trail after the run: {phases['audit']['rows']} refused rows holding "
          f"{phases['audit']['attempts']:,} attempts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0, help="orders a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="quiet and flood phase length")
    parser.add_argument("--after", type=float, default=10.0, help="quiet phase after the flood (0: none)")
    parser.add_argument("--flood-clients", type=int, default=8)
    parser.add_argument("--flood-procs", type=int, default=2)
    parser.add_argument("--no-throttle", action="store_true", help="lift the per-source refusal budget")
    parser.add_argument("--service-root", help="run the service package from this directory")
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    for index in range(1, args.runs + 1):
        for backend in backends:
            run_once(backend, args, index)


if __name__ == "__main__":
    main()
