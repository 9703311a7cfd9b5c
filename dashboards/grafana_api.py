"""Talk to an existing Grafana through its HTTP API (on httpx): dashboards and annotations.

- push: `POST /api/dashboards/db` with `{"dashboard": {..., "id": null}, "overwrite": true,
  "folderUid": ..., "message": ...}` per dashboard (the uid is pinned, so a push updates in place);
  with a folder, `GET /api/folders/:uid` and `POST /api/folders` when it is missing.
- annotate: `POST /api/annotations` with `{"time", "timeEnd", "tags", "text"}` (epoch ms) per phase
  (a region) and per flip (a point). They are organization annotations tagged `execbench`, which
  every execbench dashboard shows through its "execbench runs" annotation query.
Authentication is a service-account token, sent as `Authorization: Bearer <token>`.

These four calls are made directly on httpx (a dependency already): a Grafana client library
(grafana-client) would pull niquests and urllib3-future, which replace `urllib3` in the
environment and break every `requests`-based tool installed next to execbench.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Self
from urllib.parse import quote

import httpx

from dashboards.panels import ANNOTATION_TAG


class GrafanaError(RuntimeError):
    pass


class GrafanaStatusError(GrafanaError):
    def __init__(self, what: str, status_code: int, message: str):
        super().__init__(f"{what}: HTTP {status_code}: {message}")
        self.status_code = status_code


class _Grafana:
    """The few Grafana HTTP API calls execbench makes; every failure is a GrafanaError."""

    def __init__(self, url: str, token: str, timeout: float = 10.0):
        # base_url keeps a path prefix (Grafana behind a proxy at /grafana): "api/..." joins it.
        self._client = httpx.Client(base_url=url.rstrip("/") + "/", timeout=timeout,
                                    headers={"Authorization": f"Bearer {token}",
                                             "Accept": "application/json"})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._client.close()

    def request(self, what: str, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self._client.request(method, path.lstrip("/"), json=body)
        except httpx.HTTPError as exc:  # connection refused, DNS, TLS, timeout: say which call
            raise GrafanaError(f"{what}: {exc}") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_error:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise GrafanaStatusError(what, response.status_code,
                                     message or response.text[:200] or response.reason_phrase)
        if not isinstance(payload, dict):
            raise GrafanaError(f"{what}: HTTP {response.status_code} but not a JSON object from "
                               f"{response.request.url}: is this Grafana's base URL?")
        return payload


def _ensure_folder(api: _Grafana, folder_uid: str) -> None:
    try:
        api.request(f"GET folder {folder_uid}", "GET", f"/api/folders/{quote(folder_uid, safe='')}")
    except GrafanaStatusError as exc:
        if exc.status_code != 404:
            raise
        api.request(f"create folder {folder_uid}", "POST", "/api/folders",
                    {"title": "execbench", "uid": folder_uid})


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
    pushed = []
    with _Grafana(url, token) as api:
        if folder_uid:
            _ensure_folder(api, folder_uid)
        for uid, model in models.items():
            result = api.request(f"push {uid}", "POST", "/api/dashboards/db",
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
    with _Grafana(url, token) as api:
        for a in annotations:
            api.request("post annotation", "POST", "/api/annotations",
                        {"time": a["time"], "timeEnd": a["timeEnd"], "tags": a["tags"],
                         "text": a["text"]})
    return len(annotations)
