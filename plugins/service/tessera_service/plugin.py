"""Hook implementations of the service plugin (nothing else lives here)."""

from __future__ import annotations

from typing import Any

from tessera.hookspecs import hookimpl

PERMISSIONS = {
    "service.ticket.read": "Read tickets, their conversation and SLA state (within record visibility)",
    "service.ticket.write": "Open tickets, reply, write notes, hand off, pause, resolve, close and reopen",
    "service.ticket.manage": "Manage queues, SLA policies and service agreements; delete tickets",
}


@hookimpl
def tessera_tables() -> str:
    return "tessera_service.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    from tessera_service.routes import routers

    return routers()


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return dict(PERMISSIONS)


@hookimpl
def tessera_jobs() -> list[Any]:
    from tessera_service.jobs import JOBS

    return list(JOBS)


@hookimpl
def tessera_process_templates() -> list[dict[str, Any]]:
    from tessera_service.lifecycle import SHIPPED

    return [dict(t) for t in SHIPPED]


@hookimpl
def tessera_workflow_assignee(rule: str, args: dict[str, Any], instance: dict[str, Any]) -> Any:
    if rule != "service.ticket_assignee":
        return None
    from tessera_service.lifecycle import assignee_of

    return assignee_of(instance)


@hookimpl
def tessera_reports() -> list[Any]:
    from tessera_service.report_defs import REPORTS

    return REPORTS


@hookimpl
def tessera_custom_field_targets() -> dict[str, dict[str, Any]]:
    return {"service.ticket": {}}


@hookimpl
def tessera_search_types() -> list[Any]:
    from tessera.search.documents import SearchType

    from tessera_service.tables import Ticket

    return [
        SearchType(
            "ticket", "Tickets", permission="service.ticket.read", entity="service.ticket", table=Ticket
        ),
        SearchType(
            "ticket_reply", "Ticket replies", permission="service.ticket.read", entity="service.ticket"
        ),
    ]


@hookimpl
def tessera_search_documents(entity: str, record: dict[str, Any]) -> Any:
    if entity != "service.ticket":
        return None
    from tessera_service.integration import search_documents

    return search_documents(entity, record)


@hookimpl
def tessera_timeline_items(party_id: int) -> Any:
    from tessera_service.integration import timeline

    return timeline(party_id)


@hookimpl
def tessera_party_participants(party_id: int) -> Any:
    from tessera_service.integration import participants

    return participants(party_id)


@hookimpl
def tessera_inbound_email(message: Any) -> Any:
    from tessera_service.integration import on_inbound_email

    return on_inbound_email(message)


@hookimpl
def tessera_dashboard_widgets(principal: Any) -> Any:
    from tessera_service.integration import dashboard_widget

    return dashboard_widget(principal)


@hookimpl
def tessera_card_widgets(party_id: int, principal: Any) -> Any:
    from tessera_service.integration import card_widget

    return card_widget(party_id, principal)


@hookimpl
def tessera_record_urls(kind: str, ids: list[int]) -> Any:
    from tessera_service.integration import record_urls

    return record_urls(kind, ids)


@hookimpl
def tessera_nav_items() -> list[dict[str, str]]:
    from tessera.i18n import gettext as _

    return [{"label": _("Tickets"), "href": "/service/tickets"}]


@hookimpl
def tessera_party_tabs(party_id: int) -> list[dict[str, str]]:
    from tessera.i18n import gettext as _

    return [{"label": _("Tickets"), "href": f"/service/parties/{party_id}/tickets"}]


@hookimpl
def tessera_translations() -> str:
    """The plugin's gettext catalogues (ru, uk, en), merged over the kernel's."""
    from pathlib import Path

    return str(Path(__file__).parent / "locale")


@hookimpl
def tessera_web_routes() -> list[Any]:
    from tessera_service.web import HANDLERS

    return list(HANDLERS)


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    from tessera_service.demo import load

    return load(ctx)


@hookimpl(optionalhook=True)
def tessera_marketing_suppressions(engine: str) -> list[dict[str, Any]]:
    """Clients with an open complaint (a claim ticket not resolved yet) receive no promotional
    mailing (the marketing plugin's hook)."""
    from tessera.i18n import N_

    return [
        {
            "key": "service.open_complaints",
            "label": N_("Clients with an open complaint"),
            "sql": "SELECT t.party_id FROM service_ticket t WHERE t.category = 'claim' "
            "AND t.status IN ('new', 'in_progress', 'waiting')",
        }
    ]
