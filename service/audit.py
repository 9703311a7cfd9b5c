"""The admin audit trail's write side: changes at once, refusals and reads aggregated.

A change (a flip, a provider setting) is one row, written in the change's own transaction. A
refused attempt or an admin read is only counted in memory, per (action, endpoint, source host,
status, minute): `note` never touches the database, so the admin gate (service/admin_gate.py)
answers a refusal without a single await on it. The counts are written every `flush_s` (and
before the trail is read, before every change, and at shutdown): the first flush of a key
inserts its row, with the time of its first attempt and the count so far, later flushes add to
that row. A flood of refused calls costs one insert per source and minute and one update per
second, not one write per attempt.

No count is lost to a failed write: a failed insert or update keeps the count pending and the
next flush tries again (the key's row is inserted late, with its first attempt's time). A
failed audit write never turns a refusal into a 500: refusals are answered before any write.
What a SIGKILL loses is the counts of the last `flush_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from service.store import Store

log = logging.getLogger("execbench.audit")


class _Entry:
    __slots__ = ("actor", "pending", "reason", "requested", "row_id", "ts")

    def __init__(self, ts: float, actor: str, requested: str | None, reason: str | None):
        self.row_id: int | None = None  # None until its row is inserted
        self.pending = 0  # attempts counted but not yet written
        self.ts, self.actor, self.requested, self.reason = ts, actor, requested, reason


class AuditTrail:
    def __init__(self, store: Store, *, flush_s: float = 1.0, clock: Callable[[], float] = time.time):
        self._store = store
        self._flush_s = flush_s
        self._clock = clock
        self._open: dict[tuple, _Entry] = {}  # in first-attempt order: rows are inserted in it
        # One flush at a time: a reader's flush must wait for counts another flush has taken
        # but not yet written, or the trail it reads misses them.
        self._flushing = asyncio.Lock()

    @staticmethod
    def _host(remote: str | None) -> str | None:
        return remote.rsplit(":", 1)[0] if remote else None

    def _key(self, action: str, flag: str, remote: str | None, http_status: int, now: float) -> tuple:
        return (action, flag, self._host(remote), http_status, int(now // 60))

    def is_new(self, *, action: str, flag: str, remote: str | None, http_status: int) -> bool:
        """Whether `note` with these would open a new row (its details are then recorded)."""
        return self._key(action, flag, remote, http_status, self._clock()) not in self._open

    def note(self, *, action: str, flag: str, actor: str, remote: str | None, requested: str | None,
             reason: str | None, http_status: int) -> None:
        """Count one refused attempt or read; memory only (written by the next flush)."""
        now = self._clock()
        key = self._key(action, flag, remote, http_status, now)
        entry = self._open.get(key)
        if entry is None:
            self._open[key] = entry = _Entry(now, actor, requested, reason)
        entry.pending += 1

    def pending(self) -> int:
        """Attempts counted and not yet written (tests; the flood benchmark)."""
        return sum(entry.pending for entry in self._open.values())

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        minute = int(self._clock() // 60)
        failed = 0
        for key, entry in list(self._open.items()):
            if entry.pending:
                count, entry.pending = entry.pending, 0
                try:
                    if entry.row_id is None:
                        action, flag, host, status, _ = key
                        entry.row_id = await self._store.audit_note(
                            action=action, flag=flag, now=entry.ts, actor=entry.actor, remote=host,
                            requested=entry.requested, reason=entry.reason, http_status=status,
                            attempts=count)
                    else:
                        await self._store.audit_add_attempts(entry.row_id, count)
                except Exception:  # keep the count for the next flush: none is lost
                    entry.pending += count
                    failed += 1
                    if failed == 1:
                        log.warning("audit write failed for %s; %d attempts kept for the next flush",
                                    key[:4], count, exc_info=True)
                    continue
            if key[-1] < minute and not entry.pending and entry.row_id is not None:
                del self._open[key]  # its minute is over and its count written
        if failed > 1:
            log.warning("audit flush: %d rows not written, kept for the next flush", failed)

    async def run_flusher(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()
