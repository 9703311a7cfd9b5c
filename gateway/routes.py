"""The gateway's routes: the order (passed to the executor), its switches, health and metrics.

The order path is the executor's own, `POST /api/orders/instant/execute`; the body is passed as
it came (the executor validates it) and the answer, status and body, is the executor's. The
admin routes are the service's (service/routes/admin.py): same token, same refusals, same
audit trail (in the gateway's own database), the switches in provider_skip's shape.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import Annotated, Literal

import httpx
import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from gateway.container import GatewayServices, get_services
from gateway.metrics import executor_flags
from service.responses import JSON
from service.routes.admin import AUDIT_PAGE_MAX, _audited_read, change_switch, switches_view
from service.timing_log import iso_utc

ORDER_PATH = "/api/orders/instant/execute"
router = APIRouter()
Services = Annotated[GatewayServices, Depends(get_services)]
AnyBody = Annotated[dict | list | str | int | float | bool | None, Body()]


class Started:
    """Pure ASGI: stamps the request's arrival, so total_ms includes reading the body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope.setdefault("state", {})["started_ns"] = perf_counter_ns()
        await self.app(scope, receive, send)


def _outcome(status: int, answer: dict) -> tuple[str, str | None]:
    if 200 <= status < 300:
        return "success", None
    if status < 500:
        return "rejected", str(answer.get("error") or f"http_{status}")
    return "error", str(answer.get("error") or f"http_{status}")


@router.post(ORDER_PATH)
async def execute_order(request: Request, services: Services):
    started = request.scope.get("state", {}).get("started_ns") or perf_counter_ns()
    switches = services.switches.snapshot()  # read once: the request uses these throughout
    body = await request.body()
    t = perf_counter_ns()
    try:
        answer = await services.upstream.post(ORDER_PATH, body, keepalive=switches["keepalive"] == "on")
    except httpx.TimeoutException as exc:
        services.metrics.upstream_errors.labels("timeout").inc()
        status, content, headers = 504, {"error": "upstream_timeout", "detail": str(exc) or "timeout"}, []
    except httpx.HTTPError as exc:
        services.metrics.upstream_errors.labels("unreachable").inc()
        status, content, headers = 502, {"error": "bad_gateway", "detail": str(exc) or type(exc).__name__}, []
    else:
        status, content, headers = answer.status, answer.body, answer.headers
    upstream_ms = round((perf_counter_ns() - t) / 1e6, 3)
    if isinstance(content, dict):
        parsed, content = content, orjson.dumps(content)
        headers = [("content-type", "application/json")]
    else:
        try:
            parsed = orjson.loads(content) if content else {}
        except orjson.JSONDecodeError:
            parsed = {}
        parsed = parsed if isinstance(parsed, dict) else {}
    outcome, reason = _outcome(status, parsed)
    upstream_durations = parsed.get("durations_ms") if isinstance(parsed.get("durations_ms"), dict) else {}
    upstream_flags = parsed.get("flags") if isinstance(parsed.get("flags"), dict) else {}
    durations = {"total_ms": 0.0, "gateway_ms": 0.0, "upstream_ms": upstream_ms, "log_ms": 0.0}
    if "executor_ms" in upstream_durations:
        durations["executor_ms"] = upstream_durations["executor_ms"]
    record = {"ts": iso_utc(services.log.clock()), "component": "gateway",
              "endpoint": "orders/instant/execute", "status": outcome,
              "order_id": parsed.get("order_id"), "flow": parsed.get("flow"), "mode": parsed.get("mode"),
              "replica": services.replica, "http_status": status,
              "flags": {**upstream_flags, **switches}, "durations_ms": durations}
    if reason is not None:
        record["reason"] = reason
    await services.log.write(record, started, queued=switches["async_logging"] == "on")
    services.metrics.observe(switches["keepalive"], switches["async_logging"], *executor_flags(parsed),
                             outcome, durations)
    return Response(content, status_code=status, headers=dict(headers))


@router.get("/admin/flags")
async def get_flags(services: Services) -> dict:
    return switches_view(services.switches)


@router.put("/admin/flags/keepalive", responses={401: {}, 403: {}, 422: {}, 429: {}})
async def put_keepalive(request: Request, services: Services, body: AnyBody = None):
    return await change_switch(request, services, "keepalive", body)


@router.put("/admin/flags/async_logging", responses={401: {}, 403: {}, 422: {}, 429: {}})
async def put_async_logging(request: Request, services: Services, body: AnyBody = None):
    return await change_switch(request, services, "async_logging", body)


@router.get("/admin/flags/audit", responses={401: {}, 403: {}, 429: {}})
async def get_audit(request: Request, services: Services,
                    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
                    action: Literal["changed", "refused", "read"] | None = None):
    refused = await _audited_read(request, services, "audit")
    if refused is not None:
        return refused
    await services.audit.flush()
    entries = await services.store.audit_entries(limit, None, action)
    return {"entries": [{**e, "ts": iso_utc(e["ts"])} for e in entries]}


@router.get("/healthz")
async def healthz(services: Services) -> JSON:
    return JSON({"status": "ok", "replica": services.replica, "upstream": services.upstream.base_url,
                 "flags": services.switches.snapshot(), "log": {
                     "written": services.log.written, "dropped": services.log.dropped}})


@router.get("/metrics", include_in_schema=False)
async def metrics(services: Services) -> Response:
    return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)
