"""The client card (a party with its whole history, past and planned), "who else works with
this client", status history and export."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any, Literal

import pluggy
from litestar import Request, Response, get
from litestar.params import Parameter
from msgspec import Struct

from tessera import audit, clock, customfields, events, exports, i18n
from tessera.api.openapi import download
from tessera.entities import service
from tessera.entities.activities import ACTIVITY
from tessera.entities.dto import to_struct
from tessera.entities.notes import ATTACHMENT, NOTE
from tessera.entities.parties import CONTACT, PARTY, PartyOut, status_history
from tessera.entities.tables import ActivityParticipant, CrmUser, Notification
from tessera.entities.tasks import TASK
from tessera.errors import ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.plugins import call_each_async


class TimelineItem(Struct, kw_only=True):
    kind: str
    at: datetime
    title: str
    source: str = "kernel"
    id: int | None = None
    user_id: int | None = None
    status: str | None = None
    detail: str = ""


class ContactBrief(Struct, kw_only=True):
    id: int
    name: str
    position: str
    role: str
    phones: list[dict[str, Any]]
    emails: list[dict[str, Any]]


class ClientCard(Struct, kw_only=True):
    party: PartyOut
    contacts: list[ContactBrief]
    timeline: list[TimelineItem]
    open_tasks: int
    planned_activities: int


class Participant(Struct, kw_only=True):
    user_id: int
    name: str
    reasons: list[str]


def _pm(request: Request[Any, Any, Any]) -> pluggy.PluginManager:
    return request.app.state.pm  # type: ignore[no-any-return]


async def _all(
    spec: service.EntitySpec, principal: Principal, conditions: list[Any], cap: int = 2000
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while len(rows) < cap:
        page = await service.list_page(spec, principal, conditions, cursor=cursor, limit=500)
        rows.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return rows[:cap]


async def kernel_timeline(principal: Principal, party_id: int) -> list[TimelineItem]:
    items: list[TimelineItem] = []
    if principal.can("activity.read"):
        from tessera.entities.tables import Activity

        for a in await _all(ACTIVITY, principal, [Activity.party_id == party_id]):
            text = a["outcome"] or a["description"]
            if a["agreements"]:
                # Words a person reads, in the request's language (as every label of the card).
                agreed = i18n.gettext("Agreements reached")
                text = (text + f"\n{agreed}: " + a["agreements"]).strip()
            items.append(
                TimelineItem(
                    kind=f"activity.{a['type']}",
                    at=a["starts_at"],
                    title=a["subject"],
                    id=a["id"],
                    user_id=a["owner_id"],
                    status=a["status"],
                    detail=text,
                )
            )
    if principal.can("task.read"):
        from tessera.entities.tables import Task

        for t in await _all(TASK, principal, [Task.party_id == party_id]):
            items.append(
                TimelineItem(
                    kind="task",
                    at=t["completed_at"] or t["deadline"] or t["created_at"],
                    title=t["title"],
                    id=t["id"],
                    user_id=t["assignee_id"],
                    status=t["status"],
                    detail=t["result"] or t["description"],
                )
            )
    if principal.can("note.read"):
        from tessera.entities.tables import Attachment, Note

        for n in await _all(NOTE, principal, [Note.party_id == party_id]):
            items.append(
                TimelineItem(
                    kind="note",
                    at=n["created_at"],
                    title=n["body"][:120],
                    id=n["id"],
                    user_id=n["author_id"],
                    detail=n["body"],
                )
            )
        for f in await _all(ATTACHMENT, principal, [Attachment.party_id == party_id]):
            items.append(
                TimelineItem(
                    kind="attachment",
                    at=f["created_at"],
                    title=f["filename"],
                    id=f["id"],
                    user_id=f["uploaded_by_id"],
                )
            )
    for change in await status_history(party_id):
        items.append(
            TimelineItem(
                kind="party.status",
                at=change["changed_at"],
                title=f"{change['from_status'] or 'new'} -> {change['to_status']}",
                id=change["id"],
                user_id=change["changed_by"],
                status=change["to_status"],
            )
        )
    return items


async def plugin_timeline(
    pm: pluggy.PluginManager, party_id: int, principal: Principal | None = None
) -> list[TimelineItem]:
    """The plugins' items; each plugin filters them for ``principal`` (the card's reader)."""
    items: list[TimelineItem] = []
    for plugin, result in await call_each_async(
        pm, "tessera_timeline_items", party_id=party_id, principal=principal
    ):
        for raw in result or []:
            items.append(
                TimelineItem(
                    kind=str(raw["kind"]),
                    at=raw["at"],
                    title=str(raw.get("title", "")),
                    source=plugin,
                    id=raw.get("id"),
                    user_id=raw.get("user_id"),
                    status=raw.get("status"),
                    detail=str(raw.get("detail", "")),
                )
            )
    return items


@get("/{party_id:int}/card", operation_id="client_card", tags=["parties"])
async def client_card(
    request: Request[Any, Any, Any],
    principal: Principal,
    party_id: int,
    order: Annotated[
        Literal["desc", "asc"], Parameter(description="Newest first (desc) or oldest first")
    ] = "desc",
) -> ClientCard:
    """The client card: the party, its contacts and its whole history in time order — kernel
    activities (done and planned), tasks, notes, files, status changes and what plugins add."""
    return await client_card_data(_pm(request), principal, party_id, newest_first=order == "desc")


async def client_card_data(
    pm: pluggy.PluginManager, principal: Principal, party_id: int, newest_first: bool = True
) -> ClientCard:
    """The client card for the API and the web page alike (404 when the party is not visible)."""
    party = await service.get(PARTY, principal, party_id)
    await customfields.with_plugin_values(pm, "party", [party])
    from tessera.entities.tables import Contact

    contacts = await _all(CONTACT, principal, [Contact.party_id == party_id])
    timeline = await kernel_timeline(principal, party_id) + await plugin_timeline(pm, party_id, principal)
    timeline.sort(key=lambda item: (item.at, item.kind, item.id or 0), reverse=newest_first)
    now = clock.now()
    return ClientCard(
        party=to_struct(party, PartyOut),
        contacts=[to_struct(c, ContactBrief) for c in contacts],
        timeline=timeline,
        open_tasks=sum(1 for i in timeline if i.kind == "task" and i.status in ("open", "in_progress")),
        planned_activities=sum(
            1 for i in timeline if i.kind.startswith("activity.") and i.status == "planned" and i.at >= now
        ),
    )


@get("/{party_id:int}/participants", operation_id="party_participants", tags=["parties"])
async def party_participants(
    request: Request[Any, Any, Any], principal: Principal, party_id: int
) -> list[Participant]:
    """Who else works with this client: the owner, users with open tasks or planned/done
    activities on it, and users plugins report (open deals, tickets ...)."""
    return await participants_data(_pm(request), principal, party_id)


async def participants_data(
    pm: pluggy.PluginManager, principal: Principal, party_id: int
) -> list[Participant]:
    """ "Who else works with this client" for the API and the client card page alike (404 when
    the party is not visible)."""
    party = await service.get(PARTY, principal, party_id)
    from tessera.entities.tables import Activity, Task

    reasons: dict[int, set[str]] = {}

    def add(user_id: int | None, reason: str) -> None:
        if user_id is not None:
            reasons.setdefault(user_id, set()).add(reason)

    add(party["owner_id"], "owner")
    for t in await Task.select(Task.assignee_id).where(
        Task.party_id == party_id, Task.status.is_in(["open", "in_progress"])
    ):
        add(t["assignee_id"], "open task")
    # A cancelled activity is work that did not happen: it does not make someone a colleague
    # on the account.
    for a in await Activity.select(Activity.owner_id).where(
        Activity.party_id == party_id, Activity.status != "cancelled"
    ):
        add(a["owner_id"], "activity")
    for p in await ActivityParticipant.select(ActivityParticipant.user_id).where(
        ActivityParticipant.activity_id.party_id == party_id,
        ActivityParticipant.activity_id.status != "cancelled",
        ActivityParticipant.user_id.is_not_null(),
    ):
        add(p["user_id"], "activity participant")
    for plugin, ids in await call_each_async(pm, "tessera_party_participants", party_id=party_id):
        for user_id in ids or []:
            add(user_id, plugin)
    if not reasons:
        return []
    names = {
        u["id"]: u["name"]
        for u in await CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.id.is_in(list(reasons)))
    }
    return [
        Participant(user_id=uid, name=names.get(uid, "?"), reasons=sorted(r))
        for uid, r in sorted(reasons.items())
    ]


@get("/{party_id:int}/status-history", operation_id="party_status_history", tags=["parties"])
async def party_status_history(principal: Principal, party_id: int) -> list[dict[str, Any]]:
    """Lifecycle transitions of the party (potential -> current -> former) with dates."""
    await service.get(PARTY, principal, party_id)
    return await status_history(party_id)


EXPORT_COLUMNS = [
    "id",
    "name",
    "kind",
    "relations",
    "status",
    "owner_id",
    "team_id",
    "tax_id",
    "website",
    "phones",
    "emails",
    "tags",
    "created_at",
]


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@get("/export", operation_id="export_parties", tags=["parties"], opt=download("text/csv", XLSX))
async def export_parties(
    request: Request[Any, Any, Any],
    principal: Principal,
    conditions: list[Any],
    format: Annotated[
        Literal["csv", "xlsx"], Parameter(description="csv (default) or xlsx (an Excel workbook)")
    ] = "csv",
) -> Response[Any]:
    """Export the parties you may see (same filters as the list) as CSV or XLSX. Needs
    party.export; refused above the configured row limit; every export is audited and reported
    to the administrators (seed 003: a departing manager must not quietly take the base away).
    Text that a spreadsheet would run as a formula is neutralised (``tessera.exports``)."""
    principal.require("party.export")
    limit = request.app.state.settings.export_row_limit
    total = await service.count(PARTY, principal, conditions)
    if total > limit:
        # A refused attempt to take more than the limit is exactly what admins must hear of.
        await _report_export(request, principal, total, refused=True)
        raise ValidationFailed.field(
            "filters", f"{total} rows match; exports are limited to {limit}: narrow the filters"
        )
    rows = await _all(PARTY, principal, conditions, cap=limit)
    table = [
        [
            "; ".join(x["number"] for x in r[c])
            if c == "phones"
            else "; ".join(x["address"] for x in r[c])
            if c == "emails"
            else "; ".join(r[c])
            if c in ("relations", "tags")
            else r[c].isoformat()
            if isinstance(r[c], datetime)
            else ("" if r[c] is None else r[c])
            for c in EXPORT_COLUMNS
        ]
        for r in rows
    ]
    await _report_export(request, principal, len(rows), refused=False)
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    if format == "xlsx":
        return Response(
            exports.xlsx_bytes(EXPORT_COLUMNS, table, title="Parties"),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="parties-{stamp}.xlsx"'},
        )
    buffer = io.StringIO()
    writer = exports.csv_writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(table)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="parties-{stamp}.csv"'},
    )


async def _report_export(
    request: Request[Any, Any, Any], principal: Principal, rows: int, refused: bool
) -> None:
    """Audit an export (or a refused one) and tell every administrator."""
    action = "export_refused" if refused else "export"
    # Each administrator reads it in their own language (it is written now, read later).
    message = (
        N_("%(name)s tried to export clients: %(rows)s (refused: over the limit)")
        if refused
        else N_("%(name)s exported clients: %(rows)s")
    )
    async with events.unit_of_work():
        await audit.record(action, "party", None, {"rows": [None, rows]}, detail=str(request.url.query or ""))
        for admin_id, locale in (await admin_locales()).items():
            if admin_id != principal.user_id:
                await Notification.insert(
                    Notification(
                        user_id=admin_id,
                        kind="export",
                        title=i18n.gettext_for(locale, message, name=principal.name, rows=rows),
                        ref=f"audit:{action}",
                        created_at=clock.now(),
                    )
                )
        if not refused:
            await events.emit("party.exported", "party", None, {"rows": rows, "user_id": principal.user_id})


async def _admin_ids() -> list[int]:
    from tessera.entities.tables import Role, UserRole

    roles = [
        r["id"]
        for r in await Role.select(Role.id, Role.permissions)
        if "*" in (r["permissions"] or []) or "user.manage" in (r["permissions"] or [])
    ]
    if not roles:
        return []
    return sorted(
        {r["user_id"] for r in await UserRole.select(UserRole.user_id).where(UserRole.role_id.is_in(roles))}
    )


async def admin_locales() -> dict[int, str]:
    """The administrators (who may manage users) and the language each reads the UI in."""
    ids = await _admin_ids()
    if not ids:
        return {}
    rows = await CrmUser.select(CrmUser.id, CrmUser.locale).where(CrmUser.id.is_in(ids))
    return {r["id"]: r["locale"] for r in rows}


PARTY_EXTRA_HANDLERS = [client_card, party_participants, party_status_history, export_parties]
