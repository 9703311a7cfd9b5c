"""The admin audit trail's write side: changes at once, refusals and reads aggregated.

A change (a flip, a provider setting) is one row, written in the change's own transaction. A
refused attempt or an admin read is noted per (action, endpoint, source host, status, minute):
the first of its minute is written at once, so a single refusal is in the trail immediately;
the rest only count, and the counts are added to that row every `flush_s` (and before the trail
is read, and at shutdown). A flood of refused calls costs one insert per source and minute and
one update per second, not one write per attempt. A failed audit write never turns the
refusal into a 500: the answer goes out and the failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from service.store import Store

log = logging.getLogger("execbench.audit")


class AuditTrail:
    def __init__(self, store: Store, *, flush_s: float = 1.0, clock: Callable[[], float] = time.time):
        self._store = store
        self._flush_s = flush_s
        self._clock = clock
        self._open: dict[tuple, list] = {}  # key -> [row id or None while inserting, pending count]
        # One flush at a time: a reader's flush must wait for counts another flush has taken
        # but not yet written, or the trail it reads misses them.
        self._flushing = asyncio.Lock()

    async def note(self, *, action: str, flag: str, actor: str, remote: str | None, requested: str | None,
                   reason: str | None, http_status: int) -> None:
        now = self._clock()
        host = remote.rsplit(":", 1)[0] if remote else None
        key = (action, flag, host, http_status, int(now // 60))
        entry = self._open.get(key)
        if entry is not None:
            entry[1] += 1
            return
        self._open[key] = entry = [None, 0]
        try:
            entry[0] = await self._store.audit_note(
                action=action, flag=flag, now=now, actor=actor, remote=host, requested=requested,
                reason=reason, http_status=http_status)
        except Exception:  # the refusal is answered whatever happens to its audit row
            self._open.pop(key, None)
            log.warning("audit write failed for %s %s from %s (%d)", action, flag, host, http_status,
                        exc_info=True)

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        minute = int(self._clock() // 60)
        for key, entry in list(self._open.items()):
            row_id, pending = entry
            if row_id is not None and pending:
                entry[1] = 0
                try:
                    await self._store.audit_add_attempts(row_id, pending)
                except Exception:  # keep the count for the next flush
                    entry[1] += pending
                    log.warning("audit flush failed; retrying", exc_info=True)
                    continue
            if key[-1] < minute and not entry[1] and row_id is not None:
                del self._open[key]  # its minute is over and its count written

    async def run_flusher(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()
