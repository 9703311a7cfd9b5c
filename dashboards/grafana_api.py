"""Talk to an existing Grafana through its HTTP API (grafana-client): dashboards and annotations.

- push: `POST /api/dashboards/db` with `{"dashboard": {..., "id": null}, "overwrite": true,
  "folderUid": ..., "message": ...}` per dashboard (the uid is pinned, so a push updates in place);
  with a folder, `GET /api/folders/:uid` and `POST /api/folders` when it is missing.
- annotate: `POST /api/annotations` with `{"time", "timeEnd", "tags", "text"}` (epoch ms) per phase
  (a region) and per flip (a point). They are organization annotations tagged `execbench`, which
  every execbench dashboard shows through its "execbench runs" annotation query.
Authentication is a service-account token, sent as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from dashboards.panels import ANNOTATION_TAG


class GrafanaError(RuntimeError):
    pass


def _api(url: str, token: str):
    from grafana_client import GrafanaApi

    return GrafanaApi.from_url(url, credential=token, timeout=10.0)


def _call(what: str, fn, *args, **kwargs):
    from grafana_client.client import GrafanaException

    try:
        return fn(*args, **kwargs)
    except GrafanaException as exc:
        raise GrafanaError(f"{what}: HTTP {exc.status_code}: {exc.message}") from exc
    except Exception as exc:  # connection refused, DNS, TLS: say which call failed
        raise GrafanaError(f"{what}: {exc}") from exc


def _ensure_folder(api, folder_uid: str) -> None:
    from grafana_client.client import GrafanaClientError

    try:
        api.folder.get_folder(folder_uid)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise GrafanaError(f"GET folder {folder_uid}: HTTP {exc.status_code}") from exc
        _call(f"create folder {folder_uid}", api.folder.create_folder, "execbench", uid=folder_uid)


def dashboard_payload(model: dict, folder_uid: str | None) -> dict:
    dashboard = {**model, "id": None}  # id is per Grafana instance; the uid identifies it
    payload = {"dashboard": dashboard, "overwrite": True,
               "message": "execbench dashboards push"}
    if folder_uid:
        payload["folderUid"] = folder_uid
    return payload


def push_dashboards(url: str, token: str, *, folder_uid: str | None = None,
                    models: dict[str, dict] | None = None) -> list[tuple[str, str]]:
    """Upload every dashboard (as built from the code); return (uid, Grafana url) pairs."""
    from dashboards.build import builders, render

    models = models or {uid: render(uid) for uid in builders()}
    api = _api(url, token)
    if folder_uid:
        _ensure_folder(api, folder_uid)
    pushed = []
    for uid, model in models.items():
        result = _call(f"push {uid}", api.dashboard.update_dashboard,
                       dashboard_payload(model, folder_uid))
        pushed.append((uid, url.rstrip("/") + str(result.get("url", f"/d/{uid}"))))
    return pushed


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def run_annotations(run_dir: str | Path) -> list[dict]:
    """Turn a run's timeline.jsonl into annotation payloads: phases as regions, flips as points."""
    run_dir = Path(run_dir)
    timeline = run_dir / "timeline.jsonl"
    if not timeline.exists():
        raise FileNotFoundError(f"{timeline} not found: is {run_dir} a run directory?")
    run = run_dir.name
    events = [json.loads(line) for line in timeline.read_text().splitlines() if line.strip()]
    annotations: list[dict] = []
    open_phases: dict[str, dict] = {}
    requested: dict[str, dict] = {}
    for event in events:
        kind = event.get("event")
        phase = event.get("phase") or ""
        mode = event.get("mode") or ""
        if kind == "phase_start":
            open_phases[phase] = event
        elif kind == "phase_end" and phase in open_phases:
            start = open_phases.pop(phase)
            mode = start.get("mode") or mode
            annotations.append({
                "time": _ms(start["ts"]), "timeEnd": _ms(event["ts"]),
                "tags": [ANNOTATION_TAG, "phase", run, phase, mode],
                "text": f"{run}: phase {phase} (mode {mode})",
            })
        elif kind == "flip_requested":
            requested[mode] = event
        elif kind == "flip_applied":
            asked = requested.pop(mode, None)
            lag = f", applied {(_ms(event['ts']) - _ms(asked['ts']))} ms after the request" \
                if asked else ""
            annotations.append({
                "time": _ms(event["ts"]), "timeEnd": _ms(event["ts"]),
                "tags": [ANNOTATION_TAG, "flip", run, mode],
                "text": f"{run}: flag provider_skip -> {mode}{lag}",
            })
    for phase, start in open_phases.items():  # a run cut short: mark where the phase began
        annotations.append({
            "time": _ms(start["ts"]), "timeEnd": _ms(start["ts"]),
            "tags": [ANNOTATION_TAG, "phase", run, phase, start.get("mode") or ""],
            "text": f"{run}: phase {phase} started (no end recorded)",
        })
    for annotation in annotations:  # a phase named like its mode needs the tag once
        annotation["tags"] = list(dict.fromkeys(t for t in annotation["tags"] if t))
    return annotations


def annotate_run(url: str, token: str, run_dir: str | Path) -> int:
    annotations = run_annotations(run_dir)
    api = _api(url, token)
    for a in annotations:
        _call("post annotation", api.annotations.add_annotation,
              time_from=a["time"], time_to=a["timeEnd"], tags=a["tags"], text=a["text"])
    return len(annotations)
