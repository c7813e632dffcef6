"""Hook implementations of the receivables plugin (nothing else lives here)."""

from __future__ import annotations

from typing import Any

from tessera.hookspecs import hookimpl

PERMISSIONS = {
    "receivables.read": "Read invoices, payments, ageing, collection cases and promises "
    "(within record visibility)",
    "receivables.write": "Create and change invoices, payments, credit notes and allocations; "
    "import from accounting",
    "receivables.collect": "Work collection cases: record promises to pay, calls, bounced channels",
    "receivables.manage": "Delete receivables records and run the overdue scan and dunning by hand",
}


@hookimpl
def tessera_tables() -> str:
    return "tessera_receivables.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    from tessera_receivables.routes import routers

    return routers()


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return dict(PERMISSIONS)


@hookimpl
def tessera_jobs() -> list[Any]:
    from tessera_receivables.jobs import JOBS

    return list(JOBS)


@hookimpl
def tessera_custom_field_targets() -> dict[str, dict[str, Any]]:
    # The channel a client prefers to hear about overdue debt (the kernel has one per contact,
    # none per party).
    from tessera.i18n import N_

    return {
        "party": {
            "preferred_channel": {
                "type": "string",
                "enum": ["email", "phone", "letter"],
                "title": N_("Preferred channel for payment reminders"),
                # The options in words (the labels tessera_receivables.web registers).
                "x-labels": "receivables.channel",
            }
        }
    }


@hookimpl
def tessera_process_templates() -> list[dict[str, Any]]:
    from tessera_receivables.dunning import TEMPLATES

    return [dict(t) for t in TEMPLATES]


@hookimpl
def tessera_cli_commands() -> Any:
    from tessera_receivables.cli import app

    return app


@hookimpl
def tessera_reports() -> list[Any]:
    from tessera_receivables.report_defs import REPORTS

    return list(REPORTS)


@hookimpl
def tessera_on_event(event: Any) -> Any:
    if event.name not in ("sales.invoice.issued", "service.ticket.created", "service.ticket.status_changed"):
        return None
    from tessera_receivables.integration import on_event

    return on_event(event)


@hookimpl
def tessera_search_types() -> list[Any]:
    from tessera.search.documents import SearchType

    from tessera_receivables.tables import Invoice

    return [
        SearchType(
            "receivable_invoice",
            "Invoices (receivables)",
            permission="receivables.read",
            entity="receivables.invoice",
            table=Invoice,
        )
    ]


@hookimpl
def tessera_search_documents(entity: str, record: dict[str, Any]) -> Any:
    if entity != "receivables.invoice":
        return None
    from tessera_receivables.integration import search_documents

    return search_documents(entity, record)


@hookimpl
def tessera_timeline_items(party_id: int, principal: Any) -> Any:
    from tessera_receivables.integration import timeline

    return timeline(party_id, principal)


@hookimpl
def tessera_card_widgets(party_id: int, principal: Any) -> Any:
    from tessera_receivables.integration import card_widget

    return card_widget(party_id, principal)


@hookimpl(optionalhook=True)
def tessera_revenue_sources(engine: str) -> list[dict[str, Any]]:
    from tessera_receivables.integration import revenue_sources

    return revenue_sources(engine)


@hookimpl(optionalhook=True)
def tessera_marketing_suppressions(engine: str) -> list[dict[str, Any]]:
    from tessera_receivables.integration import suppressions

    return suppressions(engine)


@hookimpl
def tessera_nav_items() -> list[dict[str, Any]]:
    from tessera.i18n import gettext as _

    return [{"label": _("Receivables"), "href": "/receivables/worklist", "more": True}]


@hookimpl
def tessera_party_tabs(party_id: int) -> list[dict[str, str]]:
    from tessera.i18n import gettext as _

    return [{"label": _("Account"), "href": f"/receivables/parties/{party_id}"}]


@hookimpl
def tessera_translations() -> str:
    """The plugin's gettext catalogues (ru, uk, en), merged over the kernel's."""
    from pathlib import Path

    return str(Path(__file__).parent / "locale")


@hookimpl
def tessera_web_routes() -> list[Any]:
    from tessera_receivables.web import HANDLERS

    return list(HANDLERS)


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    from tessera_receivables.demo import load

    return load(ctx)
