"""SQLAlchemy's aiosqlite adapter with one trip to the database thread per statement, not four.

aiosqlite runs each sqlite3 call on a thread of its own; every call is a trip there and back (a
queue put, the thread woken, the GIL handed over, the answer posted back to the event loop). The
adapter SQLAlchemy ships makes four per statement (open a cursor, execute, fetch the rows, close
the cursor), so a one-row read with its BEGIN and ROLLBACK took eight, ~0.7 ms of CPU on this
machine: most of what an order cost the service. Here the four run on the thread in one trip,
and a transaction's BEGIN goes in the trip of its first statement (`begin_with_next_statement`,
called by the engine's "begin" listener, service/db.py) instead of a trip of its own; a COMMIT
or ROLLBACK with no transaction open on the connection (a transaction that ran no statement, the
pool's ROLLBACK after a COMMIT), a no-op in sqlite3, takes no trip either.
The same statements reach sqlite3 in the same order, on the same thread, in the same
transactions; only the hops between them are gone. Engines get it through `module=` (the DBAPI
SQLAlchemy's own aiosqlite dialect drives), so the dialect, its URL and its pool stay SQLAlchemy's.

It uses aiosqlite's `Connection._execute` (run a function on the connection's thread), as
SQLAlchemy's own adapter uses aiosqlite's queue for its isolation-level setter.
"""

from __future__ import annotations

import collections
import sqlite3

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

__all__ = ["dbapi"]


def _run(conn: sqlite3.Connection, begin: str | None, many: bool, operation, parameters):
    """On the database thread: what the four trips (five with the BEGIN) did, as one."""
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        return description, cursor.rowcount, cursor.lastrowid, rows, conn.in_transaction
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection):
        # no sqlite3 cursor is opened here (that was a trip of its own): each statement opens
        # and closes its own on the thread
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description = None
        self._rowcount = -1
        self._lastrowid = None

    @property
    def description(self):
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self):
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # rows are fetched whole on the thread; there is no batch size to set

    async def _run(self, many: bool, operation, parameters):
        adapt = self._adapt_connection
        async with adapt._execute_mutex:
            aio = self._connection
            begin, adapt.pending_begin = adapt.pending_begin, None
            adapt.in_transaction = True  # until the trip says otherwise (a failed one may have begun)
            description, self._rowcount, self._lastrowid, rows, adapt.in_transaction = await aio._execute(
                _run, aio._conn, begin, many, operation, parameters)
            self._description = description
            self._rows = collections.deque(rows)

    async def _execute_async(self, operation, parameters):
        await self._run(False, operation, parameters)

    async def _executemany_async(self, operation, seq_of_parameters):
        await self._run(True, operation, seq_of_parameters)

    async def _async_soft_close(self) -> None:
        return None  # the sqlite3 cursor is closed already

    def close(self) -> None:
        self._rows.clear()


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("in_transaction", "pending_begin")
    _cursor_cls = _OneTripCursor

    def __init__(self, dbapi, connection):
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        # sqlite3's own flag, as the last trip on the thread read it (it may not be read here:
        # the sqlite3 connection belongs to aiosqlite's thread); every statement, COMMIT and
        # ROLLBACK of this connection goes through this adapter, so it stays current
        self.in_transaction = False

    def begin_with_next_statement(self, statement: str) -> None:
        """Send `statement` (BEGIN, BEGIN IMMEDIATE) right before the next statement, in its trip."""
        self.pending_begin = statement

    def commit(self) -> None:
        self.pending_begin = None  # no statement ran since it, so it was never sent
        if self.in_transaction:
            super().commit()
            self.in_transaction = False

    def rollback(self) -> None:
        self.pending_begin = None
        if self.in_transaction:
            super().rollback()
            self.in_transaction = False


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg, **kw):
        adapted = super().connect(*arg, **kw)
        return _OneTripConnection(self, adapted._connection)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The module to pass as `create_async_engine(..., module=dbapi())` for sqlite+aiosqlite."""
    return _OneTripDBAPI(aiosqlite, sqlite3)
