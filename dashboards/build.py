"""Build every dashboard to Grafana JSON (sorted keys) and compare with the checked-in files.

The JSON lives in `dashboards/grafana/dashboards/<uid>.json`, the folder Grafana's file provider
reads in the compose stack (`provisioning/dashboards/execbench.yml`).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
JSON_DIR = PACKAGE_DIR / "grafana" / "dashboards"


def builders() -> dict[str, Callable]:
    from dashboards import executor_latency, latency_plan, load_generator, margin_safety

    return {m.UID: m.build for m in (executor_latency, margin_safety, load_generator, latency_plan)}


def _number_panels(model) -> None:
    """Give every panel (rows and the panels inside collapsed rows too) a unique, stable id."""
    next_id = 1
    for panel in model.panels or []:
        panel.id_val = next_id
        next_id += 1
        for inner in getattr(panel, "panels", None) or []:
            inner.id_val = next_id
            next_id += 1


def render(uid: str) -> dict:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    model = builders()[uid]().build()
    _number_panels(model)
    return json.loads(JSONEncoder(sort_keys=True).encode(model))


def render_text(uid: str) -> str:
    return json.dumps(render(uid), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def path_for(uid: str, directory: Path = JSON_DIR) -> Path:
    return directory / f"{uid}.json"


def build_all(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid in builders():
        path = path_for(uid, directory)
        path.write_text(render_text(uid), encoding="utf-8")
        written.append(path)
    return written


def check_all(directory: Path = JSON_DIR) -> list[str]:
    """Return one message per dashboard whose checked-in JSON differs from what the code builds."""
    problems = []
    expected_names = set()
    for uid in builders():
        path = path_for(uid, directory)
        expected_names.add(path.name)
        want = render_text(uid)
        if not path.exists():
            problems.append(f"{path}: missing (run `execbench dashboards build`)")
            continue
        have = path.read_text(encoding="utf-8")
        if have != want:
            diff = "".join(list(difflib.unified_diff(
                have.splitlines(True), want.splitlines(True), str(path), "built", n=1))[:40])
            problems.append(f"{path}: differs from the code (run `execbench dashboards build`)\n{diff}")
    for stray in sorted(directory.glob("*.json")):
        if stray.name not in expected_names:
            problems.append(f"{stray}: no dashboard in the code builds this file")
    return problems


def load_all(directory: Path = JSON_DIR) -> dict[str, dict]:
    return {uid: json.loads(path_for(uid, directory).read_text(encoding="utf-8"))
            for uid in builders()}
