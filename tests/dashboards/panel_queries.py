"""Walk a Grafana dashboard's panels and targets, with template variables substituted as Grafana
would for the default selection ("All"), or once per value for a panel repeated by a variable."""

from __future__ import annotations

import re
from collections.abc import Iterator

# What Grafana puts in for its built-in interval variables; the live test scrapes every second,
# so 30 s holds many samples (Grafana: max(4 x scrape interval, $__interval + scrape interval)).
BUILTINS = {
    "$__rate_interval": "30s",
    "$__interval": "5s",
    "$__range": "10m",
}


def all_panels(model: dict) -> list[dict]:
    out = []
    for panel in model.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels") or [])
    return out


def _variables(model: dict) -> dict[str, dict]:
    return {v["name"]: v for v in model.get("templating", {}).get("list", [])}


def _values(variable: dict) -> list[str]:
    return [v.strip() for v in variable["query"].split(",") if v.strip()]


def substitute(expr: str, assignments: dict[str, str]) -> str:
    for name, value in sorted(BUILTINS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    for name, value in assignments.items():
        expr = re.sub(r"\$\{" + name + r"\}|\$" + name + r"\b", value, expr)
    return expr


def dashboard_targets(model: dict) -> Iterator[tuple[dict, dict, str]]:
    """(panel, target, expression) for every target; repeated panels once per variable value."""
    variables = _variables(model)
    defaults = {name: v.get("allValue") or ".*" for name, v in variables.items()}
    for panel in all_panels(model):
        if panel["type"] == "row":
            continue
        repeat = panel.get("repeat")
        assignments_list = [defaults]
        if repeat:
            assignments_list = [{**defaults, repeat: re.escape(value)}
                                for value in _values(variables[repeat])]
        for assignments in assignments_list:
            for target in panel["targets"]:
                yield panel, target, substitute(target["expr"], assignments)


def annotation_queries(model: dict) -> Iterator[tuple[dict, str]]:
    for annotation in model.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield annotation, substitute(annotation["expr"], {})
