"""The parts a running service is made of, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from prometheus_client import CollectorRegistry

from service.audit import AuditTrail
from service.executor import OrderExecutor
from service.flags import FlagService
from service.metrics import ExecutorMetrics
from service.prices import PriceFeed
from service.settings import Settings
from service.store import Store
from service.switches import Switches


@dataclass(slots=True)
class Services:
    settings: Settings
    registry: CollectorRegistry
    metrics: ExecutorMetrics
    store: Store
    flags: FlagService
    prices: PriceFeed
    executor: OrderExecutor
    replica: str
    audit: AuditTrail
    switches: Switches


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
    return request.app.state.services
