"""Hook implementations of the knowledge base plugin (nothing else lives here)."""

from __future__ import annotations

from typing import Any

from tessera.hookspecs import hookimpl

PERMISSIONS = {
    "knowledge_base.read": "Read published staff and public articles, walk decision trees, get advice, vote",
    "knowledge_base.public": "Read published public articles only (an account of a client-facing portal)",
    "knowledge_base.service": "Read published articles written for service agents",
    "knowledge_base.write": "Write articles (drafts), read every draft and version, restore versions",
    "knowledge_base.publish": "Approve articles in review (publish), send them back, withdraw and delete",
    "knowledge_base.rules": "Manage the expert system's rule sets and the decision trees; rule reports",
}


@hookimpl
def tessera_tables() -> str:
    return "tessera_knowledge_base.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    from tessera_knowledge_base.routes import routers

    return routers()


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return dict(PERMISSIONS)


@hookimpl
def tessera_search_types() -> list[Any]:
    from tessera_knowledge_base.integration import search_types

    return search_types()


@hookimpl
def tessera_search_documents(entity: str, record: dict[str, Any]) -> Any:
    if entity != "knowledge_base.article":
        return None
    from tessera_knowledge_base.integration import search_documents

    return search_documents(record)


@hookimpl
def tessera_reports() -> list[Any]:
    from tessera_knowledge_base.report_defs import reports

    return reports()


@hookimpl
def tessera_record_widgets(kind: str, record_id: int, principal: Any) -> Any:
    from tessera_knowledge_base.integration import record_widgets

    return record_widgets(kind, record_id, principal)


@hookimpl
def tessera_card_widgets(party_id: int, principal: Any) -> Any:
    from tessera_knowledge_base.integration import card_widgets

    return card_widgets(party_id, principal)


@hookimpl
def tessera_timeline_items(party_id: int, principal: Any) -> Any:
    from tessera_knowledge_base.integration import timeline

    return timeline(party_id, principal)


@hookimpl
def tessera_on_event(event: Any) -> Any:
    from tessera_knowledge_base.integration import on_event

    return on_event(event)


@hookimpl
def tessera_record_urls(kind: str, ids: list[int]) -> Any:
    from tessera_knowledge_base.integration import record_urls

    return record_urls(kind, ids)


@hookimpl
def tessera_nav_items() -> list[dict[str, Any]]:
    from tessera.i18n import gettext as _

    return [{"label": _("Knowledge base"), "href": "/knowledge_base/", "more": True}]


@hookimpl
def tessera_translations() -> str:
    """The plugin's gettext catalogues (ru, uk, en), merged over the kernel's."""
    from pathlib import Path

    return str(Path(__file__).parent / "locale")


@hookimpl
def tessera_web_routes() -> list[Any]:
    from tessera_knowledge_base.web import HANDLERS

    return list(HANDLERS)


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    from tessera_knowledge_base.demo import load

    return load(ctx)
