"""Data access: every SQL statement the service runs, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from execbench.contract import MODES
from service.db import accounts, flag_audit, flags, groups, orders, symbols, writer
from service.margin import Position


class DuplicateClientOrderId(Exception):
    """A concurrent request with the same client_order_id committed first."""


class ReservationRefused(Exception):
    """The atomic conditional reservation found too little free margin."""


@dataclass(slots=True, frozen=True)
class AccountConfig:
    user_type: str
    user_id: int
    group_name: str
    flow: str
    leverage: float
    balance_usd: float
    equity_usd: float
    used_margin_usd: float
    reserved_usd: float


@dataclass(slots=True, frozen=True)
class PortfolioSnapshot:
    equity_usd: float
    used_margin_usd: float
    reserved_usd: float


def to_cents(usd: float) -> int:
    return math.ceil(round(usd * 100, 6))


# The statements of every order and every claim, built once with named parameters. Building a
# statement anew per call (operators, coercions, then its cache key, to find the compiled form
# SQLAlchemy already has) cost more CPU than running it; the SQL sent is the same.
def _account_of_user(prefix: str = ""):
    # an UPDATE of accounts may not name a parameter after one of its columns: prefix "b_" there
    return (accounts.c.user_type == bindparam(prefix + "user_type"),
            accounts.c.user_id == bindparam(prefix + "user_id"))


_FETCH_CONFIG = (select(accounts, groups.c.flow, groups.c.leverage)
                 .join(groups, groups.c.name == accounts.c.group_name).where(*_account_of_user()))
_FETCH_ACCOUNT = select(accounts).where(*_account_of_user())
_FETCH_GROUP_OF = (select(groups.c.name, groups.c.flow, groups.c.leverage)
                   .join(accounts, groups.c.name == accounts.c.group_name).where(*_account_of_user()))
_SYMBOL_ENABLED = select(symbols.c.enabled).where(symbols.c.name == bindparam("symbol"))
_FETCH_PORTFOLIO = (select(accounts.c.equity_usd, accounts.c.used_margin_usd, accounts.c.reserved_cents)
                    .where(*_account_of_user()))
_USER_ORDERS = select(
    orders.c.symbol, orders.c.side, orders.c.volume, orders.c.open_price, orders.c.status
).where(
    orders.c.user_type == bindparam("user_type"),
    orders.c.user_id == bindparam("user_id"),
    orders.c.status.in_(("executed", "queued")),
)
_FIND_BY_CLIENT_ID = select(orders.c.id, orders.c.request_hash, orders.c.response_json).where(
    orders.c.user_type == bindparam("user_type"),
    orders.c.user_id == bindparam("user_id"),
    orders.c.client_order_id == bindparam("client_order_id"),
)
_INSERT_ORDER = insert(orders)
_MARK_SENT = (update(orders).where(orders.c.id == bindparam("order_id"), orders.c.status == "queued")
              .values(sent_at=bindparam("sent", type_=Float), provider_due_at=bindparam("due", type_=Float),
                      provider_outcome=bindparam("outcome", type_=String)))
_GET_FLAG = select(flags).where(flags.c.name == bindparam("name"))
_POSITIONS_AT = select(  # a user's orders as they stood at :at (Store.positions_at)
    orders.c.symbol, orders.c.side, orders.c.volume, orders.c.open_price, orders.c.status
).where(
    orders.c.user_type == bindparam("user_type"),
    orders.c.user_id == bindparam("user_id"),
    orders.c.created_at <= bindparam("at"),
    or_(orders.c.status.in_(("executed", "queued")), orders.c.finalized_at > bindparam("at_again")),
)
_QUEUE_DEPTH = select(
    func.count(),
    func.coalesce(func.sum(case((or_(orders.c.provider_due_at.is_(None),
                                     orders.c.provider_due_at > bindparam("now", type_=Float)), 1), else_=0)), 0),
    func.min(orders.c.created_at),
).where(orders.c.status == "queued")
_REFRESH_ACCOUNT = (update(accounts).where(*_account_of_user("b_"))
                    .values(used_margin_usd=bindparam("used"), equity_usd=bindparam("equity"),
                            updated_at=bindparam("at")))
_LOCK_ACCOUNT = select(accounts.c.user_id).where(*_account_of_user()).with_for_update()
_QUEUED = orders.c.id == bindparam("order_id"), orders.c.status == "queued"
_QUEUED_ORDER = select(orders).where(*_QUEUED)
_FILL = (update(orders).where(*_QUEUED)
         .values(status="executed", open_price=bindparam("price"), final_outcome="confirmed",
                 finalized_at=bindparam("at"), release_count=orders.c.release_count + 1,
                 claimed_by=bindparam("worker")))
_CONFIRM_FIGURES = (update(orders).where(orders.c.id == bindparam("order_id"))
                    .values(estimate_error_usd=bindparam("error"), overcommit_usd=bindparam("over"),
                            overcommit_counted=bindparam("counted")))
_POST_ACCOUNT = (update(accounts).where(*_account_of_user("b_"))
                 .values(reserved_cents=accounts.c.reserved_cents - bindparam("cents"),
                         used_margin_usd=bindparam("used"), equity_usd=bindparam("equity"),
                         updated_at=bindparam("at")))
_RELEASE_ORDER_OF = (select(orders.c.user_type, orders.c.user_id, orders.c.reserved_cents, orders.c.mode)
                     .where(*_QUEUED))
_REJECT = (update(orders).where(*_QUEUED)
           .values(status="rejected", final_outcome=bindparam("outcome"), finalized_at=bindparam("at"),
                   release_count=orders.c.release_count + 1, claimed_by=bindparam("worker")))
_VOID_HOLD = (update(accounts).where(*_account_of_user("b_"))
              .values(reserved_cents=accounts.c.reserved_cents - bindparam("cents"), updated_at=bindparam("at")))


@lru_cache
def _hold_statement(limited: bool, with_equity: bool):
    """The hold of a queued order's margin (Store.persist_queued): conditional or not."""
    values = {"reserved_cents": accounts.c.reserved_cents + bindparam("cents", type_=BigInteger),
              "updated_at": bindparam("at")}
    if with_equity:
        values["equity_usd"] = bindparam("equity")
    statement = update(accounts).where(*_account_of_user("b_")).values(**values)
    if limited:
        statement = statement.where(
            accounts.c.used_margin_usd * 100 + accounts.c.reserved_cents + bindparam("cents_check", type_=Integer)
            <= bindparam("limit_x100"))
    return statement


@lru_cache
def _claim_statement(limit: int):
    """Claim queued orders whose answer is due by :now, or never sent by :unsent_before."""
    now = bindparam("now", type_=Float)
    due = and_(
        orders.c.status == "queued",
        or_(
            orders.c.provider_due_at <= now,
            and_(orders.c.provider_due_at.is_(None), orders.c.created_at <= bindparam("unsent_before")),
        ),
        or_(orders.c.claim_until.is_(None), orders.c.claim_until < bindparam("now_lease", type_=Float)),
    )
    candidates = select(orders.c.id).where(due).order_by(orders.c.created_at).limit(limit)
    return (
        update(orders)
        .where(orders.c.id.in_(candidates.scalar_subquery()), due)
        .values(claimed_by=bindparam("worker", type_=String), claim_until=bindparam("until", type_=Float))
        .returning(
            orders.c.id, orders.c.user_type, orders.c.user_id, orders.c.mode,
            orders.c.provider_outcome, orders.c.provider_due_at, orders.c.estimate_total_usd,
            orders.c.sent_at,
        )
    )


class Store:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.write_engine = writer(engine)

    # --- executor reads -------------------------------------------------------------
    async def fetch_config(self, user_type: str, user_id: int) -> AccountConfig | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_FETCH_CONFIG, {"user_type": user_type, "user_id": user_id})
                   ).mappings().first()
        if row is None:
            return None
        return AccountConfig(
            user_type=row["user_type"],
            user_id=row["user_id"],
            group_name=row["group_name"],
            flow=row["flow"],
            leverage=row["leverage"],
            balance_usd=row["balance_usd"],
            equity_usd=row["equity_usd"],
            used_margin_usd=row["used_margin_usd"],
            reserved_usd=row["reserved_cents"] / 100,
        )

    # The config fetch as the seed's three reads (user, group, symbol), each independent of the
    # others' answers so that they can run concurrently (the `parallel_config` switch).
    async def fetch_account(self, user_type: str, user_id: int):
        async with self.engine.connect() as conn:
            return (await conn.execute(_FETCH_ACCOUNT, {"user_type": user_type, "user_id": user_id})
                    ).mappings().first()

    async def fetch_group_of(self, user_type: str, user_id: int):
        """The account's group (flow, leverage), found through the account in the same query."""
        async with self.engine.connect() as conn:
            return (await conn.execute(_FETCH_GROUP_OF, {"user_type": user_type, "user_id": user_id})
                    ).mappings().first()

    @staticmethod
    def account_config(account, group) -> AccountConfig | None:
        if account is None or group is None:
            return None
        return AccountConfig(
            user_type=account["user_type"], user_id=account["user_id"], group_name=group["name"],
            flow=group["flow"], leverage=group["leverage"], balance_usd=account["balance_usd"],
            equity_usd=account["equity_usd"], used_margin_usd=account["used_margin_usd"],
            reserved_usd=account["reserved_cents"] / 100)

    async def symbol_enabled(self, symbol: str) -> bool:
        async with self.engine.connect() as conn:
            value = await conn.scalar(_SYMBOL_ENABLED, {"symbol": symbol})
        return bool(value)

    async def fetch_portfolio(self, user_type: str, user_id: int) -> PortfolioSnapshot:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_FETCH_PORTFOLIO, {"user_type": user_type, "user_id": user_id})).one()
        return PortfolioSnapshot(row.equity_usd, row.used_margin_usd, row.reserved_cents / 100)

    async def fetch_user_orders(
        self, user_type: str, user_id: int, conn: AsyncConnection | None = None
    ) -> list[Position]:
        key = {"user_type": user_type, "user_id": user_id}
        if conn is not None:
            rows = (await conn.execute(_USER_ORDERS, key)).all()
        else:
            async with self.engine.connect() as own:
                rows = (await own.execute(_USER_ORDERS, key)).all()
        return [Position(r.symbol, r.side, r.volume, r.open_price, r.status) for r in rows]

    async def find_by_client_id(self, user_type: str, user_id: int, client_order_id: str):
        async with self.engine.connect() as conn:
            return (await conn.execute(_FIND_BY_CLIENT_ID, {
                "user_type": user_type, "user_id": user_id, "client_order_id": client_order_id})).first()

    # --- executor writes ------------------------------------------------------------
    async def persist_executed(self, order: dict, used_margin_usd: float, equity_usd: float,
                               conn: AsyncConnection | None = None) -> None:
        """Local flow: the order is filled; the account's margin snapshot is refreshed.

        The account row first, then the order: the one lock order of every write path (see
        `_lock_account`)."""
        try:
            async with self._transaction(conn) as tx:
                await tx.execute(_REFRESH_ACCOUNT, {
                    "b_user_type": order["user_type"], "b_user_id": order["user_id"], "used": used_margin_usd,
                    "equity": equity_usd, "at": order["created_at"]})
                await tx.execute(_INSERT_ORDER, order)
        except IntegrityError as exc:
            raise DuplicateClientOrderId from exc

    async def persist_queued(
        self, order: dict, *, reserve_limit_usd: float | None, equity_usd: float | None = None,
        conn: AsyncConnection | None = None,
    ) -> None:
        """Provider flow: the order is queued and its margin held until the provider answers.

        With ``reserve_limit_usd`` the hold is one conditional UPDATE — it succeeds only if
        used + reserved + this order stays within the limit — so concurrent orders cannot
        over-commit without any lock. Both safe modes hold this way (`off` after its full
        computation, with the equity it computed; `skip_reserve` instead of it), so any mix of
        the two, in one process or across replicas within the flag's TTL, keeps
        used + held <= equity: the check and the hold are one statement on the account row.
        Without a limit (`skip` only) the hold is unconditional: the seed's Step 1, the risk
        this tool measures.
        """
        params = {"b_user_type": order["user_type"], "b_user_id": order["user_id"],
                  "cents": order["reserved_cents"], "at": order["created_at"]}
        if equity_usd is not None:
            params["equity"] = equity_usd
        if reserve_limit_usd is not None:
            params["cents_check"] = order["reserved_cents"]
            params["limit_x100"] = reserve_limit_usd * 100
        statement = _hold_statement(reserve_limit_usd is not None, equity_usd is not None)
        try:
            async with self._transaction(conn) as tx:
                result = await tx.execute(statement, params)
                if result.rowcount != 1:
                    raise ReservationRefused
                await tx.execute(_INSERT_ORDER, order)
        except IntegrityError as exc:
            raise DuplicateClientOrderId from exc

    async def mark_sent(self, order_id: str, sent_at: float, due_at: float, outcome: str) -> None:
        async with self.write_engine.begin() as conn:
            await conn.execute(_MARK_SENT, {"order_id": order_id, "sent": sent_at, "due": due_at,
                                            "outcome": outcome})

    # --- provider workers -----------------------------------------------------------
    async def claim_due(self, worker: str, now: float, lease_s: float, limit: int, unsent_before: float):
        """Claim queued orders whose provider answer is due (or that were never sent)."""
        async with self.write_engine.begin() as conn:
            return (await conn.execute(_claim_statement(limit), {
                "now": now, "now_lease": now, "unsent_before": unsent_before, "worker": worker,
                "until": now + lease_s,
            })).all()

    async def positions_at(self, conn: AsyncConnection, user_type: str, user_id: int,
                           at: float) -> list[Position]:
        """The user's orders as they stood at time `at`: created by then and not yet rejected."""
        rows = (await conn.execute(_POSITIONS_AT, {"user_type": user_type, "user_id": user_id, "at": at,
                                                   "at_again": at})).all()
        return [Position(r.symbol, r.side, r.volume, r.open_price, "queued") for r in rows]

    async def confirm(self, order_id: str, user_type: str, user_id: int, worker: str, now: float,
                      price_of, compute, truth_at=None, allowance_pct: float = 0.0,
                      conn: AsyncConnection | None = None) -> dict | None:
        """Fill a queued order and recompute the account's final margins, in one transaction.

        Returns None when the order is no longer queued (a duplicate or late answer).
        ``compute(positions) -> (executed_margin, total_with_queued, equity)`` at current prices;
        ``truth_at(positions, t) -> total margin with queued`` at the prices of time t: the value
        the executor's estimate stood for when it accepted the order, so the estimate error
        measures the executor's view, not what happened after.
        """
        async with self._transaction(conn) as tx:
            await self._lock_account(tx, user_type, user_id)
            order = (await tx.execute(_QUEUED_ORDER, {"order_id": order_id})).mappings().first()
            if order is None:
                return None
            result = await tx.execute(_FILL, {"order_id": order_id, "price": price_of(order["symbol"]),
                                              "at": now, "worker": worker})
            if result.rowcount != 1:
                return None
            positions = await self.fetch_user_orders(user_type, user_id, tx)
            executed_margin, total_with_queued, equity = compute(positions)
            if truth_at is not None:
                accepted_at = order["created_at"]
                then = await self.positions_at(tx, user_type, user_id, accepted_at)
                total_with_queued = truth_at(then, accepted_at)
            estimate_error = total_with_queued - (order["estimate_total_usd"] or 0.0)
            overcommit = executed_margin - equity
            overcommit_usd = overcommit if overcommit > 0.005 else 0.0
            counted = overcommit_usd > max(equity, 0.0) * allowance_pct / 100
            await tx.execute(_CONFIRM_FIGURES, {"order_id": order_id, "error": estimate_error,
                                                "over": overcommit_usd, "counted": int(counted)})
            await tx.execute(_POST_ACCOUNT, {"b_user_type": user_type, "b_user_id": user_id,
                                             "cents": order["reserved_cents"], "used": executed_margin,
                                             "equity": equity, "at": now})
        return {"mode": order["mode"], "estimate_error_usd": estimate_error, "overcommit_usd": overcommit_usd,
                "overcommit_counted": counted}

    async def release(self, order_id: str, outcome: str, worker: str, now: float) -> dict | None:
        """Reject a queued order and release its held margin — exactly once."""
        async with self.write_engine.begin() as conn:
            order = (await conn.execute(_RELEASE_ORDER_OF, {"order_id": order_id})).first()
            if order is None:
                return None
            await self._lock_account(conn, order.user_type, order.user_id)
            result = await conn.execute(_REJECT, {"order_id": order_id, "outcome": outcome, "at": now,
                                                  "worker": worker})
            if result.rowcount != 1:
                return None
            await conn.execute(_VOID_HOLD, {"b_user_type": order.user_type, "b_user_id": order.user_id,
                                            "cents": order.reserved_cents, "at": now})
        return {"mode": order.mode}

    async def reschedule(self, order_id: str, due_at: float, outcome: str) -> None:
        """Replace the provider's planned answer (an outage swallowed it) and drop the claim."""
        async with self.write_engine.begin() as conn:
            await conn.execute(
                update(orders).where(orders.c.id == order_id, orders.c.status == "queued")
                .values(provider_due_at=due_at, provider_outcome=outcome, claimed_by=None, claim_until=None))

    async def queue_depth(self, now: float) -> tuple[int, int, float]:
        """(queued orders, those still legitimately waiting on the provider, oldest one's age in s)."""
        async with self.engine.connect() as conn:
            total, waiting, oldest = (await conn.execute(_QUEUE_DEPTH, {"now": now})).one()
        return int(total), int(waiting), (max(0.0, now - oldest) if oldest is not None else 0.0)

    # --- flags and audit ------------------------------------------------------------
    async def get_flag(self, name: str):
        async with self.engine.connect() as conn:
            return (await conn.execute(_GET_FLAG, {"name": name})).mappings().first()

    async def ensure_flag(self, name: str, value: str, now: float, actor: str) -> None:
        async with self.write_engine.begin() as conn:
            exists = await conn.scalar(select(flags.c.name).where(flags.c.name == name))
            if exists is None:
                await conn.execute(insert(flags).values(
                    name=name, value=value, version=1, changed_at=now, changed_by=actor))

    async def set_flag(self, name: str, value: str, *, now: float, actor: str, reason: str,
                       remote: str | None) -> tuple[str | None, dict]:
        """Change a flag and write its audit entry in one transaction; returns (old, new row).

        The flag row is locked first (FOR UPDATE; SQLite's BEGIN IMMEDIATE already serializes),
        so concurrent changes queue and each records the value it really replaced."""
        async with self.write_engine.begin() as conn:
            old = (await conn.execute(select(flags).where(flags.c.name == name).with_for_update())
                   ).mappings().first()
            if old is None:
                await conn.execute(insert(flags).values(
                    name=name, value=value, version=1, changed_at=now, changed_by=actor))
            else:
                await conn.execute(update(flags).where(flags.c.name == name).values(
                    value=value, version=flags.c.version + 1, changed_at=now, changed_by=actor))
            await conn.execute(insert(flag_audit).values(
                ts=now, action="changed", flag=name, actor=actor, remote=remote,
                old_value=old["value"] if old else None, new_value=value, reason=reason,
                http_status=200, attempts=1))
            new = (await conn.execute(select(flags).where(flags.c.name == name))).mappings().one()
        return (old["value"] if old else None), dict(new)

    async def audit_note(self, *, action: str, flag: str, now: float, actor: str, remote: str | None,
                         requested: str | None, reason: str | None, http_status: int,
                         attempts: int = 1) -> int:
        """One aggregated audit row (a refusal or a read); returns its id (service/audit.py)."""
        async with self.write_engine.begin() as conn:
            result = await conn.execute(insert(flag_audit).values(
                ts=now, action=action, flag=flag, actor=actor, remote=remote, old_value=None,
                new_value=requested, reason=reason, http_status=http_status, attempts=attempts
            ).returning(flag_audit.c.id))
            return int(result.scalar_one())

    async def audit_add_attempts(self, row_id: int, count: int) -> None:
        async with self.write_engine.begin() as conn:
            await conn.execute(update(flag_audit).where(flag_audit.c.id == row_id)
                               .values(attempts=flag_audit.c.attempts + count))

    async def audit_entries(self, limit: int = 100, before_id: int | None = None,
                            action: str | None = None) -> list[dict]:
        """Newest first, `limit` at a time; `before_id` pages back, `action` filters (so a
        flood of refusals cannot push the changes out of view)."""
        query = select(flag_audit).order_by(flag_audit.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(flag_audit.c.id < before_id)
        if action is not None:
            query = query.where(flag_audit.c.action == action)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings()]

    # --- reporting ------------------------------------------------------------------
    async def account_view(self, user_type: str, user_id: int):
        async with self.engine.connect() as conn:
            account = (await conn.execute(select(accounts).where(
                accounts.c.user_type == user_type, accounts.c.user_id == user_id))).mappings().first()
            if account is None:
                return None, []
            positions = await self.fetch_user_orders(user_type, user_id, conn)
            leverage = await conn.scalar(select(groups.c.leverage).where(groups.c.name == account["group_name"]))
        return {**account, "leverage": leverage}, positions

    async def ledger(self, *, by_mode_detail: bool = True) -> dict:
        """The reconciliation. Without `by_mode_detail` only the totals (three aggregate
        statements, no rows fetched): what a sampler polling every second may cost the service
        it measures. The detail
        (every estimate error fetched, the exposure window) costs ~0.16 s at 40,000 orders."""
        by_mode = (
            select(
                orders.c.mode,
                func.count().filter(orders.c.overcommit_counted == 1),
                func.coalesce(func.max(orders.c.overcommit_usd), 0.0),
                func.count().filter(orders.c.overcommit_usd > 0, orders.c.overcommit_counted == 0),
                func.count().filter(orders.c.flow == "provider"),
                func.coalesce(func.max(func.abs(orders.c.estimate_error_usd)), 0.0),
                func.coalesce(func.avg(orders.c.estimate_error_usd), 0.0),
            )
            .group_by(orders.c.mode)
        )
        async with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # one snapshot for every statement below: under READ COMMITTED a confirmation
                # landing between them shows a residual that is not there (SQLite's read
                # transaction is one snapshot already)
                await conn.execution_options(isolation_level="REPEATABLE READ")
            total, nonterminal, releases, doubles, held_cents = (await conn.execute(select(
                func.count(),
                func.count().filter(orders.c.status == "queued"),
                func.count().filter(orders.c.final_outcome.in_(("rejected", "timeout"))),
                func.count().filter(orders.c.release_count > 1),
                func.coalesce(func.sum(case((orders.c.status == "queued", orders.c.reserved_cents), else_=0)), 0),
            ))).one()
            account_cents = await conn.scalar(select(func.coalesce(func.sum(accounts.c.reserved_cents), 0)))
            totals = {"orders_total": int(total), "orders_nonterminal": int(nonterminal),
                      "reserved_vs_open_residual_usd": round((int(account_cents) - int(held_cents)) / 100, 2),
                      "releases_total": int(releases), "double_releases": int(doubles)}
            if not by_mode_detail:
                overcommits = dict((await conn.execute(
                    select(orders.c.mode, func.count()).where(orders.c.overcommit_counted == 1)
                    .group_by(orders.c.mode))).all())
                return {**totals, "overcommits": {m: int(overcommits.get(m, 0)) for m in MODES}}
            modes = (await conn.execute(by_mode)).all()
            errors = (await conn.execute(select(orders.c.mode, orders.c.estimate_error_usd)
                                         .where(orders.c.estimate_error_usd.is_not(None)))).all()
            exposed = dict((await conn.execute(self._accepted_while_queued())).all())
            per_account = (await conn.execute(
                select(orders.c.mode, orders.c.user_type, orders.c.user_id, func.count(),
                       func.count().filter(orders.c.overcommit_counted == 1))
                .where(orders.c.flow == "provider")
                .group_by(orders.c.mode, orders.c.user_type, orders.c.user_id))).all()
        per_mode = {m: {"overcommits": 0, "max_overcommit_usd": 0.0, "overcommits_within_allowance": 0,
                        "provider_orders": 0, "accepted_while_queued": 0,
                        "max_abs_estimate_error_usd": 0.0, "mean_estimate_error_usd": 0.0}
                    for m in MODES}
        by_mode_errors: dict[str, list[float]] = {}
        for mode, error in errors:
            by_mode_errors.setdefault(mode, []).append(abs(error))
        for mode, count, max_usd, within, provider, max_err, mean_err in modes:
            if mode not in per_mode:
                continue  # seeded positions
            per_mode[mode] = {"overcommits": int(count), "max_overcommit_usd": round(float(max_usd), 2),
                              "overcommits_within_allowance": int(within),
                              "provider_orders": int(provider), "accepted_while_queued": 0,
                              "max_abs_estimate_error_usd": round(float(max_err), 2),
                              "mean_estimate_error_usd": round(float(mean_err), 2)}
        for mode, count in exposed.items():
            if mode in per_mode:
                per_mode[mode]["accepted_while_queued"] = int(count)
        # per mode, how provider orders and over-commits fall on accounts, as [orders,
        # over-commits, accounts] triples: a burst of one account over-commits together, so the
        # analysis resamples accounts, not orders, for the rate's interval
        clusters: dict[str, dict[tuple[int, int], int]] = {}
        for mode, _type, _id, n, k in per_account:
            c = clusters.setdefault(mode, {})
            c[(int(n), int(k))] = c.get((int(n), int(k)), 0) + 1
        for mode, c in clusters.items():
            if mode in per_mode:
                per_mode[mode]["accounts"] = [[n, k, m] for (n, k), m in sorted(c.items())]
        for mode, values in by_mode_errors.items():
            if mode in per_mode:
                q = np.quantile(np.asarray(values), [0.5, 0.9, 0.95, 0.99])
                per_mode[mode]["abs_estimate_error_quantiles_usd"] = {
                    "count": len(values), **{k: round(float(v), 2) for k, v in zip(("p50", "p90", "p95", "p99"), q)}}
        return {**totals, "overcommits": {m: v["overcommits"] for m, v in per_mode.items()},
                "by_mode": per_mode}

    @staticmethod
    def _accepted_while_queued():
        """Per mode, provider orders accepted while another order of the same account was
        queued at the provider: the situation in which `skip`'s estimate (used margin + this
        order) misses whole orders' margin, so the count says how hard a run exercised skip's
        over-commit risk. (Its smaller errors, tens of USD, come from prices moving since the
        account's used margin was last recomputed; those stay within the price allowance.)
        A sibling counts when it went through the provider queue and was created first and
        still unanswered when this order was accepted; seeded positions are finalized at their
        creation, so they never count. Orders created in the same instant (equal float
        timestamps) are ordered by the database: one of the pair may count the other.

        One pass with a window function (the latest answer time among the account's earlier
        provider orders, a queued one counting as never answered), not a self-join: the ledger
        is sampled every second during a run, and the join cost 3.4 s at 40,000 orders."""
        went_to_provider = and_(orders.c.flow == "provider",
                                or_(orders.c.status == "queued", orders.c.final_outcome.is_not(None)))
        busy_until = func.max(
            case((went_to_provider, func.coalesce(orders.c.finalized_at, 1e18)), else_=None)
        ).over(partition_by=(orders.c.user_type, orders.c.user_id), order_by=orders.c.created_at,
               rows=(None, -1))
        timeline = select(orders.c.mode, orders.c.flow, orders.c.provider_due_at, orders.c.created_at,
                          busy_until.label("busy_until")).subquery()
        return (select(timeline.c.mode, func.count())
                .where(timeline.c.flow == "provider", timeline.c.provider_due_at.is_not(None),
                       timeline.c.busy_until > timeline.c.created_at)
                .group_by(timeline.c.mode))

    @asynccontextmanager
    async def _transaction(self, conn: AsyncConnection | None):
        """The caller's transaction (the one holding the user lock), else a new write one. In
        the caller's, a failure rolls back to a savepoint: the caller's lock stays held and
        its transaction usable, as a failed transaction of our own would have left it."""
        if conn is None:
            async with self.write_engine.begin() as own:
                yield own
            return
        async with conn.begin_nested():
            yield conn

    @staticmethod
    async def _lock_account(conn: AsyncConnection, user_type: str, user_id: int) -> None:
        """Take the account row's lock before touching any of its orders.

        Every write path locks in one order: (per-user lock,) account row, then order rows.
        The executor holds the account row when it inserts an order; a worker that locked an
        order row first and then waited for the account deadlocked against it on PostgreSQL
        (an insert with the same client_order_id waits for the locked order's index entry).
        SQLite's BEGIN IMMEDIATE already serializes writers (FOR UPDATE renders nothing)."""
        await conn.execute(_LOCK_ACCOUNT, {"user_type": user_type, "user_id": user_id})
