"""The competitors page (``/marketing/competitors``): competitors' products and prices by
product group, and the clients x product groups matrix with the cross-sell gaps.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get
from litestar.response import Redirect
from tessera.entities import service
from tessera.entities.tables import Party
from tessera.errors import DomainError
from tessera.web.plugin_pages import current_principal, error_page, render

from tessera_marketing import competitors


@get("/competitors")
async def competitors_page(request: Request[Any, Any, Any], after: int = 0) -> Response[Any]:
    """Competitors' products and prices, and who buys what from us and from whom."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        products = await service.list_page(competitors.PRODUCT, principal, [], limit=500)
        grid = await competitors.matrix(principal, limit=200, after=max(after, 0))
    except DomainError as exc:
        return error_page(request, principal, exc)
    names = {
        r["id"]: r["name"]
        for r in await Party.select(Party.id, Party.name).where(
            Party.id.is_in(sorted({p["competitor_id"] for p in products.items}) or [-1])
        )
    }
    groups = {g["id"]: g["name"] for g in grid["groups"]}
    return render(
        request,
        "marketing/competitors.html",
        principal=principal,
        products=products.items,
        competitor_names=names,
        group_names=groups,
        grid=grid,
    )


HANDLERS = [competitors_page]
