"""Contact-cadence norms (seed 000: "control that managers keep the agreed frequency of contacts
with their clients, by contact type").

A rule says: every party with lifecycle status ``party_status`` (and, when set, custom field
``sales_category`` equal to ``category``, and the ABC class ``client_class``: the custom field
``abc_class`` a classifying plugin such as marketing computes) gets a done activity of one of
``activity_types`` at least every ``every_days`` days. The ``sales.cadence`` job evaluates
every active rule, replaces its flags (one per party in scope) and notifies each manager once a
day about newly overdue clients; the compliance report reads the flags.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from tessera import clock, customfields, db
from tessera.entities import service
from tessera.entities.tables import Activity, Notification, Party
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_sales.tables import CadenceFlag, CadenceRule

ACTIVITY_TYPES = {"call", "meeting", "email", "letter", "seminar", "mailing", "claim", "note"}


def check_rule(values: dict[str, Any]) -> dict[str, Any]:
    types = values.get("activity_types") or []
    unknown = sorted(set(types) - ACTIVITY_TYPES)
    if not types or unknown:
        raise ValidationFailed.field(
            "activity_types",
            f"give one or more of {', '.join(sorted(ACTIVITY_TYPES))}"
            + (f"; unknown: {unknown}" if unknown else ""),
        )
    if not 1 <= int(values.get("every_days", 0)) <= 3650:
        raise ValidationFailed.field("every_days", "must be between 1 and 3650")
    if values.get("party_status", "current") not in ("potential", "current", "former"):
        raise ValidationFailed.field("party_status", "must be potential, current or former")
    if values.get("client_class") and "abc_class" not in customfields.read_only_fields(
        service.plugin_manager(), "party"
    ):
        raise ValidationFailed.field("client_class", "no enabled plugin classifies clients (ABC)")
    return values


async def evaluate(now: dt.datetime | None = None) -> dict[str, int]:
    """Recompute every active rule's flags; notify managers about clients that became overdue.
    Idempotent: running twice gives the same flags and no second notification."""
    now = now or clock.now()
    rules = await CadenceRule.select().where(CadenceRule.active == True).output(load_json=True)  # noqa: E712
    checked = overdue = notified = 0
    for rule in rules:
        parties = (
            await Party.select(
                Party.id, Party.name, Party.owner_id, Party.custom, Party.status_changed_at, Party.created_at
            )
            .where(Party.status == rule["party_status"])
            .output(load_json=True)
        )
        if rule["category"]:
            parties = [
                p for p in parties if str((p["custom"] or {}).get("sales_category", "")) == rule["category"]
            ]
        if rule.get("client_class"):
            # The class is a read-only custom field kept by its plugin (not in the party row).
            await customfields.with_plugin_values(service.plugin_manager(), "party", parties)
            parties = [p for p in parties if (p["custom"] or {}).get("abc_class") == rule["client_class"]]
        ids = [p["id"] for p in parties]
        last: dict[int, tuple[dt.datetime, str]] = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            rows = await Activity.select(Activity.party_id, Activity.type, Activity.starts_at).where(
                Activity.party_id.is_in(part),
                Activity.status == "done",
                Activity.type.is_in(list(rule["activity_types"])),
                Activity.starts_at <= now,
            )
            for r in rows:
                seen = last.get(r["party_id"])
                if seen is None or r["starts_at"] > seen[0]:
                    last[r["party_id"]] = (r["starts_at"], r["type"])
        previous = {
            r["party_id"]: r["overdue"]
            for r in await CadenceFlag.select(CadenceFlag.party_id, CadenceFlag.overdue).where(
                CadenceFlag.rule_id == rule["id"]
            )
        }
        flags = []
        newly: dict[int, list[str]] = defaultdict(list)
        period = dt.timedelta(days=rule["every_days"])
        for p in parties:
            contact = last.get(p["id"])
            # Never contacted: the clock starts when the party entered the status.
            since = contact[0] if contact else (p["status_changed_at"] or p["created_at"])
            due = since + period
            is_overdue = due < now
            flags.append(
                CadenceFlag(
                    rule_id=rule["id"],
                    party_id=p["id"],
                    owner_id=p["owner_id"],
                    last_contact_at=contact[0] if contact else None,
                    last_contact_type=contact[1] if contact else "",
                    due_at=due,
                    overdue=is_overdue,
                    checked_at=now,
                )
            )
            checked += 1
            if is_overdue:
                overdue += 1
                if not previous.get(p["id"]) and p["owner_id"] is not None:
                    newly[p["owner_id"]].append(p["name"])
        async with db.transaction():
            await CadenceFlag.delete().where(CadenceFlag.rule_id == rule["id"])
            for chunk in range(0, len(flags), 500):
                await CadenceFlag.insert(*flags[chunk : chunk + 500])
            for owner, names in newly.items():
                shown = ", ".join(names[:10]) + (f" (+{len(names) - 10})" if len(names) > 10 else "")
                await Notification.insert(
                    Notification(
                        user_id=owner,
                        kind="sales.cadence_overdue",
                        title=f"{rule['name']}: {len(names)} client(s) overdue for contact"[:500],
                        body=shown,
                        ref=f"sales_cadence_rule:{rule['id']}",
                        created_at=now,
                    )
                )
                notified += 1
    return {"rules": len(rules), "checked": checked, "overdue": overdue, "notified": notified}


async def compliance(principal: Principal, rule_id: int | None = None) -> list[dict[str, Any]]:
    """Per rule and manager: clients in scope, compliant, overdue, share compliant (last run)."""
    principal.require("sales.deal.read")
    conditions: list[Any] = []
    vis = principal.owner_where(CadenceFlag.owner_id)
    if vis is not None:
        conditions.append(vis)
    if rule_id is not None:
        conditions.append(CadenceFlag.rule_id == rule_id)
    query = CadenceFlag.select(CadenceFlag.rule_id, CadenceFlag.owner_id, CadenceFlag.overdue)
    rows = await (query.where(*conditions) if conditions else query)
    rules = {r["id"]: r for r in await CadenceRule.select().output(load_json=True)}
    cells: dict[tuple[int, int | None], dict[str, Any]] = {}
    for r in rows:
        cell = cells.setdefault(
            (r["rule_id"], r["owner_id"]),
            {
                "rule_id": r["rule_id"],
                "rule": rules.get(r["rule_id"], {}).get("name", ""),
                "activity_types": rules.get(r["rule_id"], {}).get("activity_types", []),
                "owner_id": r["owner_id"],
                "clients": 0,
                "overdue": 0,
            },
        )
        cell["clients"] += 1
        cell["overdue"] += 1 if r["overdue"] else 0
    out = []
    for cell in sorted(cells.values(), key=lambda c: (c["rule_id"], c["owner_id"] or 0)):
        cell["compliant"] = cell["clients"] - cell["overdue"]
        cell["compliance"] = round(cell["compliant"] / cell["clients"], 4) if cell["clients"] else None
        out.append(cell)
    return out


async def overdue_clients(principal: Principal, rule_id: int | None = None) -> list[dict[str, Any]]:
    principal.require("sales.deal.read")
    conditions: list[Any] = [CadenceFlag.overdue == True]  # noqa: E712
    vis = principal.owner_where(CadenceFlag.owner_id)
    if vis is not None:
        conditions.append(vis)
    if rule_id is not None:
        conditions.append(CadenceFlag.rule_id == rule_id)
    return (
        await CadenceFlag.select(
            CadenceFlag.rule_id,
            CadenceFlag.party_id,
            CadenceFlag.party_id.name.as_alias("party_name"),
            CadenceFlag.owner_id,
            CadenceFlag.last_contact_at,
            CadenceFlag.last_contact_type,
            CadenceFlag.due_at,
        )
        .where(*conditions)
        .order_by(CadenceFlag.due_at)
    )


async def contacts_by_type(
    principal: Principal, date_from: dt.date, date_to: dt.date
) -> list[dict[str, Any]]:
    """Done contacts with clients per manager and contact type in the period."""
    principal.require("sales.deal.read")
    start = dt.datetime.combine(date_from, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    conditions = [
        Activity.status == "done",
        Activity.starts_at >= start,
        Activity.starts_at < end,
        Activity.party_id.is_not_null(),
    ]
    vis = principal.owner_where(Activity.owner_id)
    if vis is not None:
        conditions.append(vis)
    rows = await Activity.select(Activity.owner_id, Activity.type).where(*conditions)
    counts: dict[tuple[int | None, str], int] = defaultdict(int)
    for r in rows:
        counts[(r["owner_id"], r["type"])] += 1
    return [
        {"owner_id": owner, "type": kind, "count": n}
        for (owner, kind), n in sorted(counts.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))
    ]
