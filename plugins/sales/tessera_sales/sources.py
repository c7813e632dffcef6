"""Deal sources contributed by other plugins (a marketing plugin's campaigns), through the
``tessera_sales_deal_sources`` hook only: the sales plugin never imports another plugin."""

from __future__ import annotations

from typing import Any

import pluggy
from tessera.entities import service
from tessera.errors import ValidationFailed
from tessera.plugins import call_each_async

from tessera_sales import hookspecs


def plugin_manager() -> pluggy.PluginManager:
    """The kernel's plugin manager with the sales plugin's own hook specs added (once)."""
    pm = service.plugin_manager()
    caller = getattr(pm.hook, "tessera_sales_deal_sources", None)
    if caller is None or caller.spec is None:
        pm.add_hookspecs(hookspecs)
    return pm


async def campaigns(campaign_id: int | None = None) -> list[dict[str, Any]]:
    """Campaigns the enabled plugins supply (one id: only that one), each with ``plugin``."""
    out: list[dict[str, Any]] = []
    for name, items in await call_each_async(
        plugin_manager(), "tessera_sales_deal_sources", campaign_id=campaign_id
    ):
        for item in items or []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                continue
            if campaign_id is not None and item["id"] != campaign_id:
                continue
            out.append({"active": True, "source": "", **item, "plugin": name})
    return out


async def campaign(campaign_id: int) -> dict[str, Any] | None:
    found = await campaigns(campaign_id)
    return found[0] if found else None


async def check_campaign(campaign_id: int) -> dict[str, Any]:
    """The campaign a deal is linked to; 422 on ``campaign_id`` when no enabled plugin knows
    it or it is closed."""
    found = await campaign(campaign_id)
    if found is None:
        known = await campaigns()
        hint = "no enabled plugin supplies campaigns" if not known else "GET /api/sales/sources lists them"
        raise ValidationFailed.field("campaign_id", f"no campaign {campaign_id} ({hint})")
    if not found.get("active", True):
        raise ValidationFailed.field("campaign_id", f"campaign {campaign_id} ({found.get('name')}) is closed")
    return found
