"""Load-generator benchmarks: how much one Locust process can drive, and how honest it is.

    python benchmarks/loadgen_bench.py capacity [--rates 1000 2000] [--step-s 10]
            [--parquet-ab] [--tree [LABEL=]DIR ...] [--reps N]
        Generator capacity: fixed-rate arrivals from ONE `execbench run` process (a run per
        rate: 3 s warmup, then the step) against a trivial target (an asyncio HTTP server
        answering canned JSON, in its own process), through the generic HTTP target (no admin
        calls: any service's path). For each step: achieved rate, late sends, lateness p99, and
        the generator's CPU per request (psutil user+system time over the step, all threads,
        / requests sent in it). Then plain Locust (benchmarks/locust_peer.py, FastHttpUser, the
        same body and target) at the same rate, its CPU per request, and the ratio
        execbench / Locust, measured in the same run, rate by rate.
        --parquet-ab also runs execbench with EXECBENCH_PARQUET=0 (no requests.parquet), and
        --tree the execbench of another checkout (`git archive OLD | tar -x -C DIR`), each
        interleaved with the others at every rate: before/after and the columnar writer's cost
        as ratios from one run. --reps N repeats the whole interleaved sequence N times (the
        machine is shared: one repetition is one sample of its load) and ends with each
        figure's range over the repetitions.

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
        if path == "/admin/flags/audit":
            return 200, b'{"entries":[]}'
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
    """A reference-pack spec (its order scenarios)."""
    lines = [f'name = "{name}"', 'profile = "none"', "", "[load]", f'arrival = "{arrival}"',
             "rate = 1.0", f"provider_share = {provider_share}", f"max_inflight = {max_inflight}",
             "drain_s = 1", "", "[load.population]", "users = 100", "", "[load.mix]",
             f"{mix} = 1.0", ""]
    lines += _phases(phases)
    path.write_text("\n".join(lines))


def write_generic_spec(path: Path, name: str, phases: list[tuple[str, float, float]],
                       max_inflight=256) -> None:
    """The same load through the generic HTTP target: one request, the peer's body."""
    lines = [f'name = "{name}"', 'modes = ["off"]', "", "[target]", 'health = "/healthz"', "",
             "[[target.requests]]", 'name = "order"', 'flow = "provider"', 'method = "POST"',
             'path = "/api/orders/instant/execute"',
             ('json = { user_id = 17, user_type = "live", symbol = "EURUSD", side = "buy", '
              'volume = 0.01 }'), "", "[load]", 'arrival = "fixed"', "rate = 1.0",
             f"max_inflight = {max_inflight}", "drain_s = 1", ""]
    lines += _phases(phases)
    path.write_text("\n".join(lines))


def _phases(phases: list[tuple[str, float, float]]) -> list[str]:
    lines = []
    for pname, duration, rate in phases:
        lines += ["[[phases]]", f'name = "{pname}"', f"duration_s = {duration}", 'mode = "off"',
                  f"rate = {rate}", ""]
    return lines


def run_cli(args: list[str], env: dict | None = None, sample_cpu: bool = False,
            argv: list[str] | None = None, cwd: Path = ROOT):
    """Run `execbench ...` (or `argv`); with sample_cpu, sample its CPU time (user + system,
    seconds, all threads) and its main thread's run-queue wait (seconds runnable but not
    running: /proc/PID/schedstat, where the kernel keeps it) every 0.25 s:
    [(epoch, cpu_seconds, runqueue_wait_seconds or None)]."""
    import psutil

    proc = subprocess.Popen(argv or [sys.executable, "-m", "execbench", *args], cwd=cwd,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, float]] = []
    if sample_cpu:
        ps = psutil.Process(proc.pid)

        def sampler():
            while proc.poll() is None:
                try:
                    t = ps.cpu_times()
                    samples.append((time.time(), t.user + t.system, _runqueue_wait(proc.pid)))
                except psutil.Error:
                    return
                time.sleep(0.25)

        threading.Thread(target=sampler, daemon=True).start()
    out, _ = proc.communicate(timeout=3600)
    return proc.returncode, out, samples


def _runqueue_wait(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def cpu_between(samples: list[tuple], start: float, end: float) -> tuple[float, float] | None:
    """(CPU seconds the process used, seconds) between two times (nearest samples inside)."""
    inside = [x for x in samples if start <= x[0] <= end]
    if len(inside) < 2:
        return None
    return inside[-1][1] - inside[0][1], inside[-1][0] - inside[0][0]


def runqueue_between(samples: list[tuple], start: float, end: float) -> float | None:
    """ms per second the generator's main thread (its event loop) was runnable but waiting
    for a core between two times: the neighbours' share of its lateness."""
    inside = [x for x in samples if start <= x[0] <= end and x[2] is not None]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][2] - inside[0][2]) / (inside[-1][0] - inside[0][0]) * 1000


# --- benchmarks ------------------------------------------------------------------------------


def capacity(args) -> int:
    rates = _rates(args.rates)
    # (label, checkout, extra environment): execbench of this tree first; the others are
    # measured in the same run, interleaved with it rate by rate (a shared machine's load
    # drifts: only figures taken side by side are compared)
    generators: list[tuple[str, Path, dict]] = [("execbench", ROOT, {})]
    if args.parquet_ab:
        generators.append(("no parquet", ROOT, {"EXECBENCH_PARQUET": "0"}))
    for tree in args.tree or []:
        label, _, path = tree.rpartition("=")
        generators.append((label or Path(path).name, Path(path).resolve(), {}))
    port = free_port()
    target = subprocess.Popen([sys.executable, __file__, "serve-trivial", "--port", str(port)])
    reps: list[dict[tuple[str, float], dict]] = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz")
        for _ in range(args.reps):
            results: dict[tuple[str, float], dict] = {}
            for r in rates:
                for label, tree, env in generators:
                    results[(label, r)] = execbench_step(url, r, args.step_s, args.max_inflight,
                                                         tree, env)
                    if results[(label, r)].get("error"):
                        print(results[(label, r)]["error"])
                        return 1
                results[("locust", r)] = locust_peer(url, r, args.step_s)
            reps.append(results)
    finally:
        stop(target)
    for i, results in enumerate(reps):
        if len(reps) > 1:
            print(f"\n--- repetition {i + 1} of {len(reps)}")
        _print_capacity(args, rates, generators, results)
    if len(reps) > 1:
        _print_ranges(rates, generators, reps)
    return 0


def _print_capacity(args, rates, generators, results) -> None:
    print(f"generator CPU per request, one process each, trivial target on the same 2-core box, "
          f"{args.step_s:.0f} s per rate")
    print(f"{'target/s':>9} {'sent/s':>8} {'late %':>7} {'late p99':>9} {'CPU %':>6} "
          f"{'µs/req':>7} | {'Locust/s':>9} {'CPU %':>6} {'µs/req':>7} | {'ratio':>6}")
    for r in rates:
        x, peer = results[("execbench", r)], results[("locust", r)]
        print(f"{r:9.0f} {x['rate']:8.1f} {x['late']:7.2f} {x['late_p99']:8.2f}ms "
              f"{_f(x['cpu_pct'], 6, 0)} {_f(x['cpu_us'], 7, 0)} | {peer['rate']:9.1f} "
              f"{_f(peer.get('cpu_pct'), 6, 0)} {_f(peer.get('cpu_us'), 7, 0)} | "
              f"{_f(_ratio(x, peer), 6, 2)}")
    print("ratio: execbench CPU per request / plain Locust FastHttpUser CPU per request, same run")
    if len(generators) > 1:
        print("\nthe same steps from the other generators, interleaved with the above rate by rate")
        print(f"{'generator':>14} {'target/s':>9} {'sent/s':>8} {'late %':>7} {'late p99':>9} "
              f"{'rq ms/s':>7} {'CPU %':>6} {'µs/req':>7} | {'/ Locust':>8} {'/ execbench':>11}")
        for r in rates:
            base, peer = results[("execbench", r)], results[("locust", r)]
            for label, _, _ in generators:
                x = results[(label, r)]
                print(f"{label:>14} {r:9.0f} {x['rate']:8.1f} {x['late']:7.2f} "
                      f"{x['late_p99']:8.2f}ms {_f(x.get('rq_wait'), 7, 0)} "
                      f"{_f(x['cpu_pct'], 6, 0)} {_f(x['cpu_us'], 7, 0)} | "
                      f"{_f(_ratio(x, peer), 8, 2)} {_f(_ratio(x, base), 11, 2)}")
    for r in rates:
        if results[("locust", r)].get("error"):
            print(f"Locust at {r:.0f}/s measured nothing: {results[('locust', r)]['error']}")


def _print_ranges(rates, generators, reps) -> None:
    """min-max of each figure over the repetitions (each repetition interleaved in itself)."""

    def span(values, digits):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        lo, hi = min(values), max(values)
        return f"{lo:.{digits}f}" if lo == hi else f"{lo:.{digits}f}-{hi:.{digits}f}"

    print(f"\nranges over {len(reps)} repetitions (min-max); rq wait: ms per second the "
          "generator's event-loop thread waited for a core (the box's other work)")
    print(f"{'generator':>14} {'target/s':>9} {'sent/s':>13} {'late p50 ms':>12} "
          f"{'late p99 ms':>12} {'p99.9 ms':>12} {'early':>6} {'rq wait':>10} {'µs/req':>9} "
          f"{'/ Locust':>11}")
    for r in rates:
        for label in [g[0] for g in generators] + ["locust"]:
            rows = [rep[(label, r)] for rep in reps]
            ratios = [None if label == "locust" else _ratio(x, rep[("locust", r)])
                      for x, rep in zip(rows, reps, strict=True)]
            print(f"{label:>14} {r:9.0f} {span([x.get('rate') for x in rows], 0):>13} "
                  f"{span([x.get('late_p50') for x in rows], 2):>12} "
                  f"{span([x.get('late_p99') for x in rows], 2):>12} "
                  f"{span([x.get('late_p999') for x in rows], 2):>12} "
                  f"{span([x.get('early') for x in rows], 0):>6} "
                  f"{span([x.get('rq_wait') for x in rows], 0):>10} "
                  f"{span([x.get('cpu_us') for x in rows], 0):>9} {span(ratios, 2):>11}")


def _rates(values: list[str]) -> list[float]:
    """--rates 1000 2000, or --rates 1000,2000 (both spellings)."""
    return [float(x) for v in values for x in v.split(",") if x.strip()]


def _ratio(x: dict, peer: dict) -> float | None:
    return x["cpu_us"] / peer["cpu_us"] if x.get("cpu_us") and peer.get("cpu_us") else None


def execbench_step(url: str, rate: float, seconds: float, max_inflight: int, tree: Path,
                   env: dict) -> dict:
    """One `execbench run` (of the checkout `tree`) at `rate`: a 3 s warmup, then `seconds`
    measured. CPU per request over the measured phase (its first second left out)."""
    from loadtests.records import parse_iso, read_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "capacity.toml"
        step = f"r{int(rate)}"
        write_generic_spec(spec, "loadgen-capacity", [("warmup", 3, rate), (step, seconds, rate)],
                           max_inflight=max_inflight)
        run_dir = Path(tmp) / "run"
        code, out, cpu = run_cli([], env=env, sample_cpu=True, cwd=tree, argv=[
            sys.executable, "-m", "execbench", "run", str(spec), "--target", url, "--run-dir",
            str(run_dir), "--no-table"])
        if code != 0:
            return {"error": out}
        records = read_jsonl(run_dir / "requests.jsonl")
        windows = {}
        for ev in read_jsonl(run_dir / "timeline.jsonl"):
            if ev["event"] == "phase_start":
                windows[ev["phase"]] = [parse_iso(ev["ts"]), None]
            elif ev["event"] == "phase_end":
                windows[ev["phase"]][1] = parse_iso(ev["ts"])
    start, end = windows[step]
    recs = [x for x in records if x["phase"] == step]
    sent = sum(1 for x in recs if start <= parse_iso(x["sent_ts"]) < end)
    # lateness: actual send time - intended send time of every request of the step, in ms
    # (sent_ts is read just before the request's bytes go out). Never negative in practice
    # (the generator never sends early); an early send would count as 0 here and is counted
    # apart, so it cannot hide in the quantiles.
    gaps = [(parse_iso(x["sent_ts"]) - parse_iso(x["intended_ts"])) * 1000 for x in recs]
    lateness = sorted(max(0.0, g) for g in gaps) or [float("nan")]
    used = cpu_between(cpu, start + 1, end)
    return {
        "rate": sent / (end - start),
        "late": sum(1 for x in recs if x["late"]) / max(1, len(recs)) * 100,
        "late_p50": lateness[int(len(lateness) * 0.5)],
        "late_p99": lateness[int(len(lateness) * 0.99)],
        "late_p999": lateness[int(len(lateness) * 0.999)],
        "early": sum(1 for g in gaps if g < 0),
        "rq_wait": runqueue_between(cpu, start + 1, end),
        "cpu_us": used[0] / used[1] / (sent / (end - start)) * 1e6 if used and sent else None,
        "cpu_pct": used[0] / used[1] * 100 if used else None,
    }


def _f(value, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def locust_peer(url: str, rate: float, seconds: float) -> dict:
    """Plain Locust at `rate` for `seconds` (plus a 3 s ramp); CPU per request over the
    steady part, from Locust's own request count."""
    import csv

    per_user = 10.0
    users = max(1, round(rate / per_user))
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "peer"
        argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "benchmarks" / "locust_peer.py"),
                "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds + 3:.0f}s",
                "--host", url, "--csv", str(prefix), "--csv-full-history", "--only-summary",
                "--loglevel", "WARNING"]
        started = time.time()
        code, out, cpu = run_cli([], sample_cpu=True, argv=argv,
                                 env={"PEER_RATE_PER_USER": str(per_user)})
        if code not in (0, 1):
            return {"rate": float("nan"), "error": out[-500:]}
        with open(f"{prefix}_stats_history.csv") as fh:
            history = list(csv.DictReader(fh))
    rows = [(float(h["Timestamp"]), int(h["Total Request Count"])) for h in history
            if h["Name"] == "Aggregated"]
    # the ramp is timed from Locust's own first stats row, not from our launch: on a busy
    # machine importing Locust (gevent) alone can take the 3.5 s a launch-based cut allowed
    first = rows[0][0] if rows else started
    steady = [(t, n) for t, n in rows if t >= first + 3.0]
    if len(steady) < 2:
        return {"rate": float("nan"), "error": f"{len(rows)} stats rows, {len(steady)} after the ramp"}
    (t0, n0), (t1, n1) = steady[0], steady[-1]
    used = cpu_between(cpu, t0, t1)
    sent_rate = (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")
    out = {"rate": sent_rate}
    if used and sent_rate > 0:
        out["cpu_pct"] = used[0] / used[1] * 100
        out["cpu_us"] = used[0] / used[1] / sent_rate * 1e6
    return out


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
    p.add_argument("--rates", nargs="+", default=["100,200,300,400,600,800"],
                   help="req/s: 1000 2000 or 1000,2000")
    p.add_argument("--step-s", type=float, default=10.0)
    p.add_argument("--max-inflight", type=int, default=256)
    p.add_argument("--reps", type=int, default=1,
                   help="repeat the interleaved sequence N times and print each figure's range")
    p.add_argument("--parquet-ab", action="store_true",
                   help="also run execbench with EXECBENCH_PARQUET=0 (requests.parquet's cost)")
    p.add_argument("--tree", action="append", metavar="[LABEL=]DIR",
                   help="also run the execbench of another checkout (e.g. `git archive` of an "
                        "older commit), interleaved rate by rate")
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
