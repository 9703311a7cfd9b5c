"""POST /api/orders/instant/execute — the endpoint everything measures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.container import Services, get_services
from service.executor import IdempotencyConflict, InvalidOrder, MarginRejection
from service.responses import JSON
from service.schemas import OrderRequest, OrderResponse, Rejection

router = APIRouter(prefix="/api/orders", tags=["orders"])


def field_error(field: str, message: str, kind: str, status: int = 422) -> JSON:
    return JSON(status_code=status, content={
        "detail": [{"loc": ["body", field], "msg": message, "type": kind}]})


@router.post(
    "/instant/execute",
    response_model=OrderResponse,
    responses={409: {"model": Rejection, "description": "business rejection or idempotency conflict"},
               404: {"description": "no such account (field-level detail)"},
               422: {"description": "invalid input, with field-level detail"},
               413: {"description": "body too large"},
               400: {"description": "the body is not UTF-8 JSON"}},
)
async def execute_order(order: OrderRequest, services: Annotated[Services, Depends(get_services)]):
    try:
        result = await services.executor.execute(order)
    except MarginRejection as rejection:
        return JSON(status_code=409, content={
            "error": "insufficient_margin", "detail": rejection.detail, "flow": rejection.flow,
            "mode": rejection.mode, "stage": rejection.stage,
            "margin_usd": round(rejection.margin_usd, 2),
            "free_margin_usd": round(rejection.free_margin_usd, 2)})
    except InvalidOrder as invalid:
        return field_error(invalid.field, invalid.message, invalid.kind, invalid.status)
    except IdempotencyConflict as conflict:
        return JSON(status_code=409, content={
            "error": "idempotency_conflict", "detail": str(conflict)})
    headers = {"Idempotent-Replay": "true"} if result.replayed else None
    return JSON(result.body, headers=headers)
