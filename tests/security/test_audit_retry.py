"""A failed audit write loses no count: the attempts stay pending and the next flush writes them.

The failure is a real one from the database, not a mock: the audit table is renamed away while
the trail flushes (the insert, then the update, fail with "no such table" / "relation does not
exist"), then renamed back.
"""

import pytest
from sqlalchemy import text

from service.audit import AuditTrail
from service.db import create_schema, make_engine
from service.store import Store

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _rename(engine, old: str, new: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def _refusal_rows(engine) -> list[tuple]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(
            "SELECT flag, remote, http_status, attempts, ts FROM flag_audit WHERE action = 'refused'"))]


async def test_a_failed_first_insert_and_a_failed_update_keep_their_counts(database_url):
    engine = make_engine(database_url)
    await create_schema(engine)
    clock = Clock()
    trail = AuditTrail(Store(engine), clock=clock)
    first = clock.now

    def refuse(n: int) -> None:
        for _ in range(n):
            trail.note(action="refused", flag="ledger", actor="unauthenticated", remote="10.0.0.9:5000",
                       requested=None, reason="missing bearer token", http_status=401)
            clock.now += 0.01

    try:
        refuse(5)
        await _rename(engine, "flag_audit", "flag_audit_away")
        await trail.flush()  # the first insert fails
        assert trail.pending() == 5
        refuse(2)  # noted while the table is away
        await _rename(engine, "flag_audit_away", "flag_audit")
        assert await _refusal_rows(engine) == []  # the failed insert wrote nothing
        await trail.flush()
        assert trail.pending() == 0
        [(flag, remote, status, attempts, ts)] = await _refusal_rows(engine)
        assert (flag, remote, status, attempts) == ("ledger", "10.0.0.9", 401, 7)
        assert ts == pytest.approx(first)  # the row keeps its first attempt's time

        refuse(3)
        await _rename(engine, "flag_audit", "flag_audit_away")
        await trail.flush()  # now the update fails
        await _rename(engine, "flag_audit_away", "flag_audit")
        assert trail.pending() == 3
        await trail.flush()
        assert [r[3] for r in await _refusal_rows(engine)] == [10]
        assert trail.pending() == 0
    finally:
        await engine.dispose()
