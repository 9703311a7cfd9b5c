"""A user's own service: complete experiments against examples/fastpath (a service that does
not import execbench) through the `http` and `flagd` flag adapters, and the reference service
driven through the generic HTTP target agreeing with its own pack."""

from __future__ import annotations

import json
import re

import pytest

from tests.examples.fastpath import start_fastpath
from tests.loadtests.util import ROOT, ab_phases, cli_env, execbench, timeline, write_spec

EXAMPLE = ROOT / "examples" / "fastpath"


@pytest.fixture
def fastpath(tmp_path):
    handle = start_fastpath(tmp_path, poll_ms=50)
    yield handle
    handle.stop()


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def _flips(run_dir) -> list[tuple[str, str]]:
    return [(e["phase"], e["mode"]) for e in timeline(run_dir)
            if e["event"] == "flip_applied" and not e.get("initial")]


def test_the_issue_example_runs_as_written_and_its_verdict_follows_the_checks(fastpath, tmp_path):
    run_dir = tmp_path / "run"
    result = execbench("run", EXAMPLE / "fast-path.toml", "--target", fastpath.url,
                       "--duration-scale", "0.1", "--run-dir", run_dir, "--no-table",
                       env=cli_env(FLAG_TOKEN=fastpath.token), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _flips(run_dir) == [("treatment", "fast"), ("rollback", "legacy")]
    experiment = (run_dir / "experiment.toml").read_text()
    assert fastpath.token not in experiment and "${FLAG_TOKEN}" in experiment
    records = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert {r["flow"] for r in records} == {"checkout", "search"}
    assert any("app_ms" in (r.get("server_metrics") or {}) for r in records)

    report = execbench("report", run_dir, timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr
    summary = _summary(run_dir)
    assert summary["verdict"] == "pass"
    for phase in ("baseline", "treatment", "rollback"):
        assert "app_ms" in summary["phases"][phase]["checkout"]
        assert "handler_ms" in summary["phases"][phase]["search"]
    html = (run_dir / "report.html").read_text()
    assert "checkout" in html and "search" in html and "app_ms" in html

    # The same records judged against a bound the treatment cannot meet: the verdict follows.
    strict = re.sub(r"max = 120(\.0)?", "max = 0.001", experiment)
    assert strict != experiment
    (run_dir / "experiment.toml").write_text(strict)
    report = execbench("report", run_dir, timeout=120)
    assert report.returncode == 1, report.stdout + report.stderr
    assert _summary(run_dir)["verdict"] == "fail"


def test_the_flagd_adapter_flips_the_flag_file_the_service_evaluates(fastpath, tmp_path):
    run_dir = tmp_path / "run"
    result = execbench("run", EXAMPLE / "fast-path-flagd.toml", "--target", fastpath.url,
                       "--duration-scale", "0.1", "--run-dir", run_dir, "--no-table",
                       env=cli_env(FASTPATH_FLAGS_FILE=str(fastpath.flags_file)), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _flips(run_dir) == [("treatment", "fast"), ("rollback", "legacy")]
    records = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    served = {}
    for r in records:
        if r["outcome"] != "failure":
            served.setdefault(r["phase"], []).append(r["served_mode"])
    # requests in flight across a flip keep the variant they started with: nearly all, not all
    for phase, mode in (("baseline", "legacy"), ("treatment", "fast"), ("rollback", "legacy")):
        assert served[phase].count(mode) >= 0.8 * len(served[phase]), (phase, served[phase])
    assert fastpath.evaluated_variant() == "legacy"


def test_an_unconfirmed_flip_stops_the_run_with_the_value_read(fastpath, tmp_path):
    spec = tmp_path / "stuck.toml"
    text = (EXAMPLE / "fast-path.toml").read_text()
    # a get that reads another flag's field never shows the new variant
    text = text.replace('pointer = "/variant"', 'pointer = "/provider"')
    text = text.replace("[load]", "[load]\n", 1).replace(
        'adapter = "http"', 'adapter = "http"\nconfirm_timeout_s = 1.0', 1)
    spec.write_text(text)
    run_dir = tmp_path / "run"
    result = execbench("run", spec, "--target", fastpath.url, "--duration-scale", "0.2",
                       "--run-dir", run_dir, "--no-table",
                       env=cli_env(FLAG_TOKEN=fastpath.token), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "not confirmed as 'legacy' within 1 s: get read 'READY'" in out
    events = timeline(run_dir)
    assert events[-1]["event"] == "run_end" and any(e["event"] == "flip_failed" for e in events)


@pytest.mark.parametrize(("url", "message"), [
    ("localhost:9100", "give an http:// or https:// URL"),
])
def test_a_url_without_a_scheme_is_refused_at_once(url, message, tmp_path):
    result = execbench("run", EXAMPLE / "fast-path.toml", "--target", url,
                       "--run-dir", tmp_path / "run", timeout=60)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.startswith("execbench: error: ")


def test_a_health_check_that_answers_404_is_one_line_at_once(fastpath, tmp_path):
    spec = tmp_path / "wrong-health.toml"
    spec.write_text((EXAMPLE / "fast-path.toml").read_text().replace(
        'health = "/health"', 'health = "/healthz"'))
    result = execbench("run", spec, "--target", fastpath.url, "--health-timeout", "60",
                       "--run-dir", tmp_path / "run", env=cli_env(FLAG_TOKEN="x"), timeout=30)
    assert result.returncode == 2
    assert f"GET {fastpath.url}/healthz answered HTTP 404" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_reference_service_through_the_generic_target_agrees_with_its_pack(
        running_service, tmp_path):
    """Same service, same phases and rate, once through the reference pack (its scenarios,
    admin API, timing log) and once as any service (requests, `http` flag adapter, the
    server metric read from the response body). The verdicts agree and the optimized
    provider medians agree within a factor a real bug (wrong mode, wrong metric) would
    exceed: skip's 88 ms against off's 253 ms is a factor 2.9."""
    svc = running_service(profile="seed", seed_users=100, orders_per_user=1)
    phases = ab_phases(seconds=6, warmup=2)
    checks = ('[[checks]]\nkind = "reduction_at_least"\nflow = "provider"\n'
              'metric = "executor_ms"\nfrom = "baseline"\nto = "optimized"\npct = 35\n')
    builtin = write_spec(tmp_path / "builtin.toml", phases=phases, rate=20.0, users=100,
                         checks=checks).read_text().replace('profile = "none"', 'profile = "seed"')
    (tmp_path / "builtin.toml").write_text(builtin)
    generic = (ROOT / "examples" / "reference" / "provider-skip-over-http.toml").read_text()
    medians = {}
    for name, spec, extra in (("builtin", tmp_path / "builtin.toml",
                               ["--timing-log", svc.timing_log]),
                              ("generic", tmp_path / "generic.toml", [])):
        if name == "generic":
            spec.write_text(generic.replace("duration_s = 40", "duration_s = 6")
                            .replace("duration_s = 10", "duration_s = 2"))
        run_dir = tmp_path / name
        result = execbench("run", spec, "--target", svc.url, "--run-dir", run_dir, "--no-table",
                           *extra, env=cli_env(svc.admin_token), timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        report = execbench("report", run_dir, timeout=120)
        summary = _summary(run_dir)
        reduction = next(c for c in summary["checks"] if c.get("kind") == "reduction_at_least")
        medians[name] = (summary["phases"]["optimized"]["provider"]["executor_ms"]["p50"]["value"],
                         summary["phases"]["baseline"]["provider"]["executor_ms"]["p50"]["value"],
                         reduction["passed"], report.returncode)
    (b_opt, b_base, b_pass, _), (g_opt, g_base, g_pass, _) = medians["builtin"], medians["generic"]
    assert b_pass == g_pass, medians
    assert 1 / 1.5 <= g_opt / b_opt <= 1.5, medians
    assert 1 / 1.5 <= g_base / b_base <= 1.5, medians
