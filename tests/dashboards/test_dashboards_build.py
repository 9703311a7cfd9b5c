"""Dashboards as code: the checked-in JSON is what the code builds, and every panel is complete."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dashboards import build
from dashboards.promql import DATASOURCE_UID
from tests.dashboards.panel_queries import all_panels, dashboard_targets

UIDS = ("execbench-executor-latency", "execbench-margin-safety", "execbench-load-generator",
        "execbench-latency-plan")


def test_build_check_passes_on_the_checked_in_json():
    result = subprocess.run([sys.executable, "-m", "execbench", "dashboards", "build", "--check"],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_check_fails_when_a_file_differs(tmp_path):
    build.build_all(tmp_path)
    assert build.check_all(tmp_path) == []
    path = build.path_for(UIDS[0], tmp_path)
    model = json.loads(path.read_text())
    model["title"] = "edited by hand"
    path.write_text(json.dumps(model, sort_keys=True, indent=2) + "\n")
    (tmp_path / "stray.json").write_text("{}\n")
    problems = build.check_all(tmp_path)
    assert any(UIDS[0] in p and "differs" in p for p in problems)
    assert any("stray.json" in p for p in problems)
    path.unlink()
    assert any("missing" in p for p in build.check_all(tmp_path))


def test_build_is_deterministic_with_sorted_keys():
    for uid in UIDS:
        text = build.render_text(uid)
        assert text == build.render_text(uid)
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_dashboard_uids_are_pinned():
    assert tuple(build.builders()) == UIDS
    for uid, model in build.load_all().items():
        assert model["uid"] == uid
        assert len(uid) <= 40  # Grafana's limit


@pytest.mark.parametrize("uid", UIDS)
def test_every_panel_has_title_description_unit_and_the_fixed_datasource(uid):
    model = build.load_all()[uid]
    panels = [p for p in all_panels(model) if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in all_panels(model)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        where = f"{uid}: {panel.get('title')!r}"
        assert panel.get("title"), where
        assert len(panel.get("description", "")) > 20, f"{where}: needs a description"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: needs a unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, where
            assert target["expr"].strip(), where


def test_the_required_panels_exist():
    titles = {uid: [p["title"] for p in all_panels(m)] for uid, m in build.load_all().items()}
    latency = " | ".join(titles["execbench-executor-latency"])
    for needle in ("p50 / p95 / p99", "Stage breakdown", "reduction", "heatmap", "Orders per second",
                   "Rejections and errors", "Flag provider_skip"):
        assert needle in latency, needle
    safety = " | ".join(titles["execbench-margin-safety"])
    for needle in ("Over-commits", "estimate error", "Provider outcomes", "releases", "in flight",
                   "Flag changes"):
        assert needle.lower() in safety.lower(), needle
    load = " | ".join(titles["execbench-load-generator"])
    for needle in ("users", "Requests per second", "Client latency", "Failures", "Late sends", "phase"):
        assert needle.lower() in load.lower(), needle


def test_flips_are_annotations_and_the_stage_panel_repeats_per_mode():
    model = build.load_all()["execbench-executor-latency"]
    names = [a["name"] for a in model["annotations"]["list"]]
    assert "flag flips (Prometheus)" in names and "execbench runs" in names
    stage = next(p for p in all_panels(model) if p["title"].startswith("Stage breakdown"))
    assert stage["repeat"] == "mode"
    assert stage["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"


def test_queries_substitute_every_template_variable():
    for uid, model in build.load_all().items():
        for _panel, _target, expr in dashboard_targets(model):
            assert "$" not in expr, f"{uid}: unsubstituted variable in {expr}"


def _drop_empty_custom(node):
    if isinstance(node, dict):
        return {k: _drop_empty_custom(v) for k, v in node.items() if not (k == "custom" and v == {})}
    if isinstance(node, list):
        return [_drop_empty_custom(v) for v in node]
    return node


@pytest.mark.parametrize("uid", UIDS)
def test_the_json_round_trips_through_the_sdk_schema(uid):
    """Unmarshal with grafana-foundation-sdk's typed models (panel plugins registered) and encode
    again: nothing is lost or mistyped (heatmaps gain an empty `custom`, which Grafana ignores)."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    model = build.load_all()[uid]
    again = json.loads(JSONEncoder(sort_keys=True).encode(Dashboard.from_json(model)))
    assert _drop_empty_custom(again) == _drop_empty_custom(model)
