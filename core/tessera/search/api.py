"""``GET /api/search``: full-text search over every entity the caller may read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import get
from litestar.params import Parameter
from msgspec import Struct

from tessera.entities.dto import to_struct
from tessera.errors import ValidationFailed
from tessera.permissions import Principal
from tessera.search import service


class SearchHitOut(Struct, kw_only=True):
    type: str
    id: int
    title: str
    #: The title with matched words in ``<mark>``; HTML-escaped otherwise.
    title_html: str
    #: Words around the best match in the document's own text, matches in ``<mark>``.
    snippet: str
    score: float
    party_id: int | None
    owner_id: int | None
    date: datetime | None


class SearchGroupOut(Struct, kw_only=True):
    type: str
    label: str
    #: Visible matches of this type (not only those on this page).
    total: int
    hits: list[SearchHitOut]


class SearchFacetsOut(Struct, kw_only=True):
    type: dict[str, int]
    owner: dict[str, int]


class SearchOut(Struct, kw_only=True):
    query: str
    total: int
    #: True when more than ``total`` documents matched (counting stops at 2,000).
    total_is_lower_bound: bool
    hits: list[SearchHitOut]
    groups: list[SearchGroupOut]
    facets: SearchFacetsOut


def _csv(values: list[str] | None) -> list[str]:
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


@get("/api/search", operation_id="search", tags=["search"])
async def search_endpoint(
    principal: Principal,
    q: Annotated[str, Parameter(description='Words (all must match); "quoted phrase"; phone; e-mail')],
    type: Annotated[
        list[str] | None, Parameter(description="Only these document types (repeat or comma-separate)")
    ] = None,
    owner_id: Annotated[list[int] | None, Parameter(description="Only documents of these owners")] = None,
    party_id: Annotated[int | None, Parameter(description="Only documents about this party")] = None,
    date_from: Annotated[datetime | None, Parameter(description="Documents dated at or after")] = None,
    date_to: Annotated[datetime | None, Parameter(description="Documents dated at or before")] = None,
    limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    offset: Annotated[int, Parameter(ge=0, le=900)] = 0,
) -> SearchOut:
    """Full-text search across parties, contacts, activities, tasks, notes and plugin documents.

    Only records the caller may read are matched (needs ``search.use`` and each type's read
    permission); hits are ranked, grouped by type, with highlighted snippets and facets by type
    and owner. Russian, Ukrainian and English words match their inflected forms.
    """
    if not q.strip():
        raise ValidationFailed.field("q", "must not be empty")
    types = _csv(type)
    unknown = set(types) - set(service.types())
    if unknown:
        raise ValidationFailed.field("type", f"unknown type(s): {', '.join(sorted(unknown))}")
    result: dict[str, Any] = await service.search(
        principal,
        q,
        service.SearchOptions(
            types=types,
            owner_ids=owner_id or [],
            date_from=date_from,
            date_to=date_to,
            party_id=party_id,
            limit=limit,
            offset=offset,
        ),
    )
    return to_struct(result, SearchOut)


HANDLERS = [search_endpoint]
