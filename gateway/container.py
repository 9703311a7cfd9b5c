"""The parts a running gateway is made of, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.timing_log import GatewayLog
from gateway.upstream import Upstream
from service.audit import AuditTrail
from service.store import Store
from service.switches import Switches


@dataclass(slots=True)
class GatewayServices:
    # `settings.admin_token`, `audit` and `switches` are what the service's admin gate and
    # switch routes need (service/admin_gate.py, service/routes/admin.py)
    settings: GatewaySettings
    registry: CollectorRegistry
    metrics: GatewayMetrics
    store: Store
    switches: Switches
    audit: AuditTrail
    upstream: Upstream
    log: GatewayLog
    replica: str


async def get_services(request: Request) -> GatewayServices:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
    return request.app.state.services
