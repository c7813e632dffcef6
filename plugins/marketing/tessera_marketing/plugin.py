"""Hook implementations of the marketing plugin (nothing else lives here)."""

from __future__ import annotations

from typing import Any

from tessera.hookspecs import hookimpl
from tessera.i18n import N_

PERMISSIONS = {
    "marketing.segment.read": N_("Read segments and count their members (within party visibility)"),
    "marketing.segment.manage": N_("Create, change, freeze and delete segments"),
    "marketing.campaign.read": N_("Read campaigns, their costs and return"),
    "marketing.campaign.manage": N_("Create, change and delete campaigns and their cost lines"),
    "marketing.lead.read": N_("Read leads (within party visibility)"),
    "marketing.lead.write": N_("Record and hand off leads"),
    "marketing.lead.manage": N_("Delete leads"),
    "marketing.form.manage": N_(
        "Define web forms: fields, anti-spam limits, allowed sites and lead distribution"
    ),
    "marketing.mailing.send": N_("Write and send mailings to segments"),
    "marketing.settings.manage": N_("Change the ABC/XYZ thresholds and recompute the classes"),
    "marketing.survey.read": N_("Read surveys, their answers and reports (within party visibility)"),
    "marketing.survey.answer": N_("Fill surveys for clients on a call and send them survey links"),
    "marketing.survey.manage": N_("Define surveys: their questions"),
    "marketing.competitor.read": N_("Read competitors' products and prices and the competitor matrix"),
    "marketing.competitor.write": N_("Record which competitor a client buys a product group from"),
    "marketing.competitor.manage": N_("Define product groups and competitors' products and prices"),
}


@hookimpl
def tessera_tables() -> str:
    return "tessera_marketing.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    from tessera_marketing import routes_bounces, routes_reports, routes_surveys
    from tessera_marketing.routes import routers

    return [*routers(), *routes_surveys.routers(), *routes_bounces.routers(), *routes_reports.routers()]


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return dict(PERMISSIONS)


@hookimpl
def tessera_jobs() -> list[Any]:
    from tessera_marketing.jobs import JOBS

    return list(JOBS)


@hookimpl
def tessera_background_jobs() -> dict[str, Any]:
    from tessera.jobs import JobKind

    from tessera_marketing import mailings

    return {mailings.KIND: JobKind(mailings.send_job, timeout=3600.0, lease=mailings.LEASE)}


@hookimpl
def tessera_timeline_items(party_id: int, principal: Any) -> Any:
    from tessera_marketing import mailings, surveys

    async def items() -> list[dict[str, Any]]:
        return [*await mailings.timeline(party_id), *await surveys.timeline(party_id, principal)]

    return items()


@hookimpl
def tessera_card_widgets(party_id: int, principal: Any) -> Any:
    from tessera_marketing.web_surveys import card_widget

    return card_widget(party_id, principal)


@hookimpl(optionalhook=True)
def tessera_advice_fact_names(kind: str) -> Any:
    """Facts for the knowledge base's advice rules: ``survey.<survey>.<question>`` -> what it is
    (the latest answer of the record's party)."""
    from tessera_marketing.surveys import load_fact_names

    return load_fact_names()  # a coroutine: read now, so every node knows the surveys


@hookimpl(optionalhook=True)
def tessera_advice_facts(kind: str, record: dict[str, Any]) -> Any:
    """The latest survey answers of the record's party (``record["party_id"]``, or the party
    itself when ``kind == "party"``): ``{"survey.<survey>.<question>": value}``."""
    from tessera_marketing.surveys import facts

    party_id = record.get("id") if kind == "party" else record.get("party_id")

    async def none() -> dict[str, Any]:
        return {}

    if not isinstance(party_id, int) or isinstance(party_id, bool):
        return none()
    return facts(party_id)


@hookimpl
def tessera_custom_field_targets() -> dict[str, dict[str, Any]]:
    from tessera_marketing.classes import CUSTOM_FIELDS

    return {"party": {k: dict(v) for k, v in CUSTOM_FIELDS.items()}}


@hookimpl
def tessera_on_event(event: Any) -> Any:
    if event.name == "party.deleted":
        from tessera_marketing.classes import forget_party

        return forget_party(int(event.entity_id))
    if event.name != "sales.deal.opened":
        return None
    from tessera_marketing.services import on_deal_opened

    return on_deal_opened(dict(event.payload))


@hookimpl
def tessera_list_columns(list_name: str) -> list[dict[str, Any]]:
    from tessera_marketing.classes import list_columns

    return list_columns(list_name)


@hookimpl
def tessera_custom_field_values(entity_type: str, ids: list[int]) -> Any:
    """The ABC/XYZ class as the party's read-only custom fields (kept in the class table)."""
    if entity_type != "party":
        return None
    from tessera_marketing.classes import custom_field_values

    return custom_field_values(ids)


@hookimpl(optionalhook=True)
def tessera_sales_deal_sources(campaign_id: int | None) -> Any:
    """Campaigns are the deal sources sales asks for: a deal links to one by ``campaign_id``."""
    from tessera_marketing.services import campaign_sources

    return campaign_sources(campaign_id)


@hookimpl
def tessera_inbound_email(message: Any) -> Any:
    """Delivery reports and complaints from the bounce mailbox suppress the address."""
    from tessera_marketing.bounces import on_inbound_email

    return on_inbound_email(message)


@hookimpl
def tessera_process_templates() -> list[dict[str, Any]]:
    from tessera_marketing.leadflow import SHIPPED

    return [dict(t) for t in SHIPPED]


@hookimpl
def tessera_workflow_assignee(rule: str, args: dict[str, Any], instance: dict[str, Any]) -> Any:
    from tessera_marketing.leadflow import ASSIGNEE_RULE, assignee_of

    return assignee_of(instance) if rule == ASSIGNEE_RULE else None


@hookimpl
def tessera_nav_items() -> list[dict[str, Any]]:
    from tessera.i18n import gettext as _

    # Managers read the leads handed to them but not campaigns: each sees the entry they may open.
    return [
        {
            "label": _("Marketing"),
            "href": "/marketing/campaigns",
            "more": True,
            "permission": "marketing.campaign.read",
        },
        {"label": _("Leads"), "href": "/marketing/leads", "more": True, "permission": "marketing.lead.read"},
    ]


@hookimpl
def tessera_translations() -> str:
    """The plugin's gettext catalogues (ru, uk, en), merged over the kernel's."""
    from pathlib import Path

    return str(Path(__file__).parent / "locale")


@hookimpl
def tessera_web_routes() -> list[Any]:
    from tessera_marketing.web import HANDLERS
    from tessera_marketing.web_churn import HANDLERS as CHURN_PAGES
    from tessera_marketing.web_competitors import HANDLERS as COMPETITOR_PAGES
    from tessera_marketing.web_surveys import HANDLERS as SURVEY_PAGES

    return [*HANDLERS, *SURVEY_PAGES, *COMPETITOR_PAGES, *CHURN_PAGES]


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    from tessera_marketing import demo, demo_competitors, demo_surveys

    async def load() -> None:
        await demo.load(ctx)
        await demo_surveys.load(ctx)
        await demo_competitors.load(ctx)

    return load()
