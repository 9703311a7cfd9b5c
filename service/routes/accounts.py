"""GET /api/accounts/{user_type}/{user_id} — the account as the executor sees it now."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path

from service.container import Services, get_services
from service.margin import compute_user_total_margin, equity_usd
from service.schemas import AccountView

router = APIRouter(prefix="/api/accounts", tags=["accounts"])


@router.get("/{user_type}/{user_id}", response_model=AccountView,
            responses={404: {"description": "no such account"}})
async def get_account(
    user_type: Literal["live", "demo"],
    user_id: Annotated[int, Path(ge=1, le=2_000_000_000)],
    services: Annotated[Services, Depends(get_services)],
) -> AccountView:
    account, positions = await services.store.account_view(user_type, user_id)
    if account is None:
        raise HTTPException(404, detail=f"no {user_type} account with user_id {user_id}")
    prices = services.prices.snapshot()
    breakdown = compute_user_total_margin(positions, prices, account["leverage"], strict=False,
                                          include_queued=False)
    equity = equity_usd(account["balance_usd"], positions, prices)
    reserved = account["reserved_cents"] / 100
    return AccountView(
        user_type=user_type, user_id=user_id,
        balance=round(account["balance_usd"], 2), equity=round(equity, 2),
        used_margin=round(breakdown.executed_margin, 2), reserved_margin=round(reserved, 2),
        free_margin=round(equity - breakdown.executed_margin - reserved, 2),
        open_orders=sum(p.status == "executed" for p in positions),
        queued_orders=sum(p.status == "queued" for p in positions),
    )
