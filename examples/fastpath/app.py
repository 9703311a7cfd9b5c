"""fastpath: a checkout and search API whose `fast_path` flag (OpenFeature, flagd file) speeds it up.

    python -m examples.fastpath.app --port 9100 --flags /tmp/fastpath-flags.json

Run from the repository root. See examples/fastpath/README.md for the endpoints and settings.
It imports nothing of execbench: it stands for the user's own service.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import hmac
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from .flagctl import FlagFileError, UnknownVariant, set_default_variant
from .flags import FLAG, FastPathFlag, ensure_flag_file

# Environment variable -> Settings field; every one is optional (the defaults are the field's).
ENV = {
    "FASTPATH_FLAG_TOKEN": ("flag_token", str),
    "FASTPATH_FLAG_POLL_MS": ("poll_ms", int),
    "FASTPATH_CHECKOUT_LIMIT": ("checkout_limit", float),
    "FASTPATH_LEGACY_DELAY_MS": ("legacy_delay_ms", float),
    "FASTPATH_FAST_DELAY_MS": ("fast_delay_ms", float),
    "FASTPATH_LEGACY_CPU_ROUNDS": ("legacy_cpu_rounds", int),
    "FASTPATH_FAST_CPU_ROUNDS": ("fast_cpu_rounds", int),
    "FASTPATH_SEARCH_LEGACY_DELAY_MS": ("search_legacy_delay_ms", float),
    "FASTPATH_SEARCH_FAST_DELAY_MS": ("search_fast_delay_ms", float),
}


@dataclass(frozen=True)
class Settings:
    """Read once from the environment (FASTPATH_*); the CLI's options override it."""

    flags_file: Path
    flag_token: str | None = None
    poll_ms: int | None = None  # None: the flagd provider's default (500 ms, FLAGD_DEADLINE_MS)
    checkout_limit: float = 450.0
    legacy_delay_ms: float = 40.0
    fast_delay_ms: float = 10.0
    legacy_cpu_rounds: int = 2000
    fast_cpu_rounds: int = 200
    search_legacy_delay_ms: float = 12.0
    search_fast_delay_ms: float = 6.0

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> Settings:
        flags_file = overrides.pop("flags_file", None) or environ.get("FASTPATH_FLAGS_FILE")
        if not flags_file:
            raise SystemExit("fastpath: give --flags FILE or set FASTPATH_FLAGS_FILE")
        values: dict = {"flags_file": Path(flags_file).resolve()}
        for name, (field, cast) in ENV.items():
            raw = environ.get(name, "")
            if raw == "":
                continue
            try:
                values[field] = cast(raw)
            except ValueError:
                raise SystemExit(f"fastpath: {name}={raw!r} is not a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class CheckoutRequest(BaseModel):
    # Lax on purpose, as most JSON APIs are: a user id may be a number (17 -> "17") and an
    # amount a numeric string ("120" -> 120.0); a boolean is neither.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    user: str = Field(min_length=1, max_length=200)
    amount: float = Field(gt=0, allow_inf_nan=False)
    ref: uuid.UUID

    @field_validator("user", "amount", mode="before")
    @classmethod
    def _no_booleans(cls, value):
        if isinstance(value, bool):
            raise PydanticCustomError("no_boolean", "a boolean is not accepted here")
        return value


CATALOGUE = [
    {"id": f"{code}-{n}", "name": f"{name} lot {n}", "currency": code}
    for code, name in (("eur", "Euro"), ("usd", "US dollar"), ("gold", "Gold"), ("chf", "Franc"))
    for n in range(1, 26)
]


def scan(query: str) -> list[dict]:
    return [i for i in CATALOGUE if query == i["currency"] or query in i["name"].lower()]


@functools.lru_cache(maxsize=1024)
def cached_scan(query: str) -> tuple[dict, ...]:
    return tuple(scan(query))


def burn_cpu(rounds: int) -> None:
    """Real CPU work on the event loop, as a serializer or a rules engine would do."""
    digest = b"fastpath"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()


def timed(status: int, body: dict, started_ns: int, variant: str) -> JSONResponse:
    """The response with W3C Server-Timing `app` (this handler's time, ms) and X-Variant."""
    elapsed_ms = (time.perf_counter_ns() - started_ns) / 1e6
    if "timings" in body:
        body["timings"]["handler_ms"] = round(elapsed_ms, 3)
    return JSONResponse(
        body,
        status_code=status,
        headers={"Server-Timing": f"app;dur={elapsed_ms:.3f}", "X-Variant": variant},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    flag = FastPathFlag(settings.flags_file, settings.poll_ms)
    write_lock = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        ensure_flag_file(settings.flags_file)
        flag.start()
        try:
            yield
        finally:
            flag.stop()

    app = FastAPI(title="fastpath", lifespan=lifespan)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/api/checkout")
    async def checkout(request: Request):
        started = time.perf_counter_ns()
        variant = flag.variant()
        try:
            order = CheckoutRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            detail = exc.errors(include_url=False, include_context=False, include_input=False)
            return timed(422, {"error": "invalid_request", "detail": detail}, started, variant)
        if variant == "fast":
            # The cached risk decision: one short call, almost no local work.
            await asyncio.sleep(settings.fast_delay_ms / 1000)
            burn_cpu(settings.fast_cpu_rounds)
        else:
            # A synchronous round trip to the risk service, then re-signing the whole order.
            await asyncio.sleep(settings.legacy_delay_ms / 1000)
            burn_cpu(settings.legacy_cpu_rounds)
        if order.amount > settings.checkout_limit:
            body = {"error": "limit_exceeded", "limit": settings.checkout_limit, "ref": str(order.ref)}
            return timed(409, body, started, variant)
        body = {
            "order_id": str(uuid.uuid4()),
            "ref": str(order.ref),
            "user": order.user,
            "amount": order.amount,
            "status": "accepted",
            "variant": variant,
        }
        return timed(201, body, started, variant)

    @app.get("/api/search")
    async def search(request: Request):
        started = time.perf_counter_ns()
        variant = flag.variant()
        query = request.query_params.get("q", "").strip().lower()
        if not query:
            return timed(422, {"error": "invalid_request", "detail": "q is required"}, started, variant)
        # Same results either way; the fast path serves them from a cache and skips re-ranking.
        if variant == "fast":
            await asyncio.sleep(settings.search_fast_delay_ms / 1000)
            results = list(cached_scan(query))
        else:
            await asyncio.sleep(settings.search_legacy_delay_ms / 1000)
            burn_cpu(settings.legacy_cpu_rounds // 4)
            results = scan(query)
        body = {"results": results[:10], "count": len(results), "variant": variant, "timings": {}}
        return timed(200, body, started, variant)

    @app.get(f"/flags/{FLAG}")
    async def get_flag():
        variant, reason = flag.details()
        body = {"variant": variant, "reason": reason, "provider": flag.provider_status()}
        return JSONResponse(body, headers={"X-Variant": variant})

    @app.put(f"/flags/{FLAG}")
    async def put_flag(request: Request):
        if not settings.flag_token:
            return JSONResponse(
                {"error": "flag_writes_disabled", "detail": "FASTPATH_FLAG_TOKEN is not set"},
                status_code=403,
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return JSONResponse(
                {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        if not hmac.compare_digest(token.encode(), settings.flag_token.encode()):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        requested = payload.get("variant") if isinstance(payload, dict) else None
        if not isinstance(requested, str):
            return JSONResponse(
                {"error": "invalid_request", "detail": 'body must be {"variant": "<name>"}'},
                status_code=422,
            )
        try:
            async with write_lock:
                set_default_variant(settings.flags_file, FLAG, requested)
        except UnknownVariant as exc:
            body = {"error": "unknown_variant", "detail": str(exc), "variants": exc.variants}
            return JSONResponse(body, status_code=422)
        except (FlagFileError, OSError) as exc:
            return JSONResponse({"error": "flag_file", "detail": str(exc)}, status_code=503)
        # "variant" is what is evaluated now: the provider picks the file up on its next poll.
        current = flag.variant()
        return JSONResponse(
            {"variant": current, "requested": requested}, headers={"X-Variant": current}
        )

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.fastpath.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--flags", help="flagd flag file (default $FASTPATH_FLAGS_FILE)")
    parser.add_argument(
        "--poll-ms", type=int, help="flag file poll interval (default $FASTPATH_FLAG_POLL_MS, 500)"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    settings = Settings.from_env(flags_file=args.flags, poll_ms=args.poll_ms)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        log_level="info",
    )


if __name__ == "__main__":
    main()
