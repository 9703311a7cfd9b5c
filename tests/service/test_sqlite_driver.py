"""The one-trip aiosqlite adapter answers every statement as SQLAlchemy's own adapter does."""

import aiosqlite.core
import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from service.db import create_schema, flag_audit, flags, make_engine, writer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def exercise(engine) -> list:
    """The kinds of statement the service runs, and what each answered."""
    seen = []
    async with writer(engine).begin() as conn:
        await conn.execute(insert(flags), [
            {"name": f"f{i}", "value": "off", "version": 1, "changed_at": 0.0, "changed_by": "t"}
            for i in range(5)])  # executemany
        seen.append((await conn.execute(
            update(flags).where(flags.c.version == 1).values(version=flags.c.version + 1))).rowcount)
        seen.append((await conn.execute(update(flags).where(flags.c.name == "none").values(version=9))).rowcount)
        returned = await conn.execute(update(flags).where(flags.c.name.in_(("f1", "f2"))).values(value="on")
                                      .returning(flags.c.name, flags.c.value))
        seen.append(sorted(returned.all()))
        seen.append((await conn.execute(insert(flag_audit).values(
            ts=1.0, action="changed", flag="f1", actor="t", http_status=200).returning(flag_audit.c.id)
        )).scalar_one())
        seen.append((await conn.execute(insert(flag_audit).values(
            ts=2.0, action="changed", flag="f2", actor="t", http_status=200))).inserted_primary_key)
    async with engine.connect() as conn:
        result = await conn.execute(select(flags.c.name, flags.c.value, flags.c.version).order_by(flags.c.name))
        seen.append(list(result.keys()))
        seen.append(result.all())
        seen.append((await conn.execute(select(flags.c.name).where(flags.c.name == bindparam("n")),
                                        {"n": "f3"})).scalar())
        seen.append((await conn.execute(select(flags).where(flags.c.name == "none"))).first())
        seen.append((await conn.execute(text("SELECT count(*) FROM flag_audit"))).scalar())
        partial = await conn.execute(select(flags.c.name).order_by(flags.c.name))
        seen.append((partial.fetchone(), partial.fetchmany(2), partial.fetchall()))
    with pytest.raises(IntegrityError):  # the same exception class, wrapped the same way
        async with writer(engine).begin() as conn:
            await conn.execute(insert(flags).values(name="f0", value="x", version=1, changed_at=0.0,
                                                    changed_by="t"))
    with pytest.raises(OperationalError):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    async with engine.connect() as conn:  # the connection after a failure is usable
        seen.append((await conn.execute(select(flags.c.name).where(flags.c.name == "f0"))).scalar())
    return seen


async def test_it_answers_as_sqlalchemys_adapter_does(tmp_path):
    ours = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'ours.db'}")
    stock = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}")
    try:
        for engine in (ours, stock):
            await create_schema(engine)
        assert await exercise(ours) == await exercise(stock)
    finally:
        await ours.dispose()
        await stock.dispose()


async def test_a_read_is_two_trips_to_the_database_thread(tmp_path, monkeypatch):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await create_schema(engine)
        async with engine.connect() as conn:  # the pool's connection exists before counting
            await conn.execute(select(flags))
        trips = []
        original = aiosqlite.core.Connection._execute

        async def counted(self, fn, *args, **kwargs):
            trips.append(fn)
            return await original(self, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
        async with engine.connect() as conn:
            assert (await conn.execute(select(flags).where(flags.c.name == "x"))).first() is None
        assert len(trips) == 2  # BEGIN with the SELECT and its rows, the ROLLBACK on return (was 8)
        trips.clear()
        async with writer(engine).begin() as conn:
            await conn.execute(update(flags).where(flags.c.name == "x").values(version=2))
            await conn.execute(update(flags).where(flags.c.name == "y").values(version=2))
        assert len(trips) == 3  # BEGIN IMMEDIATE with the first UPDATE, the second, the COMMIT
        trips.clear()
        async with writer(engine).begin():
            pass
        assert trips == []  # no statement, so no BEGIN: nothing to commit
    finally:
        await engine.dispose()
