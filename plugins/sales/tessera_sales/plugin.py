"""Hook implementations of the sales plugin (nothing else lives here)."""

from __future__ import annotations

from typing import Any

from tessera.hookspecs import hookimpl
from tessera.i18n import N_

from tessera_sales import labels  # noqa: F401  (words of its codes on kernel pages: search, inbox)

#: What each permission allows; msgids of the plugin's catalogue, so the roles page shows them
#: in the admin's language (``i18n.translate_message``).
PERMISSIONS = {
    "sales.deal.read": N_("Read deals, products, proposals and sales reports (within record visibility)"),
    "sales.deal.write": N_("Open deals, move them through stages, close them, make proposals and documents"),
    "sales.deal.delete": N_("Delete deals"),
    "sales.product.manage": N_("Manage products and price lists"),
    "sales.plan.manage": N_("Set sales plans for managers and teams"),
    "sales.settings.manage": N_(
        "Manage loss reasons, proposal templates, contact-cadence norms and the base currency"
    ),
    "sales.rates.manage": N_("Enter dated exchange rates against the base currency"),
}


@hookimpl
def tessera_tables() -> str:
    return "tessera_sales.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    from tessera_sales.routes import routers

    return routers()


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return dict(PERMISSIONS)


@hookimpl
def tessera_jobs() -> list[Any]:
    from tessera_sales.jobs import JOBS

    return list(JOBS)


@hookimpl
def tessera_process_templates() -> list[dict[str, Any]]:
    from tessera_sales.pipelines import SHIPPED

    return [dict(t) for t in SHIPPED]


@hookimpl
def tessera_custom_field_targets() -> dict[str, dict[str, Any]]:
    return {
        "party": {
            # Titles are msgids of the plugin's catalogue: forms and the card show them translated.
            "sales_category": {"type": "string", "enum": ["A", "B", "C"], "title": N_("Client category")},
            "sales_client_group": {"type": "string", "maxLength": 100, "title": N_("Price group")},
        },
        "sales.deal": {},
    }


@hookimpl
def tessera_on_event(event: Any) -> Any:
    if event.name in ("workflow.stage_entered", "workflow.stopped", "workflow.migrated"):
        from tessera_sales.integration import on_workflow_event, on_workflow_migrated

        if event.name == "workflow.migrated":
            # The deals take the new version's stage (probability, norm) at once.
            return on_workflow_migrated(event)
        return on_workflow_event(event)
    return None


@hookimpl
def tessera_search_types() -> list[Any]:
    from tessera.search.documents import SearchType

    from tessera_sales.tables import Deal, Proposal

    return [
        # Group headings: msgids of the catalogue, like the kernel's ("Parties").
        SearchType("deal", N_("Deals"), permission="sales.deal.read", entity="sales.deal", table=Deal),
        SearchType(
            "proposal",
            N_("Proposals"),
            permission="sales.deal.read",
            entity="sales.proposal",
            table=Proposal,
        ),
    ]


@hookimpl
def tessera_search_documents(entity: str, record: dict[str, Any]) -> Any:
    if entity not in ("sales.deal", "sales.proposal"):
        return None
    from tessera_sales.integration import search_documents

    return search_documents(entity, record)


@hookimpl
def tessera_timeline_items(party_id: int, principal: Any) -> Any:
    from tessera_sales.integration import timeline

    return timeline(party_id, principal)


@hookimpl
def tessera_party_participants(party_id: int) -> Any:
    from tessera_sales.integration import participants

    return participants(party_id)


@hookimpl
def tessera_nav_items() -> list[dict[str, Any]]:
    from tessera.i18n import gettext as _

    return [
        {"label": _("Deals"), "href": "/sales/deals"},
        # The board and the reports are one click further, in the header's "More" menu.
        {"label": _("Kanban"), "href": "/sales/kanban", "more": True},
        {"label": _("Funnel"), "href": "/sales/funnel", "more": True},
        {"label": _("Plans"), "href": "/sales/plans", "more": True},
        {"label": _("Forecast"), "href": "/sales/forecast", "more": True},
        {"label": _("KPI"), "href": "/sales/kpi", "more": True},
    ]


@hookimpl
def tessera_party_tabs(party_id: int) -> list[dict[str, str]]:
    from tessera.i18n import gettext as _

    return [{"label": _("Deals"), "href": f"/sales/parties/{party_id}/deals"}]


@hookimpl
def tessera_list_columns(list_name: str) -> list[dict[str, Any]]:
    from tessera_sales.lists import list_columns

    return list_columns(list_name)


@hookimpl
def tessera_card_widgets(party_id: int, principal: Any) -> Any:
    from tessera_sales.card_widgets import open_deals_widget

    return open_deals_widget(party_id, principal)


@hookimpl
def tessera_translations() -> str:
    """The plugin's gettext catalogues (ru, uk, en), merged over the kernel's."""
    from pathlib import Path

    return str(Path(__file__).parent / "locale")


@hookimpl
def tessera_web_routes() -> list[Any]:
    from tessera_sales.web import HANDLERS
    from tessera_sales.web_deals import HANDLERS as DEAL_HANDLERS  # new deal, checklist, proposals, kanban
    from tessera_sales.web_reports import HANDLERS as REPORT_HANDLERS  # plans, forecast, KPI, cadence

    return list(HANDLERS) + DEAL_HANDLERS + REPORT_HANDLERS


@hookimpl
def tessera_dashboard_widgets(principal: Any) -> Any:
    from tessera_sales.widgets import dashboard_widgets

    return dashboard_widgets(principal)


@hookimpl
def tessera_record_urls(kind: str, ids: list[int]) -> Any:
    from tessera_sales.widgets import record_urls

    return record_urls(kind, ids)


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    from tessera_sales.demo import load

    return load(ctx)


@hookimpl
def tessera_reports() -> list[Any]:
    from tessera_sales.report_defs import REPORTS

    return REPORTS


@hookimpl(optionalhook=True)
def tessera_revenue_sources(engine: str) -> list[dict[str, Any]]:
    """Won deals by close month for the marketing plugin (ABC/XYZ, campaign return)."""
    from tessera_sales.revenue_sources import revenue_sources

    return revenue_sources(engine)


@hookimpl(optionalhook=True)
def tessera_marketing_loss_reasons(engine: str) -> list[dict[str, Any]]:
    """Why clients were lost (lost deals' reasons) for marketing's churn per channel."""
    from tessera_sales.revenue_sources import loss_reasons

    return loss_reasons(engine)


@hookimpl(optionalhook=True)
def tessera_marketing_product_purchases(engine: str) -> list[dict[str, Any]]:
    """What clients bought from us by product (won deal lines) for marketing's competitor matrix."""
    from tessera_sales.revenue_sources import product_purchases

    return product_purchases(engine)


@hookimpl(optionalhook=True)
def tessera_caller_facts(party_id: int, principal: Any) -> Any:
    from tessera_sales.integrations import caller_facts

    return caller_facts(party_id, principal)


@hookimpl(optionalhook=True)
def tessera_accounting_documents(since: Any, principal: Any) -> Any:
    from tessera_sales.integrations import accounting_documents

    return accounting_documents(since, principal)
