"""/healthz and /metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.container import Services, get_services

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(services: Annotated[Services, Depends(get_services)]) -> dict:
    return {"status": "ok", "replica": services.replica, "mode": services.flags.mode}


@router.get("/metrics", include_in_schema=False)
async def metrics(services: Annotated[Services, Depends(get_services)]) -> Response:
    return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)
