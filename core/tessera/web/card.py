"""What the client card page shows beside the card's data (``tessera.api.cards``): who else
works with the client and on what, open tasks, files, the custom fields in words, what the
user may change there (so the page offers only forms whose submit would be accepted), and the
plugins' card widgets (hook ``tessera_card_widgets``).

Everything is read through ``tessera.entities.service`` with the signed-in user's principal,
so the card shows only what the user may see.
"""

from __future__ import annotations

from typing import Any

import pluggy

from tessera import clock, customfields, i18n
from tessera.api.cards import participants_data
from tessera.entities import service
from tessera.entities.activities import ACTIVITY
from tessera.entities.notes import ATTACHMENT, NOTE
from tessera.entities.parties import PARTY
from tessera.entities.tables import Activity, Attachment, CrmUser, Note, Task
from tessera.entities.tasks import OPEN_STATUSES, TASK, decorate
from tessera.errors import PermissionDenied
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.plugins import PluginError, call_each_tolerant, log
from tessera.web.fields import custom_fields, value_label

i18n.register_labels(
    "participant.reason",
    {
        "owner": N_("Responsible manager"),
        "open task": N_("Open task"),
        "activity": N_("Activities"),
        "activity participant": N_("Takes part in activities"),
    },
)


async def active_users() -> list[dict[str, Any]]:
    """Colleagues a record can be given to (assignee, controller, participants): the
    directory every colleague may see (``/api/users``)."""
    return list(
        await CrmUser.select(CrmUser.id, CrmUser.name, CrmUser.team_id)
        .where(CrmUser.is_active == True)  # noqa: E712
        .order_by(CrmUser.name)
    )


async def user_names(ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.id.is_in(wanted))
    return {r["id"]: r["name"] for r in rows}


def may(principal: Principal, spec: service.EntitySpec, action: str) -> bool:
    try:
        spec.require(principal, action)
    except PermissionDenied:
        return False
    return True


async def writable_ids(
    spec: service.EntitySpec, principal: Principal, table: Any, party_id: int
) -> dict[int, int | None]:
    """The party's records of ``spec`` the user may change (one query): id -> version (None
    for a table without versions), so a form can send the version it was shown."""
    if not may(principal, spec, "write"):
        return {}
    condition = service.writers(spec, principal)
    conditions = [table.party_id == party_id] + ([condition] if condition is not None else [])
    versioned = any(c._meta.name == "version" for c in table._meta.columns)
    columns = [table.id, table.version] if versioned else [table.id]
    return {r["id"]: r.get("version") for r in await table.select(*columns).where(*conditions)}


async def card_widgets(pm: pluggy.PluginManager, principal: Principal, party_id: int) -> list[dict[str, Any]]:
    """The plugins' widgets, checked: a title, rows of label/value (texts; a link only to a
    path of this site) or the plugin's own template. Rendering escapes every text. A plugin
    that fails (raises, or returns a malformed widget) gets a "could not be shown" panel and a
    log entry instead of taking the card down."""
    out: list[dict[str, Any]] = []
    results, failed = await call_each_tolerant(
        pm, "tessera_card_widgets", party_id=party_id, principal=principal
    )
    for plugin, result in results:
        try:
            out.extend(_checked_card_widgets(plugin, result))
        except PluginError:
            log.exception("Plugin %r returned a malformed card widget", plugin)
            failed.append(plugin)
    out.extend(failed_widget(plugin) for plugin in failed)
    return out


async def record_widgets(
    pm: pluggy.PluginManager, principal: Principal, kind: str, record_id: int
) -> list[dict[str, Any]]:
    """The plugins' blocks for the page of a plugin's record (hook ``tessera_record_widgets``:
    a deal, a ticket), checked and made failure-tolerant as the card's widgets are. The page
    read the record first."""
    out: list[dict[str, Any]] = []
    results, failed = await call_each_tolerant(
        pm, "tessera_record_widgets", kind=kind, record_id=record_id, principal=principal
    )
    for plugin, result in results:
        try:
            out.extend(_checked_card_widgets(plugin, result))
        except PluginError:
            log.exception("Plugin %r returned a malformed record widget", plugin)
            failed.append(plugin)
    out.extend(failed_widget(plugin) for plugin in failed)
    return out


def failed_widget(plugin: str) -> dict[str, Any]:
    """The panel shown in place of a plugin's widget that failed."""
    return {
        "plugin": plugin,
        "title": plugin,
        "rows": [],
        "template": None,
        "context": {},
        "empty": "",
        "failed": True,
    }


def _checked_card_widgets(plugin: str, result: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if result is not None and not isinstance(result, list | tuple):
        raise PluginError(f"Plugin {plugin!r}: tessera_card_widgets must return a list of dicts")
    for raw in result or []:
        if not isinstance(raw, dict) or "title" not in raw:
            raise PluginError(f"Plugin {plugin!r}: a card widget is a dict with a 'title'")
        template = raw.get("template")
        if template is not None and not str(template).startswith(f"{plugin}/"):
            raise PluginError(f"Plugin {plugin!r}: a card widget's template must be one of its own")
        rows = []
        for row in raw.get("rows") or []:
            href = str(row.get("href") or "")
            rows.append(
                {
                    "label": str(row.get("label", "")),
                    "value": "" if row.get("value") is None else str(row.get("value")),
                    # Only a path of this site: never another site, never javascript:.
                    "href": href if href.startswith("/") and not href.startswith("//") else "",
                }
            )
        out.append(
            {
                "plugin": plugin,
                "title": str(raw["title"]),
                "rows": rows,
                "template": template,
                "context": dict(raw.get("context") or {}),
                "empty": str(raw.get("empty") or ""),
            }
        )
    return out


async def card_extras(pm: pluggy.PluginManager, principal: Principal, party_id: int) -> dict[str, Any]:
    """The card page's context beyond ``client_card_data`` (the party is visible: the caller
    read the card first)."""
    now = clock.now()
    participants = await participants_data(pm, principal, party_id)
    open_tasks: list[dict[str, Any]] = []
    if may(principal, TASK, "read"):
        page = await service.list_page(
            TASK,
            principal,
            [Task.party_id == party_id, Task.status.is_in(list(OPEN_STATUSES))],
            order="deadline",
            limit=100,
        )
        open_tasks = [decorate(t) for t in page.items]
    # "On what": the open tasks each colleague holds on the client (those the user may see).
    work: dict[int, list[dict[str, Any]]] = {}
    for t in open_tasks:
        if t["assignee_id"] is not None:
            work.setdefault(t["assignee_id"], []).append(t)
    attachments: list[dict[str, Any]] = []
    if may(principal, ATTACHMENT, "read"):
        attachments = (
            await service.list_page(
                ATTACHMENT, principal, [Attachment.party_id == party_id], order="-created_at", limit=200
            )
        ).items
    schema = await customfields.effective_schema(pm, "party")
    party_fields = custom_fields(schema, read_only=True)
    names = await user_names({p.user_id for p in participants} | {t["assignee_id"] for t in open_tasks})
    may_edit = may(principal, PARTY, "write") and await service.may_change(PARTY, principal, party_id)
    return {
        "participants": [
            {"user_id": p.user_id, "name": p.name, "reasons": p.reasons, "tasks": work.get(p.user_id, [])}
            for p in participants
        ],
        "open_task_rows": open_tasks,
        "attachments": attachments,
        "party_fields": party_fields,
        "custom_label": value_label,
        "names": names,
        "may_edit_party": may_edit,
        "may_delete_party": may_edit and may(principal, PARTY, "delete"),
        "may_add_contact": may_edit,
        "may_remove_contact": may_edit and may(principal, PARTY, "delete"),
        "may_log": may(principal, ACTIVITY, "write"),
        "may_note": may(principal, NOTE, "write"),
        "may_task": may(principal, TASK, "write") and may_edit,
        "may_delete_activity": may(principal, ACTIVITY, "delete"),
        "may_delete_note": may(principal, NOTE, "delete"),
        "writable_activities": await writable_ids(ACTIVITY, principal, Activity, party_id),
        "writable_notes": await writable_ids(NOTE, principal, Note, party_id),
        "writable_attachments": await writable_ids(ATTACHMENT, principal, Attachment, party_id)
        if may(principal, ATTACHMENT, "delete")
        else {},
        "users": await active_users(),
        "widgets": await card_widgets(pm, principal, party_id),
        "now": now,
    }


__all__ = [
    "active_users",
    "card_extras",
    "card_widgets",
    "may",
    "record_widgets",
    "user_names",
    "writable_ids",
]
