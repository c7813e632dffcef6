"""Saved views of the list pages (issue 15.2): a list's filters and order saved under a title,
per user, optionally shared with the user's team. The query string is checked exactly like the
list page's (``lists.check_query_string``): a view with an unknown or invalid filter is refused.

API: ``GET /api/saved-views?list_name=``, ``POST /api/saved-views``, ``DELETE
/api/saved-views/{view_id}``; pages: ``POST /app/views`` (save the current list's filters) and
``POST /app/views/{view_id}/delete``.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import Parameter
from litestar.response import Redirect

from tessera import clock, events, i18n
from tessera.audit import record as audit_record
from tessera.entities.tables import SavedView
from tessera.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from tessera.permissions import Principal
from tessera.web import lists


class SavedViewIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    list_name: Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    #: The list page's query string: ``status=current&order=name``.
    query: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    #: Share with your team (you need to be in one).
    shared: bool = False


class SavedViewOut(msgspec.Struct, kw_only=True):
    id: int
    owner_id: int
    team_id: int | None
    list_name: str
    title: str
    query: str
    created_at: datetime
    mine: bool


async def save_view(principal: Principal, body: SavedViewIn) -> dict[str, Any]:
    spec = lists.find_list(body.list_name)
    if spec is None:
        raise ValidationFailed.field("list_name", f"must be one of {', '.join(sorted(lists.available()))}")
    spec.entity.require(principal, "read")
    if not body.title.strip():
        raise ValidationFailed.field("title", "must not be empty")
    try:
        query = lists.check_query_string(spec, body.query)
    except lists.FilterErrors as exc:
        raise ValidationFailed(
            f"the view's query is refused: {exc.detail}",
            [type(e)(f"query.{e.field}", e.message) for e in exc.errors],
        ) from None
    if body.shared and principal.team_id is None:
        raise ValidationFailed.field("shared", "you are in no team to share it with")
    async with events.unit_of_work():
        rows = await SavedView.insert(
            SavedView(
                owner_id=principal.user_id,
                team_id=principal.team_id if body.shared else None,
                list_name=body.list_name,
                title=body.title.strip(),
                query=query,
                created_at=clock.now(),
            )
        ).returning(*SavedView._meta.columns)
        row = rows[0]
        await audit_record("create", "saved_view", row["id"], {"title": [None, row["title"]]})
    row["mine"] = True
    return row


async def delete_view(principal: Principal, view_id: int) -> None:
    """Delete one of my views: 404 if I do not see it, 403 if it is a colleague's shared one."""
    row = await SavedView.select().where(SavedView.id == view_id, lists.visible_views(principal)).first()
    if row is None:
        raise NotFound(f"saved_view {view_id} not found")
    if row["owner_id"] != principal.user_id:
        raise PermissionDenied("Only its owner may delete a saved view")
    async with events.unit_of_work():
        await SavedView.delete().where(SavedView.id == view_id)
        await audit_record("delete", "saved_view", view_id, {"title": [row["title"], None]})


def _out(row: dict[str, Any]) -> SavedViewOut:
    return SavedViewOut(**{f: row[f] for f in SavedViewOut.__struct_fields__})


# --------------------------------------------------------------------------- API


@get("/api/saved-views", operation_id="list_saved_views", tags=["saved-views"])
async def list_saved_views(
    principal: Principal,
    list_name: Annotated[str | None, Parameter(max_length=60, description="Only this list's views")] = None,
) -> list[SavedViewOut]:
    """Your saved list views and those your team shares."""
    return [_out(r) for r in await lists.views_for(principal, list_name)]


@post("/api/saved-views", operation_id="create_saved_view", tags=["saved-views"], status_code=201)
async def create_saved_view(principal: Principal, data: SavedViewIn) -> SavedViewOut:
    """Save a list's filters and order (its page's query string, checked like the page's: an
    unknown or invalid filter is a 422 naming it); ``shared`` shows it to your team."""
    return _out(await save_view(principal, data))


@delete(
    "/api/saved-views/{view_id:int}", operation_id="delete_saved_view", tags=["saved-views"], status_code=204
)
async def delete_saved_view(principal: Principal, view_id: int) -> None:
    """Delete one of your saved views (a colleague's shared view: 403)."""
    await delete_view(principal, view_id)


# --------------------------------------------------------------------------- pages


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@post("/app/views", include_in_schema=False, status_code=303)
async def save_view_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    """The list page's "Save view" form: the list's current query string under a title."""
    from tessera.web.pages import _require, check_csrf, render

    principal = await _require(request)
    data = await _form(request)
    check_csrf(principal, data)
    spec = lists.find_list(data.get("list_name", ""))
    if spec is None:
        return render(
            request,
            "error.html",
            status=404,
            principal=principal,
            message=i18n.gettext("There is no such list."),
        )
    try:
        body = SavedViewIn(
            list_name=spec.name,
            title=data.get("title", "")[:200],
            query=data.get("query", "")[:2000],
            shared=data.get("shared") in ("1", "on", "true"),
        )
        row = await save_view(principal, body)
    except DomainError as exc:
        message = (
            "; ".join(f"{e.field}: {i18n.translate_message(e.message)}" for e in exc.errors) or exc.detail
        )
        return await lists.list_response(
            request, spec, error=i18n.gettext("The view was not saved:") + " " + message, status=exc.status
        )
    return Redirect(spec.url + ("?" + row["query"] if row["query"] else ""), status_code=303)


@post("/app/views/{view_id:int}/delete", include_in_schema=False, status_code=303)
async def delete_view_submit(request: Request[Any, Any, Any], view_id: int) -> Response[Any]:
    from tessera.web.pages import _require, check_csrf, error_page

    principal = await _require(request)
    data = await _form(request)
    check_csrf(principal, data)
    row = await SavedView.select(SavedView.list_name).where(SavedView.id == view_id).first()
    try:
        await delete_view(principal, view_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    spec = lists.find_list(row["list_name"]) if row else None
    return Redirect(spec.url if spec else "/app", status_code=303)


API_HANDLERS = [list_saved_views, create_saved_view, delete_saved_view]
PAGE_HANDLERS = [save_view_submit, delete_view_submit]
