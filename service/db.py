"""The schema and the engine: one SQLAlchemy Core code path for SQLite and PostgreSQL.

Times are epoch seconds (float) so both backends compare them the same way; the
margin held for queued orders is integer cents, so the ledger reconciles exactly.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.sqlite_driver import dbapi as sqlite_dbapi

metadata = MetaData()

groups = Table(
    "groups",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("flow", String(16), nullable=False),  # "local" | "provider"
    Column("leverage", Float, nullable=False),
)

symbols = Table(
    "symbols",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("contract_size", Float, nullable=False),
    Column("quote", String(8), nullable=False),
    Column("enabled", Integer, nullable=False, default=1),
)

accounts = Table(
    "accounts",
    metadata,
    Column("user_type", String(8), primary_key=True),
    Column("user_id", Integer, primary_key=True, autoincrement=False),
    Column("group_name", String(32), nullable=False),
    Column("balance_usd", Float, nullable=False),
    # Snapshots the cheap checks read; refreshed by every full margin computation.
    Column("equity_usd", Float, nullable=False),
    Column("used_margin_usd", Float, nullable=False, default=0.0),
    # Margin held for this account's queued provider orders.
    Column("reserved_cents", BigInteger, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_type", String(8), nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("symbol", String(16), nullable=False),
    Column("side", String(4), nullable=False),
    Column("volume", Float, nullable=False),
    Column("open_price", Float, nullable=False),
    Column("margin_usd", Float, nullable=False),
    Column("reserved_cents", BigInteger, nullable=False, default=0),
    Column("status", String(12), nullable=False),  # executed | queued | rejected
    Column("flow", String(12), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("replica", String(64)),
    Column("client_order_id", String(64)),
    Column("request_hash", String(64)),
    Column("response_json", Text),
    Column("estimate_total_usd", Float),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("provider_due_at", Float),
    Column("provider_outcome", String(12)),  # what the provider will answer
    Column("claimed_by", String(64)),
    Column("claim_until", Float),
    Column("finalized_at", Float),
    Column("final_outcome", String(12)),  # confirmed | rejected | timeout
    Column("release_count", Integer, nullable=False, default=0),
    Column("estimate_error_usd", Float),
    Column("overcommit_usd", Float),  # final used margin above equity at confirmation, if any
    Column("overcommit_counted", Integer, nullable=False, default=0),  # beyond the price allowance
    UniqueConstraint("user_type", "user_id", "client_order_id", name="uq_orders_client_id"),
    Index("ix_orders_user_status", "user_type", "user_id", "status"),
    Index("ix_orders_status_due", "status", "provider_due_at"),
)

flags = Table(
    "flags",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("changed_by", String(128), nullable=False),
)

flag_audit = Table(
    "flag_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("action", String(16), nullable=False),  # changed | refused
    Column("flag", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("remote", String(64)),
    Column("old_value", Text),
    Column("new_value", Text),
    Column("reason", Text),
    Column("http_status", Integer, nullable=False),
    # refusals and reads are aggregated per source and minute: how many this row stands for
    Column("attempts", Integer, nullable=False, default=1, server_default="1"),
)


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def make_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    if url.startswith("sqlite"):
        # one trip to aiosqlite's thread per statement instead of four (service/sqlite_driver.py)
        engine = create_async_engine(url, connect_args={"timeout": 30}, module=sqlite_dbapi())

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets readers proceed during a write; the busy timeout makes concurrent
            # writers (workers, replicas) wait instead of failing with "database is locked".
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn):
            # Write transactions take the write lock at BEGIN (see `writer`), so a
            # read-then-write cannot fail half-way with SQLITE_BUSY_SNAPSHOT.
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            # sent with the transaction's first statement, in its trip (service/sqlite_driver.py)
            conn.connection.dbapi_connection.begin_with_next_statement(
                "BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(_add_missing_columns)


def _add_missing_columns(sync_conn) -> None:
    """Databases made before a column existed get it (create_all only makes missing tables)."""
    from sqlalchemy import inspect

    present = {c["name"] for c in inspect(sync_conn).get_columns("flag_audit")}
    if "attempts" not in present:
        sync_conn.exec_driver_sql("ALTER TABLE flag_audit ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1")


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, but every transaction begins as a writer (BEGIN IMMEDIATE on SQLite)."""
    return engine.execution_options(sqlite_immediate=True)
