"""Hooks the sales plugin offers to other plugins (added to the kernel's plugin manager by the
sales plugin the first time it needs them, see ``sources.plugin_manager``).

Implement them with ``@hookimpl(optionalhook=True)`` (``from tessera.hookspecs import
hookimpl``): the marker tells pluggy the hook belongs to an optional plugin, so your plugin
still loads where sales is not installed or is disabled.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("tessera")


@hookspec
def tessera_sales_deal_sources(campaign_id: int | None) -> Any:
    """Return the marketing campaigns (deal sources) a deal may be linked to, as a list of dicts
    or a coroutine resolving to one:
    ``{"id": 7, "name": "Spring expo 2026", "source": "exhibition", "active": True}``.

    :param campaign_id: the campaign the caller asks about (validating a deal's ``campaign_id``,
        showing a deal); return ``[]`` when it is not yours. ``None``: return every campaign a
        manager may pick now (lists, forms).

    Called when a deal is opened or its ``campaign_id`` changes (an id that no plugin returns,
    or one returned with ``"active": False``, is refused with 422 on ``campaign_id``), by
    ``GET /api/sales/sources`` and by the deal pages. ``source`` (optional) becomes the deal's
    source when the request gives none; it must be one of the plugin's sources.
    """
