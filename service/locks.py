"""The per-user lock the local flow (and mode ``off``) serializes on.

Within a process an ``asyncio.Lock`` per user queues waiters without touching the
database. On PostgreSQL the holder also takes a transaction-scoped advisory lock, so
several executor replicas serialize like one; it is released by the transaction's
end even if the holder is cancelled. SQLite has no cross-process lock: with SQLite,
run one executor process (the embedded default does).

The advisory lock's transaction is the holder's transaction: `hold` yields its connection (None
on SQLite) and the holder writes through it, so a holder uses one pooled connection, not two.
With two (the lock's and the write's), a burst of holders each holding the first and waiting
for the second emptied the pool and stalled every request until the pool's timeout.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.db import is_postgres, writer

# Advisory-lock namespaces (the first int of the two-int key), one per account type.
_NAMESPACE = {"live": 0x45_42_01, "demo": 0x45_42_02}


class UserLocks:
    def __init__(self, engine: AsyncEngine):
        self._engine = writer(engine)
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
    async def hold(self, user_type: str, user_id: int) -> AsyncIterator[AsyncConnection | None]:
        """Hold the user's lock; on PostgreSQL yield the transaction that holds the advisory
        lock (commit at the end of the block), on SQLite None (write in your own)."""
        lock = self._lock_for(user_type, user_id)
        async with lock:
            if not self._advisory:
                yield None
                return
            async with self._engine.begin() as conn:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:namespace, :user_id)"),
                    {"namespace": _NAMESPACE[user_type], "user_id": user_id},
                )
                yield conn
