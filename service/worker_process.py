"""`execbench worker`: provider workers in their own process, with their own /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from prometheus_client import CollectorRegistry, start_http_server

from service.app import default_replica_name
from service.db import create_schema, make_engine
from service.flags import FlagService
from service.locks import UserLocks
from service.metrics import ExecutorMetrics
from service.prices import PriceFeed
from service.provider import ProviderWorker
from service.settings import Settings
from service.store import Store


async def run_workers(settings: Settings, count: int, metrics_host: str, metrics_port: int) -> None:
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_host, registry=registry)
    engine = make_engine(settings.database_url, settings.db_pool_size)
    await create_schema(engine)
    store = Store(engine)
    flags = FlagService(store, metrics, settings.flag_ttl_s)
    await flags.start(settings.mode)
    name = settings.replica or f"worker-{default_replica_name()}"
    locks = UserLocks(engine)
    prices = PriceFeed(settings.price_seed)
    tasks = [asyncio.create_task(flags.run_refresher())]
    for index in range(count):
        worker = ProviderWorker(store=store, locks=locks, prices=prices, flags=flags, metrics=metrics,
                                settings=settings, name=f"{name}/w{index}")
        tasks.append(asyncio.create_task(worker.run()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await engine.dispose()
