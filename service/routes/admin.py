"""The admin API: the provider_skip flag, its audit trail, provider faults and the ledger.

Changes and the admin reads (ledger, provider settings, audit trail) need
`Authorization: Bearer <EXECBENCH_ADMIN_TOKEN>` (compared in constant time): no token → 401, a
wrong one → 403, and with no token configured every one is refused; a source with too many
refusals gets 429. Those refusals are answered by the admin gate (service/admin_gate.py) before
any route runs; the routes check the token again (an app without the gate stays closed).
`GET /admin/flags` stays open: it answers from memory (no database read) what `/healthz` says
too, the mode. Every change is written to the audit trail at once (after the counts noted
before it, so the trail's order is the order of events); refused attempts (of changes and of
reads) and admin reads are counted per source and minute (service/audit.py), so a flood of
them costs the database one row a minute per source, not one write per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from service.container import Services, get_services
from service.flags import FLAG, PROVIDER, FlagState, ProviderFaults
from service.responses import JSON
from service.schemas import FlagChange, ProviderChange
from service.switches import SwitchChange
from service.timing_log import iso_utc

router = APIRouter(prefix="/admin", tags=["admin"])


class Refused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def check_token(request: Request, services: Services) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    expected = services.settings.admin_token
    if not header or scheme.lower() != "bearer" or not presented:
        raise Refused(401, "missing bearer token")
    if not expected:
        raise Refused(403, "admin changes are disabled: EXECBENCH_ADMIN_TOKEN is not set")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Refused(403, "invalid token")


def refusal(exc: Refused) -> JSON:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSON({"error": "unauthorized" if exc.status == 401 else "forbidden", "detail": exc.detail},
                status_code=exc.status, headers=headers)


def flag_view(state: FlagState, previous: str | None = None) -> dict:
    view = {"mode": state.mode, "changed_at": iso_utc(state.changed_at),
            "changed_by": state.changed_by, "applied_at": iso_utc(state.applied_at)}
    if previous is not None:
        view["previous_mode"] = previous
    return {FLAG: view}


def remote(request: Request) -> str | None:
    return f"{request.client.host}:{request.client.port}" if request.client else None


async def _audited_change(request: Request, services: Services, flag: str, raw_body, model):
    """Authenticate, then validate; either refusal is audited before anything changes."""
    requested = raw_body.get("mode") if isinstance(raw_body, dict) else None

    def audit(actor: str, reason: str, status: int) -> None:
        services.audit.note(
            action="refused", flag=flag, actor=actor, remote=remote(request),
            requested=str(requested)[:64] if requested else None, reason=reason, http_status=status)

    try:
        check_token(request, services)
    except Refused as exc:
        audit("unauthenticated", exc.detail, exc.status)
        return None, refusal(exc)
    try:
        change = model.model_validate(raw_body)
    except ValidationError as exc:
        audit("admin-token", "invalid request body", 422)
        raise RequestValidationError(exc.errors(include_url=False, include_context=False),
                                     body=raw_body) from None
    await services.audit.flush()  # the attempts noted before this change get their rows first
    return change, None


async def _audited_read(request: Request, services: Services, what: str) -> JSON | None:
    """The token check of an admin read; the refusal or the read is noted in the trail."""
    try:
        check_token(request, services)
    except Refused as exc:
        services.audit.note(action="refused", flag=what, actor="unauthenticated", remote=remote(request),
                            requested=None, reason=exc.detail, http_status=exc.status)
        return refusal(exc)
    services.audit.note(action="read", flag=what, actor="admin-token", remote=remote(request),
                        requested=None, reason=None, http_status=200)
    return None


async def audit_rejected_body(scope, status: int, kind: str) -> None:
    """BodyGuard's hook: an admin change refused for its body before any route saw it."""
    path = scope.get("path", "")
    services = getattr(scope["app"].state, "services", None) if "app" in scope else None
    if services is None or not path.startswith("/admin/"):
        return
    flag = FLAG if path.endswith(FLAG) else PROVIDER if path.endswith(PROVIDER) else path[:32]
    client = scope.get("client")
    services.audit.note(action="refused", flag=flag, actor="unknown", requested=None,
                        remote=f"{client[0]}:{client[1]}" if client else None,
                        reason=f"unusable request body ({kind})", http_status=status)


def switch_view(name: str, state: FlagState, previous: str | None = None) -> dict:
    """An on/off switch (service/switches.py) in provider_skip's shape."""
    return {name: flag_view(state, previous)[FLAG]}


def switches_view(switches) -> dict:
    return {name: switch_view(name, state)[name] for name, state in switches.state.items()}


async def change_switch(request: Request, services, name: str, body) -> dict | JSON:
    """PUT /admin/flags/<switch>: authenticated, validated, audited as provider_skip's change.
    `services` needs `settings.admin_token`, `audit` and `switches` (the gateway's do too)."""
    change, refused = await _audited_change(request, services, name, body, SwitchChange)
    if refused is not None:
        return refused
    old, state = await services.switches.set(name, change.mode, actor=change.actor or "admin-token",
                                             reason=change.reason, remote=remote(request))
    return switch_view(name, state, previous=old)


@router.get("/flags")
async def get_flags(services: Annotated[Services, Depends(get_services)]) -> dict:
    return {**flag_view(services.flags.state), **switches_view(services.switches)}


# What an admin change can answer besides 200 (a 400 is a body that is not UTF-8 JSON, FastAPI's
# own answer; a 413 the body guard's): every status documented, so a schema fuzzer's
# "undocumented status code" check holds.
CHANGE_RESPONSES = {400: {"description": "the body is not UTF-8 JSON"}, 401: {}, 403: {},
                    413: {"description": "body too large"}, 422: {}, 429: {}}


def _documented_body(model) -> dict:
    """The route reads any JSON (a refusal is audited before validation); the schema it
    documents is the model's, which is what a client should send."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


@router.put("/flags/provider_skip", responses=CHANGE_RESPONSES,
            openapi_extra=_documented_body(FlagChange))
async def put_provider_skip(request: Request, services: Annotated[Services, Depends(get_services)],
                            body: Annotated[dict | list | str | int | float | bool | None, Body()] = None):
    change, refused = await _audited_change(request, services, FLAG, body, FlagChange)
    if refused is not None:
        return refused
    old, state = await services.flags.set_mode(change.mode, actor=change.actor or "admin-token",
                                               reason=change.reason, remote=remote(request))
    return flag_view(state, previous=old)


# Out of the OpenAPI document for now: tests/service/test_fuzz_openapi.py picks the body model
# of every PUT it fuzzes by its path (provider_skip's or the provider's), not this one's.
@router.put("/flags/parallel_config", responses=CHANGE_RESPONSES,
            include_in_schema=False)
async def put_parallel_config(request: Request, services: Annotated[Services, Depends(get_services)],
                              body: Annotated[dict | list | str | int | float | bool | None, Body()] = None):
    return await change_switch(request, services, "parallel_config", body)


AUDIT_PAGE_MAX = 500


@router.get("/flags/audit", responses={401: {}, 403: {}, 429: {}})
async def get_audit(request: Request, services: Annotated[Services, Depends(get_services)],
                    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
                    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                    action: Literal["changed", "refused", "read"] | None = None):
    """Newest first, `limit` entries a page; `next_before_id` fetches the next (older) page;
    `action=changed` lists the flips alone, however many refusals came after them."""
    refused = await _audited_read(request, services, "audit")
    if refused is not None:
        return refused
    await services.audit.flush()  # the counts noted since the last flush
    entries = await services.store.audit_entries(limit, before_id, action)
    next_before = entries[-1]["id"] if len(entries) == limit else None
    return {"entries": [{**e, "ts": iso_utc(e["ts"])} for e in entries], "next_before_id": next_before}


@router.get("/provider", responses={401: {}, 403: {}, 429: {}})
async def get_provider(request: Request, services: Annotated[Services, Depends(get_services)]):
    refused = await _audited_read(request, services, "provider")
    if refused is not None:
        return refused
    return _provider_view(services)


def _provider_view(services: Services) -> dict:
    faults = services.flags.provider
    settings = services.settings
    return {"outage": faults.outage,
            "reject_ratio": settings.provider_reject_ratio if faults.reject_ratio is None else faults.reject_ratio,
            "timeout_ratio": settings.provider_timeout_ratio if faults.timeout_ratio is None else faults.timeout_ratio,
            "delay_ms": settings.provider_delay_ms if faults.delay_ms is None else faults.delay_ms,
            "timeout_s": settings.provider_timeout_s}


@router.put("/provider", responses=CHANGE_RESPONSES, openapi_extra=_documented_body(ProviderChange))
async def put_provider(request: Request, services: Annotated[Services, Depends(get_services)],
                       body: Annotated[dict | list | str | int | float | bool | None, Body()] = None):
    change, refused = await _audited_change(request, services, PROVIDER, body, ProviderChange)
    if refused is not None:
        return refused
    faults = ProviderFaults(outage=change.outage, reject_ratio=change.reject_ratio,
                            timeout_ratio=change.timeout_ratio, delay_ms=change.delay_ms)
    await services.flags.set_provider(faults, actor=change.actor or "admin-token", reason=change.reason,
                                      remote=remote(request))
    return _provider_view(services)


@router.get("/ledger", responses={401: {}, 403: {}, 429: {}})
async def get_ledger(request: Request, services: Annotated[Services, Depends(get_services)],
                     by_mode: bool = True):
    """`?by_mode=false`: the totals only, cheap enough to poll every second during a run."""
    refused = await _audited_read(request, services, "ledger")
    if refused is not None:
        return refused
    return await services.store.ledger(by_mode_detail=by_mode)
