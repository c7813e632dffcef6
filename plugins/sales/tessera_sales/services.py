"""Deals, their lines, products and price lists: the sales plugin's domain logic (no HTTP).

A deal is a kernel-style record (``tessera.entities.service`` with the ``DEAL`` spec: audit,
events, optimistic locking, custom fields, visibility) with a workflow instance attached. The
instance owns the stage; the deal's ``stage*`` columns and ``sales_stage_visit`` rows are a
projection of the instance's transitions, rebuilt by ``sync_deal`` in the same transaction as
every move.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tessera import clock, events
from tessera.entities import service
from tessera.entities.parties import CONTACT, PARTY
from tessera.entities.tables import Contact, CrmUser, Party
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.permissions import Principal
from tessera.workflow import business_time, engine, templates
from tessera.workflow.tables import WorkflowInstance, WorkflowTransition

from tessera_sales import stats
from tessera_sales.pipelines import DEAL_SUBJECT, DEFAULT_PIPELINE, readable
from tessera_sales.tables import Deal, DealLine, LossReason, Price, PriceList, Product, StageVisit

CENT = Decimal("0.01")
CURRENCIES = frozenset({"RUB", "UAH", "USD", "EUR", "KZT", "BYN", "GBP", "CNY", "PLN"})
SOURCES = ("", "web", "call", "email", "referral", "campaign", "partner", "exhibition", "other")


def money(value: Any) -> Decimal:
    """A Decimal rounded to cents (SQLite hands aggregates back as floats)."""
    if value is None:
        return Decimal("0.00")
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def deal_visibility(principal: Principal) -> Any:
    """Deals of owners the principal sees (own, team, substitutes), or of teams it sees, and
    every deal on a client the principal sees: like the client's activities, tasks and process
    instances, a client's deals are open to the client's responsible manager (the client card,
    the deal's stage tasks and search already show them there)."""
    own = principal.owner_where(Deal.owner_id, Deal.team_id)
    if own is None:
        return None
    return own | principal.owner_where(Deal.party_id.owner_id, Deal.party_id.team_id)


def deal_write_visibility(principal: Principal) -> Any:
    """Who may change, move, close, delete a deal or add proposals and documents to it: the
    readers of its owner or team. The client's manager reads the deals of others on their
    client, and only reads them (docs/security.md)."""
    return principal.owner_where(Deal.owner_id, Deal.team_id)


def visibility_sql(principal: Principal, alias: str = "d") -> tuple[str, list[Any]]:
    """Deals of owners or teams the principal sees, as a raw SQL fragment on ``alias`` (any
    table with ``owner_id`` and ``team_id``: deals, stage visits, the report summaries). It
    leaves out the deals readable only through their client (see ``deal_visibility``): reports
    count a subset of what the caller may read, never more."""
    if principal.user_ids is None:
        return "1 = 1", []
    parts, args = [], []
    if principal.user_ids:
        ids = sorted(principal.user_ids)
        parts.append(f"{alias}.owner_id IN ({', '.join('{}' for _ in ids)})")
        args.extend(ids)
    if principal.team_ids:
        ids = sorted(principal.team_ids)
        parts.append(f"{alias}.team_id IN ({', '.join('{}' for _ in ids)})")
        args.extend(ids)
    return ("(" + " OR ".join(parts) + ")" if parts else "1 = 0"), args


# --------------------------------------------------------------------------- pipelines


async def pipeline(key: str) -> dict[str, Any]:
    """The current definition of a sales pipeline; 422 when ``key`` is not one. The shipped
    names in it (stages, requirement labels) are in the reader's language
    (``pipelines.readable``); the workflow engine reads its own stored copy."""
    await templates.sync_plugin_templates(service.plugin_manager())
    try:
        row = await templates.get_version(key)
    except NotFound as exc:
        raise ValidationFailed.field("pipeline", f"no pipeline {key!r}") from exc
    if row["definition"].get("subject") != DEAL_SUBJECT:
        raise ValidationFailed.field("pipeline", f"process {key!r} is not a sales pipeline")
    return readable(row["definition"])


async def list_pipelines() -> list[dict[str, Any]]:
    await templates.sync_plugin_templates(service.plugin_manager())
    out = []
    for row in await templates.list_current():
        definition = readable(row["definition"])
        if definition.get("subject") != DEAL_SUBJECT:
            continue
        out.append(
            {
                "key": row["key"],
                "version": row["version"],
                "name": readable({"name": row["name"]})["name"],
                "is_default": row["key"] == DEFAULT_PIPELINE,
                "stages": [
                    {
                        "key": s["key"],
                        "name": s["name"],
                        "probability": s.get("probability", 0),
                        "norm_days": norm_seconds(s) / 86400 if s.get("norm") else None,
                        "final": bool(s.get("final")),
                        "required": [r.get("label") or r["key"] for r in s.get("required", [])],
                        "responsible": s.get("responsible"),
                    }
                    for s in definition["stages"]
                ],
            }
        )
    return out


def norm_seconds(stage: dict[str, Any]) -> int | None:
    norm = stage.get("norm")
    if not norm:
        return None
    return int(business_time.norm_duration(norm).total_seconds())


def open_stages(definition: dict[str, Any]) -> list[str]:
    return [s["key"] for s in definition["stages"] if not s.get("final")]


# --------------------------------------------------------------------------- deal spec


async def _prepare_deal(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    for closed_field in ("status", "stage", "instance_id", "closed_at", "loss_reason_id"):
        values.pop(closed_field, None)
    if existing is not None and existing["status"] != "open":
        allowed = {"custom", "title"}
        if set(values) - allowed - {"lines"}:
            raise Conflict(f"deal {existing['id']} is {existing['status']}; only its title can change")
    if existing is None:
        if values.get("owner_id") is None:
            values["owner_id"] = principal.user_id
        values.setdefault("pipeline", DEFAULT_PIPELINE)
        await pipeline(values["pipeline"])
        if values.get("party_id") is None:
            raise ValidationFailed.field("party_id", "a deal needs the client (party) it is made with")
    elif "pipeline" in values and values["pipeline"] != existing["pipeline"]:
        raise ValidationFailed.field("pipeline", "a deal cannot change pipeline; close it and open a new one")
    if "party_id" in values:
        await service.require_visible(PARTY, principal, values["party_id"], "party_id")
    if values.get("contact_id") is not None:
        await service.require_visible(CONTACT, principal, values["contact_id"], "contact_id")
        party_id = values.get("party_id", existing["party_id"] if existing else None)
        contact = await Contact.select(Contact.party_id).where(Contact.id == values["contact_id"]).first()
        if contact and contact["party_id"] != party_id:
            raise ValidationFailed.field("contact_id", "the contact works at another party")
    if "currency" in values:
        values["currency"] = str(values["currency"]).upper()
        if values["currency"] not in CURRENCIES:
            raise ValidationFailed.field("currency", f"must be one of {', '.join(sorted(CURRENCIES))}")
    if "amount" in values:
        if values["amount"] is None or Decimal(str(values["amount"])) < 0:
            raise ValidationFailed.field("amount", "must be zero or more")
        values["amount"] = money(values["amount"])
    if values.get("source") not in (None, *SOURCES):
        raise ValidationFailed.field("source", f"must be one of {', '.join(s for s in SOURCES if s)}")
    if values.get("campaign_id") is not None and (
        existing is None or values["campaign_id"] != existing.get("campaign_id")
    ):
        from tessera_sales import sources

        found = await sources.check_campaign(values["campaign_id"])
        if not values.get("source") and (existing is None or "source" not in values):
            values["source"] = (
                found["source"] if found.get("source") and found["source"] in SOURCES else "campaign"
            )
    if "owner_id" in values:
        if values["owner_id"] is None:
            raise ValidationFailed.field("owner_id", "a deal needs an owner")
        owner = (
            await CrmUser.select(CrmUser.team_id, CrmUser.is_active)
            .where(CrmUser.id == values["owner_id"])
            .first()
        )
        if owner is None or not owner["is_active"]:
            raise ValidationFailed.field(
                "owner_id", f"user {values['owner_id']} does not exist or is inactive"
            )
        if not principal.check_visible_owner(values["owner_id"]):
            raise ValidationFailed.field("owner_id", "you may only give deals to users whose records you see")
        values["team_id"] = owner["team_id"]
    if "lines" in values:
        values["lines"] = await _check_lines(values["lines"], values, existing)
        if values["lines"]:
            # With product lines the deal's amount is their total.
            values["amount"] = sum((line["amount"] for line in values["lines"]), Decimal("0.00"))
    return values


async def _after_deal_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    if "lines" in extras:
        await _replace_lines(row["id"], extras["lines"])
    if existing is None:
        # The deal enters the report summary now; sync_deal below adds its first stay.
        await stats.apply(stats.contributions(row, []))
        instance = await engine.start(
            engine.engine_principal(principal.user_id),
            service.plugin_manager(),
            row["pipeline"],
            subject_entity=DEAL_SUBJECT,
            subject_id=row["id"],
            party_id=row["party_id"],
            owner_id=row["owner_id"],
            title=row["title"],
        )
        await Deal.update({Deal.instance_id: instance["id"]}).where(Deal.id == row["id"])
        row["instance_id"] = instance["id"]
        row.update(await sync_deal(row["id"]))
        await events.emit(
            "sales.deal.opened",
            "sales.deal",
            row["id"],
            {
                "id": row["id"],
                "party_id": row["party_id"],
                "owner_id": row["owner_id"],
                "source": row["source"],
                "campaign_id": row["campaign_id"],
                "amount": str(row["amount"]),
                "currency": row["currency"],
            },
        )
    else:
        await _restate(existing, row)
    if existing is not None and existing["owner_id"] != row["owner_id"] and row["instance_id"]:
        await WorkflowInstance.update(
            {WorkflowInstance.owner_id: row["owner_id"], WorkflowInstance.team_id: row["team_id"]}
        ).where(WorkflowInstance.id == row["instance_id"])
        await StageVisit.update(
            {StageVisit.owner_id: row["owner_id"], StageVisit.team_id: row["team_id"]}
        ).where(StageVisit.deal_id == row["id"])


_STAT_FIELDS = (
    "owner_id",
    "team_id",
    "amount",
    "currency",
    "status",
    "pipeline",
    "created_at",
    "closed_at",
    "expected_close",
    "probability",
    "stage",
    "stage_entered_at",
)


async def _restate(before: dict[str, Any], after: dict[str, Any]) -> None:
    """An edit changed what the deal adds to the report summary (owner, amount, currency):
    move its contribution (the stays are the same before and after)."""
    if all(before.get(f) == after.get(f) for f in _STAT_FIELDS):
        return
    _, visits = await stats.deal_state(after["id"])
    await stats.apply(
        stats.difference(stats.contributions(after, visits), stats.contributions(before, visits))
    )


async def _before_deal_delete(principal: Principal, existing: dict[str, Any]) -> None:
    deal, visits = await stats.deal_state(existing["id"])
    await stats.apply(stats.difference({}, stats.contributions(deal, visits)))


DEAL = service.EntitySpec(
    name="sales.deal",
    table=Deal,
    permission="sales.deal",
    visibility=deal_visibility,
    write_visibility=deal_write_visibility,
    order_fields=("id", "created_at", "updated_at", "amount", "expected_close"),
    prepare=_prepare_deal,
    after_write=_after_deal_write,
    before_delete=_before_deal_delete,
)


async def get_deal(principal: Principal, deal_id: int) -> dict[str, Any]:
    return await service.get(DEAL, principal, deal_id)


# --------------------------------------------------------------------------- projection


async def sync_deal(deal_id: int) -> dict[str, Any]:
    """Rebuild the deal's stage columns and stage visits from its workflow instance's
    transitions. Idempotent; returns the changed deal columns."""
    deal = (
        await Deal.select(Deal.id, Deal.instance_id, Deal.owner_id, Deal.team_id, Deal.pipeline, Deal.status)
        .where(Deal.id == deal_id)
        .first()
    )
    if deal is None or deal["instance_id"] is None:
        return {}
    instance = await WorkflowInstance.select().where(WorkflowInstance.id == deal["instance_id"]).first()
    if instance is None:
        return {}
    before_deal, before_visits = await stats.deal_state(deal_id)
    definition = await engine.definition_of(instance)
    stages = templates.stage_map(definition)
    transitions = (
        await WorkflowTransition.select()
        .where(WorkflowTransition.instance_id == instance["id"])
        .order_by(WorkflowTransition.at)
        .order_by(WorkflowTransition.id)
    )
    visits: list[dict[str, Any]] = []
    for t in transitions:
        entering = bool(t["to_stage"]) and (
            t["kind"] in ("start", "advance")
            or (t["kind"] == "migrate" and (not visits or visits[-1]["stage"] != t["to_stage"]))
        )
        closing = entering or t["kind"] == "stop"
        if closing and visits and visits[-1]["left_at"] is None:
            visits[-1]["left_at"] = t["at"]
        if entering:
            visits.append(
                {
                    "stage": t["to_stage"],
                    "seq": t["stage_seq"],
                    "entered_at": t["at"],
                    "left_at": None,
                    "norm_seconds": norm_seconds(stages.get(t["to_stage"], {})),
                }
            )
        elif t["kind"] == "stop":
            # A deal closed as lost from an open stage: the plugin stops the instance.
            visits.append(
                {
                    "stage": "lost",
                    "seq": t["stage_seq"] + 1,
                    "entered_at": t["at"],
                    "left_at": None,
                    "norm_seconds": None,
                }
            )
    changes: dict[str, Any] = {}
    current = visits[-1] if visits else None
    if current is not None:
        is_final = current["stage"] in ("won", "lost") or (
            current["stage"] in stages and templates.is_final(definition, current["stage"])
        )
        if is_final:
            current["left_at"] = None
        changes = {
            "stage": current["stage"],
            "stage_entered_at": current["entered_at"],
            "stage_due_at": None if is_final or instance["status"] != "running" else instance["stage_due_at"],
            "probability": stages.get(current["stage"], {}).get("probability", 0)
            if current["stage"] != "lost"
            else 0,
        }
        if current["stage"] == "won" or (
            is_final and stages.get(current["stage"], {}).get("probability") == 100
        ):
            changes.update(status="won", closed_at=current["entered_at"])
        elif current["stage"] == "lost":
            changes.update(status="lost", closed_at=current["entered_at"])
    for v in visits:
        v["seconds"] = int((v["left_at"] - v["entered_at"]).total_seconds()) if v["left_at"] else None
    await StageVisit.delete().where(StageVisit.deal_id == deal_id)
    if visits:
        await StageVisit.insert(
            *[
                StageVisit(
                    deal_id=deal_id,
                    pipeline=deal["pipeline"],
                    stage=v["stage"],
                    seq=v["seq"],
                    entered_at=v["entered_at"],
                    left_at=v["left_at"],
                    seconds=v["seconds"],
                    norm_seconds=v["norm_seconds"],
                    owner_id=deal["owner_id"],
                    team_id=deal["team_id"],
                )
                for v in visits
            ]
        )
    if changes:
        await Deal.update({getattr(Deal, k): v for k, v in changes.items()}).where(Deal.id == deal_id)
    # Same transaction: the report summary follows the stays and the status.
    after_deal = {**before_deal, **changes} if before_deal else None
    await stats.apply(
        stats.difference(
            stats.contributions(after_deal, visits), stats.contributions(before_deal, before_visits)
        )
    )
    return changes


async def get_deal_for_write(principal: Principal, deal_id: int) -> dict[str, Any]:
    """The deal for a write: 404 when hidden, 403 when the caller may only read it."""
    return await service.get_for_write(DEAL, principal, deal_id)


async def _deal_for_write(principal: Principal, deal_id: int) -> dict[str, Any]:
    deal = await get_deal_for_write(principal, deal_id)
    if deal["instance_id"] is None:
        raise Conflict(f"deal {deal_id} has no process attached")
    return deal


async def _touch(deal: dict[str, Any], action: str, detail: dict[str, Any]) -> None:
    from tessera import audit

    await Deal.update({Deal.version: Deal.version + 1, Deal.updated_at: clock.now()}).where(
        Deal.id == deal["id"]
    )
    await audit.record(action, "sales.deal", deal["id"], detail)


async def move_deal(
    principal: Principal,
    deal_id: int,
    *,
    to: str | None = None,
    results: dict[str, Any] | None = None,
    comment: str = "",
) -> dict[str, Any]:
    """Complete the deal's current stage and enter ``to`` (or the next stage). The workflow
    engine checks the stage's required actions (409 naming the missing ones)."""
    deal = await _deal_for_write(principal, deal_id)
    if deal["status"] != "open":
        raise Conflict(f"deal {deal_id} is {deal['status']}")
    if to == "lost":
        raise ValidationFailed.field("to", "close a lost deal with POST .../close (it needs a loss reason)")
    async with events.unit_of_work():
        await engine.advance(
            engine.engine_principal(principal.user_id),
            service.plugin_manager(),
            deal["instance_id"],
            to=to,
            results=results,
            comment=comment,
        )
        changes = await sync_deal(deal_id)
        await _touch(deal, "stage", {"stage": [deal["stage"], changes.get("stage")]})
        await events.emit(
            "sales.deal.stage_changed",
            "sales.deal",
            deal_id,
            {"id": deal_id, "from": deal["stage"], "to": changes.get("stage"), "owner_id": deal["owner_id"]},
        )
        if changes.get("status") == "won":
            await _emit_closed(deal, "won")
    return await service.get(DEAL, principal, deal_id)


async def tick(principal: Principal, deal_id: int, item: str, done: bool = True) -> dict[str, Any]:
    """Tick a checklist requirement of the deal's current stage."""
    deal = await _deal_for_write(principal, deal_id)
    async with events.unit_of_work():
        await engine.tick_checklist(
            engine.engine_principal(principal.user_id), deal["instance_id"], item, done
        )
        await _touch(deal, "checklist", {f"checklist.{item}": [not done, done]})
    return await service.get(DEAL, principal, deal_id)


async def _emit_closed(deal: dict[str, Any], outcome: str) -> None:
    fresh = await Deal.select().where(Deal.id == deal["id"]).first()
    assert fresh is not None
    await events.emit(
        f"sales.deal.{outcome}",
        "sales.deal",
        deal["id"],
        {
            "id": deal["id"],
            "party_id": fresh["party_id"],
            "owner_id": fresh["owner_id"],
            "amount": str(money(fresh["amount"])),
            "currency": fresh["currency"],
            "campaign_id": fresh["campaign_id"],
            "source": fresh["source"],
            "loss_reason_id": fresh["loss_reason_id"],
        },
    )


async def close_deal(
    principal: Principal,
    deal_id: int,
    outcome: str,
    *,
    loss_reason_id: int | None = None,
    comment: str = "",
) -> dict[str, Any]:
    """Win (moves to the ``won`` stage: the current stage's requirements must be met) or lose
    (any open stage; needs an active loss reason from the managed list and may carry a comment)."""
    if outcome == "won":
        return await move_deal(principal, deal_id, to="won", comment=comment)
    if outcome != "lost":
        raise ValidationFailed.field("outcome", "must be won or lost")
    deal = await _deal_for_write(principal, deal_id)
    if deal["status"] != "open":
        raise Conflict(f"deal {deal_id} is {deal['status']}")
    if loss_reason_id is None:
        raise ValidationFailed.field(
            "loss_reason_id", "say why the deal was lost (GET /api/sales/loss-reasons)"
        )
    await ensure_loss_reasons()
    reason = await LossReason.select().where(LossReason.id == loss_reason_id).first()
    if reason is None or not reason["active"]:
        raise ValidationFailed.field("loss_reason_id", f"no active loss reason {loss_reason_id}")
    async with events.unit_of_work():
        await engine.stop(
            engine.engine_principal(principal.user_id), deal["instance_id"], comment or reason["name"]
        )
        await Deal.update({Deal.loss_reason_id: loss_reason_id, Deal.loss_comment: comment}).where(
            Deal.id == deal_id
        )
        await sync_deal(deal_id)
        await _touch(deal, "close", {"status": ["open", "lost"], "loss_reason_id": [None, loss_reason_id]})
        await _emit_closed(deal, "lost")
    return await service.get(DEAL, principal, deal_id)


async def stage_history(principal: Principal, deal_id: int) -> list[dict[str, Any]]:
    deal = await service.get(DEAL, principal, deal_id)
    rows = (
        await StageVisit.select()
        .where(StageVisit.deal_id == deal["id"])
        .order_by(StageVisit.entered_at)
        .order_by(StageVisit.id)
    )
    definition = await pipeline(deal["pipeline"])
    names = {s["key"]: s["name"] for s in definition["stages"]}
    now = clock.now()
    out = []
    for r in rows:
        spent = r["seconds"] if r["seconds"] is not None else int((now - r["entered_at"]).total_seconds())
        out.append(
            {
                "stage": r["stage"],
                "stage_name": names.get(r["stage"], r["stage"]),
                "entered_at": r["entered_at"],
                "left_at": r["left_at"],
                "seconds": spent,
                "norm_seconds": r["norm_seconds"],
                "over_norm": r["norm_seconds"] is not None and spent > r["norm_seconds"],
            }
        )
    return out


# --------------------------------------------------------------------------- lines and prices


async def _check_lines(
    lines: list[dict[str, Any]], values: dict[str, Any], existing: dict[str, Any] | None
) -> list[dict[str, Any]]:
    currency = values.get("currency") or (existing or {}).get("currency") or "RUB"
    party_id = values.get("party_id") or (existing or {}).get("party_id")
    group = await client_group(party_id) if party_id else ""
    today = clock.now().date()
    out = []
    for i, line in enumerate(lines):
        product_id = line.get("product_id")
        name = line.get("name") or ""
        unit_price = line.get("unit_price")
        discount = Decimal(str(line.get("discount_pct") or 0))
        if product_id is not None:
            product = await Product.select().where(Product.id == product_id).first()
            if product is None:
                raise ValidationFailed.field(f"lines[{i}].product_id", f"no product {product_id}")
            name = name or product["name"]
            if unit_price is None:
                quote = await price_for(product_id, currency, group, today)
                if quote is None:
                    raise ValidationFailed.field(
                        f"lines[{i}].unit_price",
                        f"no valid {currency} price list has {product['name']!r}; give unit_price",
                    )
                unit_price = quote["price"]
                if line.get("discount_pct") is None:
                    discount = quote["discount_pct"]
        if not name:
            raise ValidationFailed.field(f"lines[{i}].name", "a line needs a product or a name")
        if unit_price is None:
            raise ValidationFailed.field(f"lines[{i}].unit_price", "required for a line without a product")
        quantity = Decimal(str(line.get("quantity", 1)))
        unit_price = Decimal(str(unit_price))
        if quantity <= 0:
            raise ValidationFailed.field(f"lines[{i}].quantity", "must be more than zero")
        if unit_price < 0:
            raise ValidationFailed.field(f"lines[{i}].unit_price", "must be zero or more")
        if not 0 <= discount <= 100:
            raise ValidationFailed.field(f"lines[{i}].discount_pct", "must be between 0 and 100")
        amount = money(quantity * unit_price * (Decimal(100) - discount) / Decimal(100))
        out.append(
            {
                "product_id": product_id,
                "name": name[:300],
                "quantity": quantity,
                "unit_price": money(unit_price),
                "discount_pct": discount,
                "amount": amount,
                "position": i,
            }
        )
    return out


async def _replace_lines(deal_id: int, lines: list[dict[str, Any]]) -> None:
    await DealLine.delete().where(DealLine.deal_id == deal_id)
    if lines:
        await DealLine.insert(*[DealLine(deal_id=deal_id, **line) for line in lines])


async def deal_lines(deal_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {d: [] for d in deal_ids}
    if not deal_ids:
        return out
    rows = await DealLine.select().where(DealLine.deal_id.is_in(deal_ids)).order_by(DealLine.position)
    for r in rows:
        out[r["deal_id"]].append(
            {
                "product_id": r["product_id"],
                "name": r["name"],
                "quantity": Decimal(str(r["quantity"])).quantize(Decimal("0.001")),
                "unit_price": money(r["unit_price"]),
                "discount_pct": money(r["discount_pct"]),
                "amount": money(r["amount"]),
            }
        )
    return out


async def client_group(party_id: int | None) -> str:
    """The party's price group (custom field ``sales_client_group``), "" when none."""
    if party_id is None:
        return ""
    row = await Party.select(Party.custom).where(Party.id == party_id).first().output(load_json=True)
    return str(((row or {}).get("custom") or {}).get("sales_client_group") or "")


async def price_for(product_id: int, currency: str, group: str, on: dt.date) -> dict[str, Any] | None:
    """The price of a product for a client group in a currency on a date: the client group's
    list wins over the general one ("" group); among those the latest ``valid_from``. The list's
    discount applies."""
    rows = await Price.select(
        Price.price,
        Price.price_list_id.id.as_alias("list_id"),
        Price.price_list_id.client_group.as_alias("client_group"),
        Price.price_list_id.valid_from.as_alias("valid_from"),
        Price.price_list_id.discount_pct.as_alias("discount_pct"),
    ).where(
        Price.product_id == product_id,
        Price.price_list_id.currency == currency,
        Price.price_list_id.active == True,  # noqa: E712
        Price.price_list_id.client_group.is_in(list({group, ""})),
        Price.price_list_id.valid_from <= on,
        (Price.price_list_id.valid_to.is_null()) | (Price.price_list_id.valid_to >= on),
    )
    if not rows:
        return None
    best = max(
        rows, key=lambda r: (r["client_group"] == group and group != "", r["valid_from"], r["list_id"])
    )
    return {
        "price": money(best["price"]),
        "discount_pct": money(best["discount_pct"] or 0),
        "price_list_id": best["list_id"],
    }


async def price_list(list_id: int) -> dict[str, Any]:
    row = await PriceList.select().where(PriceList.id == list_id).first()
    if row is None:
        raise NotFound(f"price list {list_id} not found")
    prices = (
        await Price.select(Price.product_id, Price.price)
        .where(Price.price_list_id == list_id)
        .order_by(Price.product_id)
    )
    row["prices"] = [{"product_id": p["product_id"], "price": money(p["price"])} for p in prices]
    row["discount_pct"] = money(row["discount_pct"])
    return row


# --------------------------------------------------------------------------- loss reasons


DEFAULT_LOSS_REASONS = [
    "Цена выше, чем у конкурента",
    "Выбрали конкурента",
    "Нет бюджета",
    "Потребность отпала",
    "Не вышли на ЛПР",
    "Сроки поставки",
]


async def ensure_loss_reasons() -> None:
    """Seed the managed list once (admins edit it afterwards)."""
    if await LossReason.count() == 0:
        await LossReason.insert(
            *[LossReason(name=name, active=True, position=i) for i, name in enumerate(DEFAULT_LOSS_REASONS)]
        )
