"""The churn page (``/marketing/churn``): per acquisition channel, the clients it brought, those
lost and why (the return report's "why do clients from this channel leave").

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get
from litestar.response import Redirect
from tessera.errors import DomainError
from tessera.web.plugin_pages import current_principal, error_page, render

from tessera_marketing import churn


@get("/churn")
async def churn_page(request: Request[Any, Any, Any], months: int = 6) -> Response[Any]:
    """Churn of clients per acquisition channel, over ``months`` months without business."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    months = min(max(months, 1), 60)
    try:
        rows = await churn.churn(principal, months)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return render(request, "marketing/churn.html", principal=principal, rows=rows, months=months)


HANDLERS = [churn_page]
