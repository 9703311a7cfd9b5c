"""The gateway's client of the executor: one pooled keep-alive client, one that never reuses.

The `keepalive` switch picks between them per request. Both share the TLS context (and so the
CA), so switching changes one thing only: whether the request pays a new connection (the TCP
connect and, over TLS, the handshake) or reuses an idle one from the pool.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

# What the gateway passes back of the executor's answer besides status and body.
PASSED_HEADERS = ("content-type", "idempotent-replay", "retry-after")


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]]


class Upstream:
    def __init__(self, base_url: str, *, ca_file: Path | None = None, timeout_s: float = 10.0,
                 pool_size: int = 100):
        self.base_url = base_url.rstrip("/")
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        timeout = httpx.Timeout(timeout_s)
        self.pooled = httpx.AsyncClient(
            base_url=self.base_url, verify=verify, timeout=timeout,
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size,
                                keepalive_expiry=60.0))
        # No idle connection is kept, and the server is asked to close too: a new one a request.
        self.fresh = httpx.AsyncClient(
            base_url=self.base_url, verify=verify, timeout=timeout, headers={"connection": "close"},
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=0))

    async def post(self, path: str, body: bytes, *, keepalive: bool) -> Answer:
        client = self.pooled if keepalive else self.fresh
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
        headers = [(k, response.headers[k]) for k in PASSED_HEADERS if k in response.headers]
        return Answer(response.status_code, response.content, headers)

    async def get(self, path: str) -> httpx.Response:
        return await self.pooled.get(path)

    async def aclose(self) -> None:
        await self.pooled.aclose()
        await self.fresh.aclose()
