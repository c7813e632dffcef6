"""Revenue supplied by other plugins through ``tessera_revenue_sources`` (sales: won deals,
receivables: payments), as one SQL sub-select of ``party_id, month, amount`` rows.

The marketing plugin never imports another plugin: the SQL text comes from the hook, written by
the plugin that owns the tables, and no user input is ever part of it.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy
from tessera import db
from tessera.entities import service
from tessera.plugins import call_each

from tessera_marketing import hookspecs

log = logging.getLogger("tessera_marketing")


def plugin_manager() -> pluggy.PluginManager:
    """The kernel's plugin manager with the marketing plugin's hook specs added (once)."""
    pm = service.plugin_manager()
    caller = getattr(pm.hook, "tessera_revenue_sources", None)
    if caller is None or caller.spec is None:
        pm.add_hookspecs(hookspecs)
    return pm


def engine() -> str:
    return "postgres" if db.is_postgres() else "sqlite"


def _collect(hook: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for plugin, items in call_each(plugin_manager(), hook, engine=engine()):
        for item in items or []:
            if not (isinstance(item, dict) and isinstance(item.get("sql"), str) and item.get("key")):
                continue
            if "{" in item["sql"] or "}" in item["sql"]:
                # Piccolo reads braces as placeholders: such SQL cannot be embedded safely.
                log.error("plugin %s: %s source %r has braces in its SQL; ignored", plugin, hook, item["key"])
                continue
            out.append({"label": item.get("key"), **item, "plugin": plugin})
    return out


def sources() -> list[dict[str, Any]]:
    """Every revenue source the enabled plugins answer with."""
    return _collect("tessera_revenue_sources")


def suppressions() -> list[dict[str, Any]]:
    """Every promotional-suppression source the enabled plugins answer with."""
    return _collect("tessera_marketing_suppressions")


def _escaped(sql: str) -> str:
    # ``_collect`` keeps only SQL without braces (Piccolo's placeholders).
    return sql


def union_sql(keys: list[str] | None = None) -> str | None:
    """``SELECT party_id, month, amount`` over the chosen sources (all when ``keys`` is None),
    ready to embed in a query with ``{}`` placeholders; None when no source answers."""
    chosen = [s for s in sources() if keys is None or s["key"] in keys]
    if not chosen:
        return None
    parts = [
        f"SELECT rs{i}.party_id AS party_id, rs{i}.month AS month, rs{i}.amount AS amount "
        f"FROM ({_escaped(s['sql'])}) rs{i}"
        for i, s in enumerate(chosen)
    ]
    return " UNION ALL ".join(parts)


def suppression_sql() -> str | None:
    """``SELECT party_id`` of every party a plugin suppresses from promotional mailings."""
    chosen = suppressions()
    if not chosen:
        return None
    return " UNION ".join(
        f"SELECT ss{i}.party_id FROM ({_escaped(s['sql'])}) ss{i}" for i, s in enumerate(chosen)
    )
