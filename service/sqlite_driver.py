"""SQLAlchemy's aiosqlite adapter with one trip to the database thread per statement, not four.

aiosqlite runs each sqlite3 call on a thread of its own; every call is a trip there and back (a
queue put, the thread woken, the GIL handed over, the answer posted back to the event loop). The
adapter SQLAlchemy ships makes four per statement (open a cursor, execute, fetch the rows, close
the cursor), so a one-row read with its BEGIN and ROLLBACK took eight, ~0.7 ms of CPU on this
machine: most of what an order cost the service. Here the four run on the thread in one trip.
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


def _run(conn: sqlite3.Connection, many: bool, operation, parameters):
    """On the database thread: what the four trips did, as one."""
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
        return description, cursor.rowcount, cursor.lastrowid, rows
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
        async with self._adapt_connection._execute_mutex:
            aio = self._connection
            description, self._rowcount, self._lastrowid, rows = await aio._execute(
                _run, aio._conn, many, operation, parameters)
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
    __slots__ = ()
    _cursor_cls = _OneTripCursor


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg, **kw):
        adapted = super().connect(*arg, **kw)
        return _OneTripConnection(self, adapted._connection)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The module to pass as `create_async_engine(..., module=dbapi())` for sqlite+aiosqlite."""
    return _OneTripDBAPI(aiosqlite, sqlite3)
