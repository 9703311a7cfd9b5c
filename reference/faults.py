"""Faults `execbench demo` injects into the service it owns, and the recovery record after them.

A phase with `fault = "kill_service"` makes the demo SIGKILL the service's process group (the
executor and its in-process provider workers: no shutdown, no lease released) the moment the
runner writes that phase's `phase_start`, then start the service again on the same database,
environment and port. Requests sent while it is down fail with connection errors and are
recorded as failures in requests.jsonl; that is the expected cost of a crash, not a runner error.
Queued orders the dead process had claimed are taken over once their claim lease expires
(`EXECBENCH_WORKER_LEASE_S`; crash-recovery sets a short one in `[service.env]`).

`recovery.json` (written after the run, before the service stops) compares what the client saw
with what the database holds, per `client_order_id` (`load.client_order_ids = true`).
No Locust import here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from loadtests.records import iso, parse_iso, read_jsonl
from reference.admin import AdminClient, AdminError


class ServiceProcess:
    """The demo's service child: started in its own session, killable and restartable."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, url: str, token: str):
        self.argv, self.env, self.log_path, self.url, self.token = argv, env, log_path, url, token
        self.proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: Ctrl-C does not reach it; we stop it
            )
        return self.proc

    def wait_healthy(self, timeout: float) -> None:
        admin = AdminClient(self.url, self.token)
        try:
            admin.wait_healthy(timeout=timeout)
        finally:
            admin.close()

    def kill(self) -> int:
        """SIGKILL the whole group (its session: the group id is its PID); returns that PID."""
        assert self.proc is not None
        pid = self.proc.pid
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        return pid

    def restart(self, timeout: float = 60.0) -> int:
        """Start again on the same port; a port still held is retried until `timeout`."""
        deadline = time.monotonic() + timeout
        attempts = 0
        while True:
            attempts += 1
            proc = self.start()
            try:
                self.wait_healthy(timeout=max(1.0, min(30.0, deadline - time.monotonic())))
                return attempts
            except AdminError:
                if proc.poll() is None or time.monotonic() >= deadline:
                    raise
                time.sleep(0.3)  # it exited (port not yet free): try again


class FaultInjector(threading.Thread):
    """Follows timeline.jsonl; at the start of a phase with a fault, applies it."""

    def __init__(self, run_dir: Path, faults: dict[str, str], service: ServiceProcess,
                 say: Callable[[str], None]):
        super().__init__(name="execbench-faults", daemon=True)
        self.timeline = Path(run_dir) / "timeline.jsonl"
        self.pending = dict(faults)  # phase name -> fault
        self.service = service
        self.say = say
        self.stopping = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        offset = 0
        while self.pending and not self.stopping.is_set():
            lines, offset = self._new_lines(offset)
            for rec in lines:
                if rec.get("event") == "run_end":
                    return
                fault = self.pending.pop(rec.get("phase"), None) if rec.get("event") == "phase_start" else None
                if fault == "kill_service":
                    self._kill_and_restart(rec.get("phase"), rec.get("mode"))
            self.stopping.wait(0.02)

    def _new_lines(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        try:
            with open(self.timeline, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return [], offset
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        out = []
        for line in complete.splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return out, offset + len(complete)

    def _kill_and_restart(self, phase: str | None, mode: str | None) -> None:
        killed_at = time.time()
        pid = self.service.kill()
        self._event("fault_injected", killed_at, phase, mode, fault="kill_service",
                    signal="SIGKILL", pid=pid)
        self.say(f"fault: SIGKILL to the service (pid {pid}, phase {phase}); restarting it")
        try:
            attempts = self.service.restart()
        except AdminError as exc:
            self.errors.append(f"service restart after the kill in phase {phase} failed: {exc}")
            self._event("service_restart_failed", time.time(), phase, mode, error=str(exc))
            self.say(f"[red]the service did not come back:[/red] {exc}")
            return
        up = time.time()
        self._event("service_restarted", up, phase, mode, pid=self.service.proc.pid,
                    down_s=round(up - killed_at, 3), attempts=attempts)
        self.say(f"service back after {up - killed_at:.1f} s (pid {self.service.proc.pid})")

    def _event(self, event: str, ts: float, phase, mode, **extra) -> None:
        rec = {"ts": iso(ts), "event": event, "phase": phase, "mode": mode, **extra}
        self.events.append(rec)
        # One write of one short line, O_APPEND: it cannot interleave with the runner's lines.
        with open(self.timeline, "ab") as fh:
            fh.write(orjson.dumps(rec) + b"\n")


# --- recovery.json ---------------------------------------------------------------------------


def database_orders(database_url: str) -> list[tuple]:
    """(client_order_id, status, flow, created_at, finalized_at) of every order that carries
    one, straight from the database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def query():
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(text(
                    "select client_order_id, status, flow, created_at, finalized_at from orders "
                    "where client_order_id is not null"))
                return [tuple(r) for r in rows]
        finally:
            await engine.dispose()

    return asyncio.run(query())


def recovery_record(run_dir: Path, database_url: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the client saw (requests.jsonl) against what the database holds, per client id."""
    requests = [r for r in read_jsonl(Path(run_dir) / "requests.jsonl") if r.get("client_order_id")]
    accepted = Counter(r["client_order_id"] for r in requests if r.get("status") == 200)
    unanswered = {r["client_order_id"] for r in requests if r.get("status") == 0}
    sent = {r["client_order_id"] for r in requests}
    rows = database_orders(database_url)
    in_db = Counter(row[0] for row in rows)
    status = {row[0]: row[1] for row in rows}
    kills = [parse_iso(e["ts"]) for e in events if e.get("event") == "fault_injected"]
    # Provider orders accepted before a kill and not yet answered at it: the dead process's
    # queue, which the restarted one had to finish.
    queued_at_kill = [row for row in rows if row[2] == "provider" and any(
        row[3] <= k and (row[4] is None or row[4] > k) for k in kills)]
    ledger_path = Path(run_dir) / "ledger.json"
    ledger = orjson.loads(ledger_path.read_bytes()) if ledger_path.exists() else {}
    return {
        "source": "execbench demo: requests.jsonl against the service's orders table, per "
                  "client_order_id, after the runner's settle wait",
        "faults": events,
        "requests_with_client_order_id": len(requests),
        "accepted_responses": sum(accepted.values()),
        "accepted_client_order_ids_distinct": len(accepted),
        # The generator never retries, so an id answered 200 twice would be a client bug.
        "client_order_ids_accepted_twice": sum(1 for n in accepted.values() if n > 1),
        # Arrivals sent more than once (no response: the service was down), and those of them
        # finally accepted; with one order per id in the database, no retry created a second one.
        "retried_arrivals": sum(1 for r in requests if r.get("attempts", 1) > 1),
        "retried_accepted": sum(1 for r in requests if r.get("attempts", 1) > 1
                                and r.get("status") == 200),
        "retry_attempts": sum(r.get("attempts", 1) - 1 for r in requests),
        # Retries the service answered with the stored order (header idempotent-replay): the
        # first attempt was persisted before the kill and its answer lost with the process.
        "retries_answered_with_stored_order": sum(1 for r in requests if r.get("replayed")),
        "connection_errors": sum(1 for r in requests if r.get("status") == 0),
        "database_orders_with_client_order_id": sum(in_db.values()),
        "client_order_ids_created_twice": sum(1 for n in in_db.values() if n > 1),
        "accepted_missing_in_database": sum(1 for cid in accepted if cid not in in_db),
        "accepted_nonterminal": sum(1 for cid in accepted if status.get(cid) == "queued"),
        # Persisted, but the answer was lost with the process: the client saw a connection error.
        "persisted_without_answer": sum(1 for cid in unanswered if cid in in_db),
        "provider_orders_queued_at_kill": len(queued_at_kill),
        "provider_orders_queued_at_kill_still_queued": sum(1 for row in queued_at_kill
                                                           if row[1] == "queued"),
        "database_ids_never_sent": sum(1 for cid in in_db if cid not in sent),
        "ledger": {k: ledger.get(k) for k in ("orders_total", "orders_nonterminal",
                                              "reserved_vs_open_residual_usd", "releases_total",
                                              "double_releases")},
    }
