"""Every query of every dashboard panel, run against a real Prometheus scraping a real stack.

Started here, each by its own PID and stopped at teardown: `execbench serve --no-workers` (the
executor), `execbench worker` (provider workers, their own /metrics), the gateway tier
(`python -m gateway`) in front of the executor, an `execbench run` Locust master with one Locust
worker (the `loadtest_` metrics), and `/usr/bin/prometheus` with the project's prometheus.yml and
rules, targets rewritten to this test's ports and a 1 s scrape and evaluation interval. The load
is a short experiment that visits every mode with both flows, same-user bursts (over-commits
under `skip`), margin-edge rejections and provider rejections, so every panel has something to
show; then orders through the gateway in each of the 16 flag cells
(tests/dashboards/test_latency_plan_dashboard.py). A panel whose query returns nothing is a
broken panel. One stack serves both modules (the `live` fixture, tests/dashboards/conftest.py).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Self

import httpx
import pytest
import yaml

from tests.support import free_port, require_binary, start_service

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "dashboards" / "prometheus"

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]
LOADGROUP = "live-prometheus"  # one worker runs it with test_latency_plan_dashboard.py

EXPERIMENT = """
name = "dashboards-live"
description = "every mode and flow, bursts, rejections: data for every dashboard panel"
profile = "none"

[load]
rate = 30.0
provider_share = 0.6

[load.population]
users = 20

[load.mix]
trader_mix = 0.5
same_user_burst = 0.3
margin_edge = 0.2

[[phases]]
name = "baseline"
duration_s = 6
mode = "off"

[phases.provider]
reject_ratio = 0.2

[[phases]]
name = "optimized"
duration_s = 8
mode = "skip"

[phases.provider]
reject_ratio = 0.2

[[phases]]
name = "reserve"
duration_s = 6
mode = "skip_reserve"

[[phases]]
name = "rollback"
duration_s = 6
mode = "off"
"""


class Proc:
    """A child process we started; stopped by its PID only."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - held for the life of the child
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      cwd=log_dir)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


def wait_http(url: str, proc: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} not ready at {url}:\n{proc.log()}")


def rewrite_prometheus_config(dest: Path, targets: dict[str, list[str]]) -> Path:
    """The project's prometheus.yml with each job's targets replaced and 1 s intervals."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str((PROM_DIR / f).resolve()) for f in config["rule_files"]]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(targets), f"prometheus.yml jobs changed: {sorted(jobs)}"
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


class PromAPI:
    def __init__(self, url: str):
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = self.client.get("/api/v1/query", params=params).json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[dict]:
        body = self.client.get("/api/v1/query_range", params={
            "query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}).json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]


def has_numbers(result: list[dict]) -> bool:
    """True when some series has some sample that is a number (not NaN)."""
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        if any(not math.isnan(float(v)) for _t, v in samples):
            return True
    return False


class Stack:
    """Service (no in-process workers), worker, gateway, Prometheus, Locust master + worker: one
    run, then `after_run` (the gateway's cells) before the last scrapes."""

    def __init__(self, tmp: Path, experiment: list[str], *, seed_users: int = 20, after_run=None):
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.service = None
        self.gateway = None
        self.after_run = after_run
        self.after_run_result = None
        self.prom: PromAPI | None = None
        self.experiment = experiment
        self.seed_users = seed_users

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        prometheus_bin = require_binary("prometheus", "prometheus")
        tmp = self.tmp
        with warnings.catch_warnings():
            # tests/support.py's start_service leaves its log file object to the GC (reported);
            # under warnings-as-errors that ResourceWarning would fail the setup.
            warnings.simplefilter("ignore", ResourceWarning)
            self.service = service = start_service(
                tmp, profile="none", mode="off", seed_users=self.seed_users, workers=False,
                extra_env={"EXECBENCH_FLAG_TTL_S": "0.5"})
        env = {**os.environ, "EXECBENCH_DATABASE_URL": service.database_url,
               "EXECBENCH_PROFILE": "none", "EXECBENCH_ADMIN_TOKEN": service.admin_token,
               "EXECBENCH_FLAG_TTL_S": "0.5"}
        exe = [sys.executable, "-m", "execbench"]

        worker_port = free_port()
        worker = self._spawn("worker", [*exe, "worker", "--workers", "2", "--metrics-host",
                                        "127.0.0.1", "--metrics-port", str(worker_port)], env)
        wait_http(f"http://127.0.0.1:{worker_port}/metrics", worker)
        from tests.gateway.support import start_gateway

        self.gateway = start_gateway(tmp, service.url, args=["--sink-latency-ms", "1"])

        prom_port, loadtest_port, master_port = free_port(), free_port(), free_port()
        config = rewrite_prometheus_config(tmp / "prometheus.yml", {
            "executor": [service.url.removeprefix("http://")],
            "worker": [f"127.0.0.1:{worker_port}"],
            "locust": [f"127.0.0.1:{loadtest_port}"],
            "prometheus": [f"127.0.0.1:{prom_port}"],
            "gateway": [self.gateway.url.removeprefix("http://")],
        })
        prometheus = self._spawn("prometheus", [
            prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
        ], env)
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{prom_url}/-/ready", prometheus)
        self.prom = PromAPI(prom_url)

        self.start = time.time()
        self.master = self._spawn("locust-master", [
            *exe, "run", *self.experiment, "--target", service.url, "--run-dir", str(tmp / "run"),
            "--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(master_port), "--metrics-host", "127.0.0.1",
            "--metrics-port", str(loadtest_port), "--no-table", "--status-interval", "30",
        ], env)
        self._spawn("locust-worker", [
            *exe, "run", "--worker", "--master-host", "127.0.0.1",
            "--master-port", str(master_port), "--target", service.url,
        ], env)
        try:
            self.master.popen.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the experiment did not finish:\n{self.master.log()}")
        self.end = time.time()
        if self.after_run is not None:
            self.after_run_result = self.after_run(self)
        time.sleep(4)  # a few more scrapes and rule evaluations after the last request

    def _spawn(self, name: str, args: list[str], env: dict) -> Proc:
        proc = Proc(name, args, env, self.tmp)
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc) -> None:
        if getattr(self, "_closed", False):  # stopped early (conftest.py), then by `with`
            return
        self._closed = True
        if self.prom is not None:
            self.prom.client.close()
        for proc in reversed(self.procs):
            proc.stop()
        if self.gateway is not None:
            self.gateway.stop()
        if self.service is not None:
            self.service.stop()


def test_every_scrape_target_was_up(live):
    ups = live.prom.query_range("up", live.start, live.end)
    jobs = {s["metric"]["job"] for s in ups if any(v == "1" for _t, v in s["values"])}
    assert jobs == {"executor", "worker", "locust", "prometheus", "gateway"}, live.master.log()


def test_every_panel_query_returns_data(live):
    from dashboards.build import load_all
    from tests.dashboards.panel_queries import annotation_queries, dashboard_targets

    prom, start, end = live.prom, live.start, time.time()
    broken, checked = [], 0
    for uid, model in load_all().items():
        for panel, target, expr in dashboard_targets(model):
            checked += 1
            if target.get("instant"):
                result = prom.query(expr, at=end)
            else:
                result = prom.query_range(expr, start, end)
            if not has_numbers(result):
                broken.append(f"{uid} / {panel['title']} / {target['refId']}: {expr}")
        for annotation, expr in annotation_queries(model):
            checked += 1
            if not has_numbers(prom.query_range(expr, start, end)):
                broken.append(f"{uid} / annotation {annotation['name']}: {expr}")
    assert checked > 30
    assert not broken, "queries that returned no data:\n" + "\n".join(broken) + \
        "\n\nmaster log:\n" + live.master.log()


def test_the_flip_shows_in_the_mode_gauges(live):
    """Both flows ran in each mode the experiment visited, attributed by the mode they used."""
    prom = live.prom
    result = prom.query('sum by (flow, mode) (executor_orders_total{job="executor"}) > 0')
    seen = {(s["metric"]["flow"], s["metric"]["mode"]) for s in result}
    for mode in ("off", "skip", "skip_reserve"):
        assert ("provider", mode) in seen, seen
        assert ("local", mode) in seen, seen
    flips = prom.query('sum(executor_flag_changes_total{job="executor"})')
    assert float(flips[0]["value"][1]) >= 3


def test_overcommit_alert_fires_under_skip_and_stays_silent_under_off(live):
    """Evaluated by the real Prometheus from the project's alerting rules, on the live run: its
    same-user bursts and margin-edge orders run in off, skip, skip_reserve and off again (the
    `safety` experiment's method in one stack with the panels' run; a second stack for it alone
    cost the suite a Prometheus, a service and ~30 s of load)."""
    prom, service = live.prom, live.service
    ledger = httpx.get(f"{service.url}/admin/ledger", headers=service.admin_headers, timeout=10).json()
    assert ledger["overcommits"]["skip"] > 0, f"no over-commit under skip in this run: {ledger}"
    firing: list[dict] = []
    deadline = time.monotonic() + 40  # `for: 10s` after the first over-commit is scraped
    while time.monotonic() < deadline:
        firing = prom.query('ALERTS{alertname="ExecutorMarginOvercommit",alertstate="firing"}')
        if firing:
            break
        time.sleep(1)
    assert {a["metric"]["mode"] for a in firing} == {"skip"}, ledger
    # Over the whole run, never pending or firing for the `off` (or skip_reserve) mode.
    ever = prom.query_range('ALERTS{alertname="ExecutorMarginOvercommit"}', live.start, time.time())
    assert {a["metric"]["mode"] for a in ever} == {"skip"}, ledger
    assert ledger["overcommits"]["off"] == 0 and ledger["overcommits"]["skip_reserve"] == 0


def test_annotate_reads_the_real_run_directory(live):
    """`execbench annotate` on the run directory the Locust master just wrote (stand-in Grafana:
    see test_grafana_api.py): one region per phase, one point per applied flip."""
    import json

    from tests.dashboards.test_grafana_api import TOKEN, StandIn, execbench

    run_dir = live.tmp / "run"
    events = [json.loads(line) for line in (run_dir / "timeline.jsonl").read_text().splitlines()]
    phases = sum(e["event"] == "phase_end" for e in events)
    flips = sum(e["event"] == "flip_applied" for e in events)
    assert phases == 4 and flips >= 3
    with StandIn() as grafana:
        result = execbench("annotate", str(run_dir), "--grafana-url", grafana.url, token=TOKEN)
    assert result.returncode == 0, result.stderr
    bodies = [r["body"] for r in grafana.requests]
    assert len(bodies) == phases + flips
    assert sorted(b["tags"][3] for b in bodies if "phase" in b["tags"]) == [
        "baseline", "optimized", "reserve", "rollback"]
