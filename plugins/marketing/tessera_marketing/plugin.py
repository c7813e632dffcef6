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
}


@hookimpl
def tessera_tables() -> str:
    return "tessera_marketing.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    from tessera_marketing.routes import routers

    return routers()


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
def tessera_timeline_items(party_id: int) -> Any:
    from tessera_marketing.mailings import timeline

    return timeline(party_id)


@hookimpl
def tessera_custom_field_targets() -> dict[str, dict[str, Any]]:
    from tessera_marketing.classes import CUSTOM_FIELDS

    return {"party": {k: dict(v) for k, v in CUSTOM_FIELDS.items()}}


@hookimpl
def tessera_on_event(event: Any) -> Any:
    if event.name != "sales.deal.opened":
        return None
    from tessera_marketing.services import on_deal_opened

    return on_deal_opened(dict(event.payload))


@hookimpl(optionalhook=True)
def tessera_sales_deal_sources(campaign_id: int | None) -> Any:
    """Campaigns are the deal sources sales asks for: a deal links to one by ``campaign_id``."""
    from tessera_marketing.services import campaign_sources

    return campaign_sources(campaign_id)


@hookimpl
def tessera_nav_items() -> list[dict[str, Any]]:
    from tessera.i18n import gettext as _

    return [{"label": _("Marketing"), "href": "/marketing/campaigns", "more": True}]


@hookimpl
def tessera_translations() -> str:
    """The plugin's gettext catalogues (ru, uk, en), merged over the kernel's."""
    from pathlib import Path

    return str(Path(__file__).parent / "locale")


@hookimpl
def tessera_web_routes() -> list[Any]:
    from tessera_marketing.web import HANDLERS

    return list(HANDLERS)


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    from tessera_marketing.demo import load

    return load(ctx)
