"""Assembles the executor service: parts, routes, middleware. Nothing else lives here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry

from service.admin_gate import AdminGate
from service.audit import AuditTrail
from service.container import Services
from service.db import create_schema, make_engine
from service.executor import OrderExecutor
from service.flags import FlagService
from service.locks import UserLocks
from service.methods import RouteMethods
from service.metrics import ExecutorMetrics
from service.middleware import BodyGuard, ErrorGuard, log_rejection
from service.prices import PriceFeed
from service.profiles import load_profile
from service.provider import ProviderSimulator, ProviderWorker, WorkSignal
from service.responses import JSON
from service.routes import accounts, admin, health, orders
from service.settings import Settings, get_settings
from service.store import Store
from service.switches import Switches
from service.timing_log import TimingLog

WORKER_STOP_GRACE_S = 5.0  # at shutdown, how long the provider workers may finish their batch


def default_replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _echo(value):
    """The rejected input as the answer quotes it: scalars (strings cut at 100 characters),
    never a container, whose size and depth the client chose."""
    if isinstance(value, str):
        return value[:100]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"


async def validation_error(request, exc: RequestValidationError) -> JSON:
    """422 with field-level detail; orjson writes NaN/inf inputs as null instead of failing."""
    errors = [{**{k: v for k, v in error.items() if k not in ("ctx", "input", "url")},
               **({"input": _echo(error["input"])} if "input" in error else {})}
              for error in exc.errors()]
    first = errors[0] if errors else {}
    log_rejection(request.scope, 422, str(first.get("type", "invalid")),
                  ".".join(map(str, first.get("loc", ()))))
    return JSON({"detail": jsonable_encoder(errors)}, status_code=422)


def create_app(settings: Settings | None = None, *, registry: CollectorRegistry | None = None,
               run_workers: bool = True, worker_count: int = 1) -> FastAPI:
    settings = settings or get_settings()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    replica = settings.replica or default_replica_name()
    profile = load_profile(settings.profile, seed=settings.latency_seed)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.database_url, settings.db_pool_size)
        await create_schema(engine)
        store = Store(engine)
        locks = UserLocks(engine)
        prices = PriceFeed(settings.price_seed)
        flags = FlagService(store, metrics, settings.flag_ttl_s)
        await flags.start(settings.mode)
        switches = Switches(store, {"parallel_config": settings.parallel_config}, settings.flag_ttl_s)
        await switches.start()
        timing_log = TimingLog(settings.timing_log)
        timing_log.start()
        provider = ProviderSimulator(settings, flags, random.Random(settings.provider_seed))
        signal = WorkSignal() if run_workers else None  # the executor tells its workers what is due
        executor = OrderExecutor(store=store, locks=locks, prices=prices, profile=profile, flags=flags,
                                 metrics=metrics, timing_log=timing_log, provider=provider,
                                 replica=replica, switches=switches, work_signal=signal)
        audit = AuditTrail(store)
        app.state.services = Services(settings, registry, metrics, store, flags, prices, executor, replica,
                                      audit, switches)
        tasks = [asyncio.create_task(flags.run_refresher(), name="flag-refresher"),
                 asyncio.create_task(switches.run_refresher(), name="switch-refresher"),
                 asyncio.create_task(audit.run_flusher(), name="audit-flusher")]
        workers, worker_tasks = [], []
        if run_workers:
            for index in range(worker_count):
                worker = ProviderWorker(store=store, locks=locks, prices=prices, flags=flags,
                                        metrics=metrics, settings=settings, name=f"{replica}/w{index}",
                                        signal=signal)
                workers.append(worker)
                worker_tasks.append(asyncio.create_task(worker.run(), name=f"provider-worker-{index}"))
        tasks += worker_tasks
        try:
            yield
        finally:
            # the workers finish the batch in hand (bounded: a stuck one is cancelled below,
            # and its claimed orders come back when their lease expires)
            for worker in workers:
                worker.stopping = True
            if worker_tasks:
                await asyncio.wait(worker_tasks, timeout=WORKER_STOP_GRACE_S)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await audit.flush()  # the last minute's counts
            timing_log.close()
            await engine.dispose()

    app = FastAPI(title="execbench executor", version="0.1.0", lifespan=lifespan,
                  summary="Reference order executor with the provider-skip optimization as a runtime flag")
    for module in (orders, accounts, admin, health):
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, validation_error)
    methods = RouteMethods(app.routes)
    app.add_exception_handler(405, methods.method_not_allowed)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes, on_reject=admin.audit_rejected_body)
    # before the body guard and FastAPI: a refused admin call costs no routing, body or database
    app.add_middleware(AdminGate, token=settings.admin_token, per_s=settings.admin_refusals_per_s,
                       burst=settings.admin_refusal_burst, tarpit_s=settings.admin_refusal_tarpit_s,
                       max_body_bytes=settings.max_body_bytes, methods=methods)
    app.add_middleware(ErrorGuard)
    return app
