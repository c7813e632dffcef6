"""Hooks the marketing plugin offers to other plugins (added to the kernel's plugin manager by
the marketing plugin the first time it needs them, see ``revenue.plugin_manager``).

Implement them with ``@hookimpl(optionalhook=True)`` (``from tessera.hookspecs import
hookimpl``): the marker tells pluggy the hook belongs to an optional plugin, so your plugin
still loads where marketing is not installed or is disabled.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("tessera")


@hookspec
def tessera_revenue_sources(engine: str) -> Any:
    """Return the revenue a plugin knows of, as a list of
    ``{"key": "sales.won_deals", "label": <msgid>, "sql": "<SELECT>"}``.

    :param engine: ``"sqlite"`` or ``"postgres"``: write the SQL for that engine.

    Each SELECT returns the columns ``party_id`` (int), ``month`` (text ``YYYY-MM``) and
    ``amount`` (numeric, in the company currency). It is plugin-written SQL text, never user
    input, with no parameters. Marketing reads these rows for the ABC/XYZ classification, the
    campaigns' return and the segment rules on revenue; several plugins may answer (sales: won
    deals by close month; receivables: payments by month) and each source is used on its own
    or summed, as the marketing settings say.
    """


@hookspec
def tessera_marketing_suppressions(engine: str) -> Any:
    """Return who must not receive promotional mailings, as a list of
    ``{"key": "service.open_complaints", "label": <msgid>, "sql": "SELECT party_id FROM ..."}``.

    :param engine: ``"sqlite"`` or ``"postgres"``.

    Each SELECT returns one column ``party_id``; plugin-written SQL text without parameters.
    Receivables answers with the clients in active dunning, service with the clients who have
    an open complaint.
    """


@hookspec
def tessera_marketing_loss_reasons(engine: str) -> Any:
    """Return why clients were lost, as a list of
    ``{"key": "sales.lost_deals", "label": <msgid>, "sql": "SELECT party_id, reason, at ..."}``.

    :param engine: ``"sqlite"`` or ``"postgres"``.

    Each SELECT returns ``party_id`` (int), ``reason`` (text a person reads) and ``at`` (when,
    a timestamp); plugin-written SQL without parameters. The churn of clients per acquisition
    channel (``GET /api/marketing/reports/return/churn``) shows each lost client's latest
    reason. Sales answers with the loss reasons of lost deals.
    """


@hookspec
def tessera_marketing_product_purchases(engine: str) -> Any:
    """Return what clients bought from us, by product, as a list of
    ``{"key": "sales.won_lines", "label": <msgid>, "sql": "SELECT party_id, sku, amount, at ..."}``.

    :param engine: ``"sqlite"`` or ``"postgres"``.

    Each SELECT returns ``party_id`` (int), ``sku`` (the product's code, text), ``amount``
    (numeric) and ``at`` (when, a timestamp); plugin-written SQL without parameters. The
    competitor matrix (clients x product groups) puts each SKU in the marketing product group
    that lists it. Sales answers with the lines of won deals.
    """
