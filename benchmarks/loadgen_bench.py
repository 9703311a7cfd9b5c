"""Load-generator benchmarks: how much one Locust process can drive, and how honest it is.

    python benchmarks/loadgen_bench.py capacity [--rates 100,200,400,...] [--step-s 10]
        Generator capacity: stepped fixed-rate arrivals from ONE `execbench run` process against
        a trivial target (an asyncio HTTP server answering canned JSON, in its own process).
        For each step: achieved rate, late sends, and the generator's CPU (psutil, sampled over
        the step). The figure: the highest step held within 5 % with < 1 % late sends and the
        generator at <= 70 % of one core.

    python benchmarks/loadgen_bench.py accuracy [--rate 10] [--seconds 30]
        Measurement accuracy: a real `execbench serve` with profile `seed` (SQLite), a modest
        fixed rate with the flag off; client p50 (requests.jsonl) vs server executor_ms p50
        (timings.jsonl) per flow, and the difference in ms (HTTP, JSON, the event loop and the
        client's own overhead).

    python benchmarks/loadgen_bench.py serve-trivial --port P
        Just the trivial target (also handy to try the runner without the service).

Only processes this script starts are stopped, by their PID.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- the trivial target ---------------------------------------------------------------------


class TrivialTarget:
    """Just enough of the executor's API for the runner: canned answers, no work."""

    def __init__(self):
        self.mode = "off"
        self.applied_at = self._now()
        self.orders = 0

    @staticmethod
    def _now() -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if path == "/api/orders/instant/execute" and method == "POST":
            self.orders += 1
            try:
                req = json.loads(body)
            except ValueError:
                return 422, b'{"detail":"invalid json"}'
            live = req.get("user_type") == "live"
            out = {"order_id": str(self.orders), "status": "queued" if live else "executed",
                   "flow": "provider" if live else "local", "mode": self.mode,
                   "margin_usd": 1085.0 * float(req.get("volume", 0.01)),
                   "durations_ms": {"executor_ms": 0.1}}
            return 200, json.dumps(out).encode()
        if path == "/healthz":
            return 200, b'{"status":"ok"}'
        if path.startswith("/api/accounts/"):
            return 200, (b'{"balance":1e9,"equity":1e9,"used_margin":0,"reserved_margin":0,'
                         b'"free_margin":1e9,"open_orders":0,"queued_orders":0}')
        if path == "/admin/flags/provider_skip" and method == "PUT":
            self.mode = json.loads(body)["mode"]
            self.applied_at = self._now()
            return 200, self._flag()
        if path == "/admin/flags":
            return 200, json.dumps({"provider_skip": json.loads(self._flag())}).encode()
        if path == "/admin/ledger":
            return 200, json.dumps({"orders_total": self.orders, "orders_nonterminal": 0,
                                    "overcommits": {"off": 0, "skip": 0, "skip_reserve": 0},
                                    "reserved_vs_open_residual_usd": 0.0, "releases_total": 0,
                                    "double_releases": 0}).encode()
        if path == "/admin/provider":
            return 200, b'{"outage":false,"reject_ratio":0,"timeout_ratio":0}'
        return 404, b'{"detail":"not found"}'

    def _flag(self) -> bytes:
        return json.dumps({"mode": self.mode, "changed_at": self.applied_at,
                           "changed_by": "bench", "applied_at": self.applied_at}).encode()

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                status, payload = self.handle(method, path, body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(payload)}\r\n\r\n".encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


def serve_trivial(port: int) -> None:
    target = TrivialTarget()

    async def main():
        server = await asyncio.start_server(target.client, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# --- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not up")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_spec(path: Path, name: str, phases: list[tuple[str, float, float]], mix="trader_mix",
               provider_share=0.5, max_inflight=256, arrival="fixed") -> None:
    lines = [f'name = "{name}"', 'profile = "none"', "", "[load]", f'arrival = "{arrival}"',
             "rate = 1.0", f"provider_share = {provider_share}", f"max_inflight = {max_inflight}",
             "drain_s = 1", "", "[load.population]", "users = 100", "", "[load.mix]",
             f"{mix} = 1.0", ""]
    for pname, duration, rate in phases:
        lines += ["[[phases]]", f'name = "{pname}"', f"duration_s = {duration}", 'mode = "off"',
                  f"rate = {rate}", ""]
    path.write_text("\n".join(lines))


def run_cli(args: list[str], env: dict | None = None, sample_cpu: bool = False):
    """Run `execbench ...`; with sample_cpu, sample its CPU% once a second: [(epoch, cpu%)]."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "execbench", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, float]] = []
    if sample_cpu:
        ps = psutil.Process(proc.pid)

        def sampler():
            ps.cpu_percent(None)
            while proc.poll() is None:
                time.sleep(1.0)
                try:
                    samples.append((time.time(), ps.cpu_percent(None)))
                except psutil.Error:
                    return

        threading.Thread(target=sampler, daemon=True).start()
    out, _ = proc.communicate(timeout=3600)
    return proc.returncode, out, samples


# --- benchmarks ------------------------------------------------------------------------------


def capacity(args) -> int:
    from loadtests.records import parse_iso, read_jsonl

    rates = [float(r) for r in args.rates.split(",")]
    port = free_port()
    target = subprocess.Popen([sys.executable, __file__, "serve-trivial", "--port", str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "capacity.toml"
            phases = [("warmup", 3, rates[0])] + [(f"r{int(r)}", args.step_s, r) for r in rates]
            write_spec(spec, "loadgen-capacity", phases, max_inflight=args.max_inflight)
            run_dir = Path(tmp) / "run"
            code, out, cpu = run_cli(["run", str(spec), "--target", url, "--run-dir", str(run_dir),
                                      "--admin-token", "x", "--no-table"], sample_cpu=True)
            if code != 0:
                print(out)
                return 1
            records = read_jsonl(run_dir / "requests.jsonl")
            windows = {}
            for ev in read_jsonl(run_dir / "timeline.jsonl"):
                if ev["event"] == "phase_start":
                    windows[ev["phase"]] = [parse_iso(ev["ts"]), None]
                elif ev["event"] == "phase_end":
                    windows[ev["phase"]][1] = parse_iso(ev["ts"])
            print(f"generator capacity (one process, 2-core box, trivial target on the same box), "
                  f"step {args.step_s:.0f} s")
            print(f"{'target/s':>9} {'sent/s':>8} {'late %':>7} {'gen CPU %':>9} "
                  f"{'p50 ms':>7} {'p99 ms':>7}  held")
            best = None
            for r in rates:
                start, end = windows[f"r{int(r)}"]
                recs = [x for x in records if x["phase"] == f"r{int(r)}"]
                sent = sum(1 for x in recs if start <= parse_iso(x["sent_ts"]) < end)
                rate = sent / (end - start)
                late = sum(1 for x in recs if x["late"]) / max(1, len(recs)) * 100
                inside = [c for t, c in cpu if start + 1 <= t <= end]
                mean_cpu = sum(inside) / len(inside) if inside else float("nan")
                lat = sorted(x["latency_ms"] for x in recs) or [float("nan")]
                ok = abs(rate - r) / r <= 0.05 and late < 1.0 and mean_cpu <= 70
                if ok:
                    best = r
                print(f"{r:9.0f} {rate:8.1f} {late:7.2f} {mean_cpu:9.1f} "
                      f"{lat[len(lat) // 2]:7.2f} {lat[int(len(lat) * 0.99)]:7.2f}  "
                      f"{'yes' if ok else 'no'}")
            print(f"highest step held at <= 70 % CPU with < 1 % late sends: {best} req/s")
    finally:
        stop(target)
    return 0


def accuracy(args) -> int:
    import numpy as np

    from loadtests.records import read_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        token = secrets.token_urlsafe(16)
        port = free_port()
        env = {**os.environ, "EXECBENCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}",
               "EXECBENCH_PROFILE": "seed", "EXECBENCH_ADMIN_TOKEN": token,
               "EXECBENCH_TIMING_LOG": str(tmp / "timings.jsonl")}
        subprocess.run([sys.executable, "-m", "execbench", "seed", "--users", "100"], env=env,
                       check=True, capture_output=True, cwd=ROOT)
        service = subprocess.Popen([sys.executable, "-m", "execbench", "serve", "--host",
                                    "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/healthz")
            spec = tmp / "accuracy.toml"
            write_spec(spec, "loadgen-accuracy", [("warmup", 5, args.rate),
                                                  ("measure", args.seconds, args.rate)])
            run_dir = tmp / "run"
            code, out, _ = run_cli(["run", str(spec), "--target", url, "--run-dir", str(run_dir),
                                    "--timing-log", str(tmp / "timings.jsonl"), "--no-table"],
                                   env={"EXECBENCH_ADMIN_TOKEN": token})
            if code != 0:
                print(out)
                return 1
        finally:
            stop(service)
        from loadtests.summary import per_phase

        print(f"accuracy: profile seed, flag off, fixed {args.rate}/s, {args.seconds:.0f} s "
              f"measured (client = requests.jsonl latency_ms, server = executor_ms)")
        print(f"{'flow':>9} {'n':>5} {'client p50':>11} {'server p50':>11} {'diff ms':>8}")
        for row in per_phase(run_dir):
            if row["phase"] != "measure" or row["client_p50"] is None:
                continue
            diff = row["client_p50"] - row["server_p50"]
            print(f"{row['flow']:>9} {row['requests']:5d} {row['client_p50']:11.1f} "
                  f"{row['server_p50']:11.1f} {diff:8.1f}")
        reqs = [r for r in read_jsonl(run_dir / "requests.jsonl") if r["phase"] == "measure"]
        late = np.mean([r["late"] for r in reqs]) * 100 if reqs else float("nan")
        print(f"late sends: {late:.2f} %")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("capacity")
    p.add_argument("--rates", default="100,200,300,400,600,800")
    p.add_argument("--step-s", type=float, default=10.0)
    p.add_argument("--max-inflight", type=int, default=256)
    p = sub.add_parser("accuracy")
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p = sub.add_parser("serve-trivial")
    p.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.cmd == "serve-trivial":
        serve_trivial(args.port)
        return 0
    return capacity(args) if args.cmd == "capacity" else accuracy(args)


if __name__ == "__main__":
    sys.exit(main())
