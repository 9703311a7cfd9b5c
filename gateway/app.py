"""Assembles the gateway: parts, routes, middleware. Nothing else lives here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from gateway import routes
from gateway.container import GatewayServices
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings, get_settings, sink_latency_ms
from gateway.timing_log import GatewayLog, Sink
from gateway.upstream import Upstream
from service.admin_gate import AdminGate
from service.audit import AuditTrail
from service.db import create_schema, make_engine
from service.middleware import BodyGuard, ErrorGuard
from service.store import Store
from service.switches import Switches


def create_app(settings: GatewaySettings | None = None, *,
               registry: CollectorRegistry | None = None) -> FastAPI:
    settings = settings or get_settings()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = GatewayMetrics(registry)
    replica = settings.replica or f"{socket.gethostname()}:{os.getpid()}/gateway"
    sink = Sink(settings.timing_log, sink_latency_ms(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.database_url)
        await create_schema(engine)
        store = Store(engine)
        seen: set[str] = set()

        def switched(name: str, mode: str) -> None:
            metrics.switch_changed(name, mode, initial=name not in seen)
            seen.add(name)

        switches = Switches(store, {"keepalive": settings.keepalive,
                                    "async_logging": settings.async_logging},
                            settings.flag_ttl_s, on_change=switched)
        await switches.start()
        audit = AuditTrail(store)
        upstream = Upstream(settings.upstream, ca_file=settings.upstream_ca,
                            timeout_s=settings.upstream_timeout_s, pool_size=settings.pool_size)
        log = GatewayLog(sink, metrics, settings.log_queue_size, replica)
        log.start()
        app.state.services = GatewayServices(settings, registry, metrics, store, switches, audit,
                                             upstream, log, replica)
        tasks = [asyncio.create_task(switches.run_refresher(), name="switch-refresher"),
                 asyncio.create_task(audit.run_flusher(), name="audit-flusher")]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await audit.flush()
            await log.close()
            await upstream.aclose()
            await engine.dispose()

    app = FastAPI(title="execbench gateway", version="0.1.0", lifespan=lifespan,
                  summary="The note's Node.js front: calls the executor, logs, answers")
    app.include_router(routes.router)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(AdminGate, token=settings.admin_token, per_s=settings.admin_refusals_per_s,
                       burst=settings.admin_refusal_burst, tarpit_s=settings.admin_refusal_tarpit_s,
                       max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ErrorGuard)
    app.add_middleware(routes.Started)
    return app
