"""Global search results (``/app/search?q=``): the search box in every page's header sends
here. The kernel's search service answers (the same as ``GET /api/search``: the same
permissions and record visibility inside the query, so no hit, count or snippet of a record
the user may not read), hits are grouped by type under human labels, each a link to its
record (kernel pages, or the plugin's through ``tessera_record_urls``). Works without
JavaScript; a small static script moves between results with the arrow keys."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.response import Redirect

from tessera import i18n
from tessera.errors import DomainError
from tessera.i18n import N_
from tessera.search import service as search_service
from tessera.web.links import hit_urls
from tessera.web.pages import current_principal, error_page, render

#: Hits on the page of all types, and on the page of one type (``?type=deal``).
ALL_TYPES_LIMIT = 30
ONE_TYPE_LIMIT = 100
MAX_QUERY = 300

i18n.register_labels(
    "search.type",
    {
        "party": N_("Clients"),
        "contact": N_("Contacts"),
        "activity": N_("Activities"),
        "task": N_("Tasks"),
        "note": N_("Notes"),
    },
)


def type_label(name: str) -> str:
    """A search type's heading: registered words (``search.type`` labels; plugins register
    theirs), else the plugin's declared label through the catalogues."""
    if name in i18n.labelled_codes("search.type"):
        return i18n.label("search.type", name)
    declared = search_service.types().get(name)
    return i18n.translate_message(declared.label) if declared else i18n.label("search.type", name)


@get("/app/search", include_in_schema=False)
async def search_page(
    request: Request[Any, Any, Any],
    q: str = "",
    type: str = "",
) -> Response[Any]:
    """Results for ``q`` grouped by type; ``?type=<type>`` shows more of one type."""
    kind = type.strip()
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    q = q.strip()[:MAX_QUERY]
    problem = None
    status = 200
    groups: list[dict[str, Any]] = []
    total = 0
    capped = False
    if kind and kind not in search_service.types():
        problem, status = i18n.gettext("There is no such kind of record to search."), 422
    elif q and not principal.can("search.use"):
        problem, status = i18n.gettext("You may not use search."), 403
    elif q:
        try:
            result = await search_service.search(
                principal,
                q,
                search_service.SearchOptions(
                    types=[kind] if kind else [], limit=ONE_TYPE_LIMIT if kind else ALL_TYPES_LIMIT
                ),
            )
        except DomainError as exc:
            return error_page(request, principal, exc)
        urls = await hit_urls(request.app.state.pm, result["hits"])
        total, capped = result["total"], result["total_is_lower_bound"]
        for group in result["groups"]:
            # A snippet is shown where the words matched in the text; a hit found by its title
            # shows the highlighted title only (a plugin's body may hold its internal codes).
            hits = [
                {
                    **h,
                    "href": urls.get((h["type"], h["id"])),
                    "snippet": h["snippet"] if "<mark>" in h["snippet"] else "",
                }
                for h in group["hits"]
            ]
            groups.append(
                {
                    "type": group["type"],
                    "label": type_label(group["type"]),
                    "total": group["total"],
                    "hits": hits,
                    "more": group["total"] > len(hits) and not kind,
                }
            )
    return render(
        request,
        "search.html",
        status=status,
        principal=principal,
        search_q=q,
        kind=kind,
        kind_label=type_label(kind) if kind and not problem else "",
        groups=groups,
        total=total,
        capped=capped,
        problem=problem,
    )


HANDLERS = [search_page]
