"""Prometheus configuration, recording and alerting rules, checked by the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import require_binary

PROM_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "prometheus"
ALERTS = PROM_DIR / "rules" / "alerts.yml"
RECORDING = PROM_DIR / "rules" / "recording.yml"
ALERT_TESTS = PROM_DIR / "tests" / "alerts_test.yml"

pytestmark = pytest.mark.prometheus


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = require_binary("promtool", "prometheus")
    return subprocess.run([exe, *args], check=False, capture_output=True, text=True, timeout=120,
                          cwd=PROM_DIR)


def test_promtool_check_config():
    result = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    result = promtool("check", "rules", str(RECORDING), str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules():
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _alerts() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_for_severity_summary_description():
    alerts = _alerts()
    names = {a["alert"] for a in alerts}
    assert {"ExecutorProviderLatencyHigh", "ExecutorMarginOvercommit",
            "ExecutorOrdersStuckNonTerminal", "ScrapeTargetDown"} <= names
    for alert in alerts:
        assert alert.get("for"), alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in _alerts():
        mine = [c for c in cases if c["alertname"] == alert["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{alert['alert']}: no firing case"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert['alert']}: no silent case"


def test_dashboards_use_only_recording_rules_that_exist():
    from dashboards.build import load_all
    from tests.dashboards.panel_queries import dashboard_targets

    groups = yaml.safe_load(RECORDING.read_text())["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    used = set()
    for model in load_all().values():
        for _panel, _target, expr in dashboard_targets(model):
            used.update(tok for tok in recorded if tok in expr)
            for token in expr.replace("(", " ").replace("{", " ").split():
                if token.count(":") == 2 and not token.startswith("["):
                    assert token in recorded, f"unknown recording rule {token}"
    assert used, "the dashboards should plot the recorded quantiles"
