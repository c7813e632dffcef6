"""Web-form leads: form definitions (admins), the public submission and lead distribution.

``POST /api/marketing/forms/{key}`` takes no credentials (a handler without ``principal`` is a
public operation in the kernel, and no session means no CSRF check); it accepts JSON or an HTML
form (``application/x-www-form-urlencoded``) of at most ``MAX_BODY`` bytes. In order:

1. the form must exist and be active (404 otherwise);
2. **honeypot**: a submission that fills the form's hidden field is spam: answered like a
   success, nothing is stored;
3. **rate limits** counted in the database (``marketing_rate_bucket``, one row per key and
   hour, incremented by one ``INSERT ... ON CONFLICT DO UPDATE``), so they hold across nodes:
   per hashed client address and form, and per form; over either: 429, nothing stored;
4. a **required** field of the form left empty is a 422 naming it, and so is an e-mail or a
   phone that is not one (the field's name, so a page shows the error beside it);
5. the party is **matched** by e-mail, then by phone in any format (the kernel's
   ``party_channel_match``: E.164 digits of the party's or a contact's phones), or created
   (an organisation when the form fills ``company``, with the writer as its contact: ``name``,
   ``position``, the e-mail and phone; else a person);
6. the **lead** is recorded with the form, its source and campaign, and **distributed**: an
   existing client goes to its manager; otherwise by the form's rule: ``user`` (one person),
   ``round_robin`` / ``least_loaded`` (fewest ``new`` leads) over ``user_ids``, ``territory``
   (the submitted ``field`` value picks the user in ``territories``, else round-robin), or
   ``team_list`` (the team's lead list, no assignee).

Everything after the checks happens in one transaction. CORS: a browser may post from the
form's ``allowed_origins`` only (the answer carries ``Access-Control-Allow-Origin`` for them).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from tessera import audit, clock, db, events
from tessera.auth import sha256
from tessera.entities import service
from tessera.entities.channels import normalise_email, normalise_phone
from tessera.entities.parties import CONTACT, PARTY
from tessera.entities.tables import CrmUser, Notification, Party, Team
from tessera.errors import NotFound, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.permissions import Principal

from tessera_marketing.tables import Campaign, Lead, WebForm

MAX_BODY = 16 * 1024
MAX_VALUE = 2000
TARGETS = ("name", "company", "position", "email", "phone", "note")
MODES = ("user", "round_robin", "least_loaded", "territory", "team_list")
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

#: The API's refusals, in the plugin's catalogue so that pages show them in the reader's
#: language (``tessera.i18n.translate_message``); the API answers them in English.
MESSAGES = {
    "key": N_("2-64 lower-case letters, digits, - and _"),
    "key_taken": N_("another form has this key"),
    "field_name": N_("a field name: a Latin letter, then letters, digits, - and _"),
    "target": N_(
        "is not a field a form can fill: name, company, position, e-mail, phone, message or a custom field"
    ),
    "channel": N_("map at least one field to the e-mail or the phone"),
    "required": N_("is not one of the form's fields"),
    "origin": N_("a site address like https://example.com"),
    "campaign": N_("there is no such campaign"),
    "mode": N_("is not a way of distributing leads"),
    "user_ids": N_("must be a list of users"),
    "no_user": N_("there is no such user"),
    "needs_users": N_("choose at least one manager"),
    "needs_team": N_("choose the team"),
    "needs_territory": N_("name the form field and the managers of its values"),
    "email": N_("not an e-mail address"),
    "phone": N_("not a phone number"),
    "contact": N_("give an e-mail address or a phone number"),
    "missing": N_("this field is required"),
}


class RateLimited(Exception):
    pass


def _everyone(principal: Principal | None) -> Any:
    return None


async def _prepare_form(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    values.pop("last_assignee_id", None)
    if "key" in values and not KEY.match(values["key"] or ""):
        raise ValidationFailed.field("key", MESSAGES["key"])
    if "key" in values:
        query = WebForm.exists().where(WebForm.key == values["key"])
        if existing is not None:
            query = query.where(WebForm.id != existing["id"])
        if await query:
            raise ValidationFailed.field("key", MESSAGES["key_taken"])
    if "fields" in values:
        from tessera_marketing.segments import party_custom_schema

        custom = await party_custom_schema()
        for name, target in (values["fields"] or {}).items():
            if not FIELD_NAME.match(name):
                raise ValidationFailed.field(f"fields.{name}", MESSAGES["field_name"])
            if not isinstance(target, str) or not (
                target in TARGETS or (target.startswith("custom.") and target[7:] in custom)
            ):
                raise ValidationFailed.field(f"fields.{name}", MESSAGES["target"])
        if not {"email", "phone"} & set((values["fields"] or {}).values()):
            raise ValidationFailed.field("fields", MESSAGES["channel"])
    if "required" in values or "labels" in values or "fields" in values:
        names = set((values["fields"] if "fields" in values else (existing or {}).get("fields")) or {})
        for name in values.get("required", (existing or {}).get("required")) or []:
            if name not in names:
                raise ValidationFailed.field(f"required.{name}", MESSAGES["required"])
        labels = values.get("labels", (existing or {}).get("labels")) or {}
        for name in labels:
            if name not in names:
                raise ValidationFailed.field(f"labels.{name}", MESSAGES["required"])
    for i, origin in enumerate(values.get("allowed_origins") or []):
        if not re.match(r"^https?://[A-Za-z0-9.-]+(:\d+)?$", origin or ""):
            raise ValidationFailed.field(f"allowed_origins[{i}]", MESSAGES["origin"])
    if "distribution" in values:
        await _check_distribution(values["distribution"] or {})
    if values.get("campaign_id") is not None and not await Campaign.exists().where(
        Campaign.id == values["campaign_id"]
    ):
        raise ValidationFailed.field("campaign_id", MESSAGES["campaign"])
    if existing is None:
        values.setdefault("owner_id", principal.user_id or None)
    return values


async def _check_distribution(rule: dict[str, Any]) -> None:
    mode = rule.get("mode", "round_robin")
    if mode not in MODES:
        raise ValidationFailed.field("distribution.mode", MESSAGES["mode"])
    users = rule.get("user_ids") or []
    if not isinstance(users, list) or not all(isinstance(u, int) for u in users):
        raise ValidationFailed.field("distribution.user_ids", MESSAGES["user_ids"])
    territories = rule.get("territories") or {}
    ids = set(users) | {v for v in territories.values() if isinstance(v, int)}
    known = {r["id"] for r in await CrmUser.select(CrmUser.id).where(CrmUser.id.is_in(list(ids) or [-1]))}
    if ids - known:
        raise ValidationFailed.field("distribution.user_ids", MESSAGES["no_user"])
    if mode in ("user", "round_robin", "least_loaded") and not users:
        raise ValidationFailed.field("distribution.user_ids", MESSAGES["needs_users"])
    if mode == "team_list" and not isinstance(rule.get("team_id"), int):
        raise ValidationFailed.field("distribution.team_id", MESSAGES["needs_team"])
    if mode == "team_list" and not await Team.exists().where(Team.id == rule["team_id"]):
        raise ValidationFailed.field("distribution.team_id", MESSAGES["needs_team"])
    if mode == "territory" and (not rule.get("field") or not isinstance(territories, dict)):
        raise ValidationFailed.field("distribution.field", MESSAGES["needs_territory"])


FORM = service.EntitySpec(
    name="marketing.web_form",
    table=WebForm,
    permission="marketing.form",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_form,
    order_fields=("id", "name"),
    permission_overrides={
        "read": "marketing.form.manage",
        "write": "marketing.form.manage",
        "delete": "marketing.form.manage",
    },
)


# --------------------------------------------------------------------------- submission


async def active_form(key: str) -> dict[str, Any]:
    form = (
        await WebForm.select()
        .where(WebForm.key == key, WebForm.active == True)  # noqa: E712
        .first()
        .output(load_json=True)
    )
    if form is None:
        raise NotFound("No such form")
    return form


async def _hit(bucket: str, limit: int, now: dt.datetime) -> bool:
    """Count one submission in ``bucket``; False when it is over ``limit`` this hour."""
    rows = await db.raw(
        "INSERT INTO marketing_rate_bucket (bucket, hits, window_start) VALUES ({}, 1, {}) "
        "ON CONFLICT (bucket) DO UPDATE SET hits = marketing_rate_bucket.hits + 1 RETURNING hits",
        bucket,
        now,
    )
    return int(rows[0]["hits"]) <= limit


async def check_rates(form: dict[str, Any], client: str, now: dt.datetime) -> None:
    hour = now.strftime("%Y%m%d%H")
    who = sha256(f"{client}|{form['id']}")[:32]
    # Both buckets are counted (a refused submission still counts: a flood stays refused).
    ok_ip = await _hit(f"ip:{who}:{hour}", form["per_ip_per_hour"], now)
    ok_form = await _hit(f"form:{form['id']}:{hour}", form["per_form_per_hour"], now)
    if not (ok_ip and ok_form):
        raise RateLimited()


def _values(form: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The mapped values, checked: an e-mail or a phone is required and must be valid."""
    out: dict[str, Any] = {"custom": {}, "extra": {}}
    fields = form["fields"] or {}
    for name in form.get("required") or []:
        raw = data.get(name)
        if name in fields and (not isinstance(raw, (str, int, float)) or not str(raw).strip()):
            raise ValidationFailed.field(name, MESSAGES["missing"])
    for name, raw in data.items():
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            continue
        text = str(raw).strip()[:MAX_VALUE]
        target = (form["fields"] or {}).get(name)
        if target is None:
            if name != form["honeypot"] and len(out["extra"]) < 20:
                out["extra"][str(name)[:64]] = text
            continue
        if not text:
            continue
        if target == "email":
            try:
                out["email"] = normalise_email(text)
            except ValueError:
                raise ValidationFailed.field(name, MESSAGES["email"]) from None
        elif target == "phone":
            try:
                out["phone"] = normalise_phone(text)
            except ValueError:
                raise ValidationFailed.field(name, MESSAGES["phone"]) from None
        elif target.startswith("custom."):
            out["custom"][target[7:]] = text
        else:
            out[target] = text
    if not out.get("email") and not out.get("phone"):
        channel = next((n for n, t in fields.items() if t in ("email", "phone")), "email")
        raise ValidationFailed.field(channel, MESSAGES["contact"])
    return out


async def _match(values: dict[str, Any]) -> dict[str, Any] | None:
    from tessera.api.filters import party_channel_match

    for key in ("email", "phone"):
        if values.get(key):
            row = (
                await Party.select(Party.id, Party.owner_id, Party.team_id)
                .where(party_channel_match(values[key]))
                .order_by(Party.id)
                .first()
            )
            if row:
                return row
    return None


async def _assignee(form: dict[str, Any], values: dict[str, Any]) -> tuple[int | None, int | None]:
    """(user, team) the new lead goes to by the form's rule."""
    rule = form["distribution"] or {}
    mode = rule.get("mode", "round_robin")
    users = [
        r["id"]
        for r in await CrmUser.select(CrmUser.id)
        .where(CrmUser.id.is_in(list(rule.get("user_ids") or []) or [-1]), CrmUser.is_active == True)  # noqa: E712
        .order_by(CrmUser.id)
    ]
    if mode == "team_list":
        return None, rule.get("team_id")
    if mode == "territory":
        region = str(values["extra"].get(rule.get("field"), values["custom"].get(rule.get("field"), "")))
        territories = {str(k).lower(): v for k, v in (rule.get("territories") or {}).items()}
        chosen = territories.get(region.strip().lower())
        if chosen is not None:
            return chosen, None
    if not users:
        return None, None
    if mode == "user":
        return users[0], None
    if mode == "least_loaded":
        loads = {u: 0 for u in users}
        for row in await Lead.select(Lead.assignee_id).where(
            Lead.assignee_id.is_in(users), Lead.status == "new"
        ):
            loads[row["assignee_id"]] += 1
        return min(users, key=lambda u: (loads[u], u)), None
    last = form.get("last_assignee_id") or 0
    chosen = ([u for u in users if u > last] or users)[0]
    await WebForm.update({WebForm.last_assignee_id: chosen}).where(WebForm.id == form["id"])
    return chosen, None


async def submit(key: str, data: dict[str, Any], client: str) -> dict[str, Any] | None:
    """Record one submission; None when it is spam (nothing stored)."""
    from tessera.demo import system_principal

    form = await active_form(key)
    if str(data.get(form["honeypot"]) or "").strip():
        return None
    now = clock.now()
    await check_rates(form, client, now)
    values = _values(form, data)
    system = system_principal()
    async with events.unit_of_work():
        party = await _match(values)
        if party is not None and party["owner_id"]:
            assignee, team_id = party["owner_id"], None
        else:
            assignee, team_id = await _assignee(form, values)
        if party is None:
            name = values.get("company") or values.get("name") or values.get("email") or values.get("phone")
            created = await service.create(
                PARTY,
                system,
                {
                    "name": str(name)[:300],
                    "kind": "organisation" if values.get("company") else "person",
                    "relations": ["client"],
                    "status": "potential",
                    "owner_id": assignee,
                    "team_id": team_id,
                    "emails": [{"address": values["email"], "type": "work"}] if values.get("email") else [],
                    "phones": [{"number": values["phone"], "type": "work"}] if values.get("phone") else [],
                    "custom": _valid_custom(values["custom"], await _schema()),
                },
            )
            party = {"id": created["id"], "owner_id": assignee, "team_id": team_id}
            if values.get("company") and values.get("name"):
                await service.create(CONTACT, system, _contact(created["id"], values))
        from tessera_marketing.services import LEAD

        lead = await service.create(
            LEAD,
            system,
            {
                "_system": True,
                "party_id": party["id"],
                "campaign_id": form["campaign_id"],
                "form_id": form["id"],
                "source": "form",
                "status": "new",
                "assignee_id": assignee,
                "team_id": team_id,
                "note": (values.get("note") or "")[:5000],
                "payload": {k: v for k, v in values.items() if k not in ("custom", "extra") and v}
                | {"extra": values["extra"], "custom": values["custom"]},
                "received_at": now,
            },
        )
        if assignee:
            await Notification.insert(
                Notification(
                    user_id=assignee,
                    kind="marketing.lead",
                    title=_("New lead from the form %(form)s", form=form["name"])[:500],
                    body="",
                    ref=f"marketing_lead:{lead['id']}",
                    created_at=now,
                )
            )
    return lead


def _contact(party_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """The person who wrote on behalf of a new organisation: its contact, with their channels."""
    return {
        "party_id": party_id,
        "name": str(values["name"])[:300],
        "position": str(values.get("position") or "")[:200],
        "emails": [{"address": values["email"], "type": "work"}] if values.get("email") else [],
        "phones": [{"number": values["phone"], "type": "work"}] if values.get("phone") else [],
    }


async def _schema() -> dict[str, Any]:
    from tessera_marketing.segments import party_custom_schema

    return await party_custom_schema()


def _valid_custom(values: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Custom values a form may set: the text ones that fit their field (others stay in the
    lead's payload for the manager)."""
    out = {}
    for key, value in values.items():
        prop = schema.get(key) or {}
        if prop.get("type") == "string" and (not prop.get("enum") or value in prop["enum"]):
            out[key] = value
    return out


def cors_headers(form: dict[str, Any] | None, origin: str | None) -> dict[str, str]:
    if not form or not origin or origin not in (form.get("allowed_origins") or []):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "3600",
        "Vary": "Origin",
    }


async def audit_submission(lead: dict[str, Any] | None) -> None:
    if lead is None:
        audit.unchanged()
