"""The per-user lock the local flow (and mode ``off``) serializes on.

Within a process an ``asyncio.Lock`` per user queues waiters without touching the
database. On PostgreSQL the holder also takes a transaction-scoped advisory lock, so
several executor replicas serialize like one; it is released by the transaction's
end even if the holder is cancelled. SQLite has no cross-process lock: with SQLite,
run one executor process (the embedded default does).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import is_postgres

# Advisory-lock namespaces (the first int of the two-int key), one per account type.
_NAMESPACE = {"live": 0x45_42_01, "demo": 0x45_42_02}


class UserLocks:
    def __init__(self, engine: AsyncEngine):
        self._engine = engine
        self._advisory = is_postgres(engine)
        self._local: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _lock_for(self, user_type: str, user_id: int) -> asyncio.Lock:
        key = (user_type, user_id)
        lock = self._local.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._local[key] = lock
        return lock

    @asynccontextmanager
    async def hold(self, user_type: str, user_id: int) -> AsyncIterator[None]:
        lock = self._lock_for(user_type, user_id)
        async with lock:
            if not self._advisory:
                yield
                return
            async with self._engine.begin() as conn:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:namespace, :user_id)"),
                    {"namespace": _NAMESPACE[user_type], "user_id": user_id},
                )
                yield
