"""docker-compose.yml, validated by a compose implementation (Debian's docker-compose needs no
engine for `config`), and the files it mounts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {"POSTGRES_PASSWORD": "pw-test", "EXECBENCH_ADMIN_TOKEN": "token-test",
           "GRAFANA_ADMIN_PASSWORD": "grafana-test"}
LONG_RUNNING = ("postgres", "executor-1", "executor-2", "worker", "lb", "gateway", "prometheus",
                "grafana", "locust-master")


def compose_config(env_overrides: dict[str, str | None]) -> subprocess.CompletedProcess:
    exe = require_binary("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update({k: v for k, v in env_overrides.items() if v is not None})
    return subprocess.run([exe, "-f", str(COMPOSE), "config"], check=False, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def resolved() -> dict:
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_each_secret_is_required(missing):
    result = compose_config({**SECRETS, missing: None})
    assert result.returncode != 0
    assert missing in result.stderr


def test_the_stack_has_every_part(resolved):
    services = resolved["services"]
    for name in (*LONG_RUNNING, "seed", "locust-worker"):
        assert name in services, name
    assert "--master" in services["locust-master"]["command"]
    assert "--worker" in services["locust-worker"]["command"]
    assert "reference/locustfile.py" in services["locust-worker"]["command"]
    assert "8089" in str(services["locust-master"]["ports"]), "the web UI must be reachable"
    assert "ports" not in services["locust-worker"], "workers must scale: no fixed host port"
    assert "container_name" not in services["locust-worker"]


def test_images_are_pinned(resolved):
    for name, service in resolved["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} is not pinned"
        if "build" not in service:
            assert any(ch.isdigit() for ch in tag), f"{name}: {image} needs a version tag"


def test_healthchecks_and_dependencies_on_health(resolved):
    services = resolved["services"]
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert spec["condition"] in {"service_healthy", "service_completed_successfully"}, name
            if spec["condition"] == "service_completed_successfully":
                assert dep == "seed"
    assert services["executor-1"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_executors_sit_behind_the_load_balancer(resolved):
    nginx_conf = (ROOT / "dashboards" / "compose" / "nginx.conf").read_text()
    assert "server executor-1:8000" in nginx_conf and "server executor-2:8000" in nginx_conf
    prometheus = yaml.safe_load((ROOT / "dashboards" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["executor"]["static_configs"][0]["targets"] == ["executor-1:8000", "executor-2:8000"]
    assert jobs["locust"]["static_configs"][0]["targets"] == ["locust-master:8089"]
    assert jobs["worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:8080"]
    worker_port = str(jobs["worker"]["dns_sd_configs"][0]["port"])
    assert worker_port in resolved["services"]["worker"]["command"]


def test_every_mounted_file_exists(resolved):
    ignored = (ROOT / ".gitignore").read_text().split()
    mounts = 0
    for name, service in resolved["services"].items():
        build = service.get("build")
        if build:
            context = Path(build["context"])
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for volume in service.get("volumes", []):
            source, _target, mode = (volume.split(":") + ["rw"])[:3]
            if not source.startswith(("/", ".")):
                assert source in resolved.get("volumes", {}), f"{name}: unknown volume {source}"
                continue
            if mode == "ro":  # configuration the container reads: must be in the repository
                assert Path(source).exists(), f"{name}: mounts {source}, which does not exist"
                mounts += 1
            else:  # an output folder (run directories): created on demand, never committed
                relative = Path(source).relative_to(ROOT).as_posix()
                assert f"{relative}/" in ignored, f"{name}: writes to {relative}, not gitignored"
    assert mounts >= 5


def test_grafana_provisioning_matches_the_mounts(resolved):
    grafana = resolved["services"]["grafana"]
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in grafana["volumes"] if v.startswith("/")}
    datasources = yaml.safe_load(
        next(mounts["/etc/grafana/provisioning/datasources"].glob("*.yml")).read_text())
    ds = datasources["datasources"][0]
    from dashboards.promql import DATASOURCE_UID

    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        next(mounts["/etc/grafana/provisioning/dashboards"].glob("*.yml")).read_text())
    path = providers["providers"][0]["options"]["path"]
    assert path in mounts, "the dashboard provider must read the mounted JSON folder"
    assert sorted(p.name for p in mounts[path].glob("*.json")) == [
        "execbench-executor-latency.json", "execbench-latency-plan.json",
        "execbench-load-generator.json", "execbench-margin-safety.json"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path)


def test_the_locust_master_serves_loadtest_metrics_where_prometheus_scrapes(tmp_path):
    """The compose stack's Locust master (plain locustfile, web UI) is the `locust` scrape target:
    its web port must answer /metrics with the loadtest_ metrics the dashboards query."""
    import signal
    import sys
    import time

    import httpx

    from tests.support import free_port

    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())[
        "services"]["locust-master"]["command"]
    assert "reference/locustfile.py" in command and "--web-port=8089" in command
    port, master_port = free_port(), free_port()
    # The compose command itself, bound to this test's ports instead of the container's.
    local = {"--web-host=0.0.0.0": "--web-host=127.0.0.1", "--web-port=8089": f"--web-port={port}",
             "reference/locustfile.py": str(ROOT / "reference" / "locustfile.py")}
    args = [local.get(arg, arg) for arg in command]
    log = tmp_path / "locust.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", *args, "--master-bind-host=127.0.0.1",
             f"--master-bind-port={master_port}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith("EXECBENCH_")})
        try:
            body = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                    if response.status_code == 200:
                        body = response.text
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
    assert body, f"no /metrics on the Locust web port:\n{log.read_text()[-3000:]}"
    for name in ("loadtest_users", "loadtest_late_sends_total", "loadtest_phase_index",
                 "loadtest_request_duration_seconds"):
        assert name in body, name


def test_the_execbench_commands_in_the_stack_parse(resolved):
    """Every `execbench` command line of the stack is accepted by the real CLI parser."""
    from execbench.cli import build_parser

    parser = build_parser()
    services = resolved["services"]
    for name in ("executor-1", "executor-2", "worker", "seed", "gateway"):
        args = parser.parse_args(services[name]["command"])
        assert callable(args.handler), name
    assert parser.parse_args(services["executor-1"]["command"]).no_workers
    # the gateway's keep-alive pool drops an idle connection at 60 s: the executor keeps it longer
    assert parser.parse_args(services["executor-1"]["command"]).idle_timeout > 60
    gateway = parser.parse_args(services["gateway"]["command"])
    assert gateway.upstream == "http://executor-1:8000" and gateway.link and gateway.port == 8080
    seed = parser.parse_args(services["seed"]["command"])
    assert seed.if_empty and seed.users == 500  # a later `up` leaves the seeded volume alone


def test_the_image_installs_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert ":" in base and base.split(":")[1][0].isdigit(), f"unpinned base image {base}"
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
    assert 'ENTRYPOINT ["execbench"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    for heavy in (".git", ".venv", "runs"):
        assert heavy in ignored
