"""Every report of the kernel and the enabled plugins (``tessera_reports``)."""

from __future__ import annotations

from typing import Any

import pluggy

from tessera.errors import NotFound
from tessera.permissions import Principal
from tessera.plugins import PluginError, call_each
from tessera.reports import kernel
from tessera.reports.builder import Entity
from tessera.reports.framework import Report, check, permission_of


def _declared(pm: pluggy.PluginManager) -> list[tuple[str, Any]]:
    return [("tessera", [*kernel.REPORTS, *kernel.ENTITIES]), *call_each(pm, "tessera_reports")]


def entities(pm: pluggy.PluginManager) -> dict[str, Entity]:
    """Every entity the report builder offers (kernel and plugins), by key."""
    out: dict[str, Entity] = {}
    for plugin, declared in _declared(pm):
        for item in declared or []:
            if isinstance(item, Entity):
                if item.key in out:
                    raise PluginError(f"Plugin {plugin!r}: builder entity {item.key!r} is declared twice")
                item.plugin = plugin
                out[item.key] = item
    return out


def registry(pm: pluggy.PluginManager) -> dict[str, Report]:
    """Every report of the kernel and the enabled plugins, by key (kernel first)."""
    out: dict[str, Report] = {}
    for plugin, declared in _declared(pm):
        for report in declared or []:
            if isinstance(report, Entity):
                continue
            check(report, plugin)
            if report.key in out:
                raise PluginError(f"Plugin {plugin!r}: report {report.key!r} is declared twice")
            out[report.key] = report
    return out


def get_report(pm: pluggy.PluginManager, key: str, principal: Principal) -> Report:
    report = registry(pm).get(key)
    if report is None:
        raise NotFound(f"No report {key!r}")
    principal.require(permission_of(report))
    return report


def visible_reports(pm: pluggy.PluginManager, principal: Principal) -> list[Report]:
    return [r for r in registry(pm).values() if principal.can(permission_of(r))]
