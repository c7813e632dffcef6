"""Dashboards (issue 21, item 4): per user and shared with roles and teams, made of tiles —
a registered report with parameters, a saved builder report, or a KPI. Each tile is computed
for the reader (their visibility) and drills down to its report."""

from __future__ import annotations

import json
from typing import Any

from tessera import audit, clock, events
from tessera.entities.tables import Dashboard
from tessera.errors import DomainError, NotFound, ValidationFailed
from tessera.permissions import Principal
from tessera.reports import builder, catalog, framework, kpis

MAX_TILES = 24


def dashboard_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "owner_id": row["owner_id"],
        "tiles": json.loads(row["tiles"] or "[]"),
        "shared_roles": json.loads(row["shared_roles"] or "[]"),
        "shared_teams": json.loads(row["shared_teams"] or "[]"),
    }


async def _check_tiles(pm: Any, principal: Principal, tiles: Any) -> list[dict[str, Any]]:
    if not isinstance(tiles, list) or len(tiles) > MAX_TILES:
        raise ValidationFailed.field("tiles", f"must be a list of at most {MAX_TILES} tiles")
    registry = catalog.registry(pm)
    known_kpis = {k["id"] for k in await kpis.list_kpis()}
    out = []
    for i, tile in enumerate(tiles):
        where = f"tiles.{i}"
        if not isinstance(tile, dict):
            raise ValidationFailed.field(where, "must be an object")
        kind = tile.get("kind")
        if kind == "report":
            report = registry.get(tile.get("key") or "")
            if report is None:
                raise ValidationFailed.field(f"{where}.key", "no such report")
            framework.validate_params(report, tile.get("params") or {})
            out.append({"kind": "report", "key": report.key, "params": tile.get("params") or {}})
        elif kind == "saved":
            if not isinstance(tile.get("id"), int):
                raise ValidationFailed.field(f"{where}.id", "must be a saved report id")
            await builder.get_saved(principal, tile["id"])
            out.append({"kind": "saved", "id": tile["id"]})
        elif kind == "kpi":
            if tile.get("id") not in known_kpis:
                raise ValidationFailed.field(f"{where}.id", "no such KPI")
            out.append({"kind": "kpi", "id": tile["id"]})
        else:
            raise ValidationFailed.field(f"{where}.kind", "must be report, saved or kpi")
    return out


async def create(pm: Any, principal: Principal, values: dict[str, Any]) -> dict[str, Any]:
    name = values.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationFailed.field("name", "is required (at most 200 characters)")
    tiles = await _check_tiles(pm, principal, values.get("tiles", []))
    roles, teams = await builder._check_shares(values.get("shared_roles", []), values.get("shared_teams", []))
    async with events.unit_of_work():
        row = (
            await Dashboard.insert(
                Dashboard(
                    owner_id=principal.user_id,
                    name=name.strip(),
                    tiles=json.dumps(tiles),
                    shared_roles=json.dumps(roles),
                    shared_teams=json.dumps(teams),
                    created_at=clock.now(),
                )
            ).returning(*Dashboard.all_columns())
        )[0]
        await audit.record("create", "dashboard", row["id"], {"name": [None, row["name"]]})
    return dashboard_out(row)


async def add_tile(pm: Any, principal: Principal, dashboard_id: int, tile: Any) -> dict[str, Any]:
    """Add a tile to a dashboard the caller owns (checked as on creation). Audited."""
    board = await get(principal, dashboard_id)
    if board["owner_id"] != principal.user_id:
        raise NotFound(f"No dashboard {dashboard_id} of yours")
    tiles = await _check_tiles(pm, principal, [*board["tiles"], tile])
    async with events.unit_of_work():
        await Dashboard.update({Dashboard.tiles: json.dumps(tiles)}).where(Dashboard.id == dashboard_id)
        await audit.record("update", "dashboard", dashboard_id, {"tiles": [len(board["tiles"]), len(tiles)]})
    return {**board, "tiles": tiles}


async def visible(principal: Principal) -> list[dict[str, Any]]:
    roles = await builder._role_names(principal)
    teams = {principal.team_id} if principal.team_id else set()
    out = []
    for row in await Dashboard.select().order_by(Dashboard.id):
        d = dashboard_out(row)
        if (
            d["owner_id"] == principal.user_id
            or set(d["shared_roles"]) & roles
            or set(d["shared_teams"]) & teams
        ):
            out.append(d)
    return out


async def get(principal: Principal, dashboard_id: int) -> dict[str, Any]:
    for d in await visible(principal):
        if d["id"] == dashboard_id:
            return d
    raise NotFound(f"No dashboard {dashboard_id}")


async def render_tiles(
    pm: Any, principal: Principal, dashboard: dict[str, Any], period: str
) -> list[dict[str, Any]]:
    """Every tile computed for the reader: a report's result (with the link of its report page)
    or a KPI's figures; a tile the reader may not run says so instead of failing the page."""
    from urllib.parse import urlencode

    registry = catalog.registry(pm)
    entities = catalog.entities(pm)
    panel = {k["kpi"]["id"]: k for k in await kpis.panel(pm, principal, period=period, history=6)}
    out = []
    for tile in dashboard["tiles"]:
        item: dict[str, Any] = {"kind": tile["kind"], "result": None, "kpi": None, "href": None, "error": ""}
        try:
            if tile["kind"] == "report":
                report = registry[tile["key"]]
                item["result"] = await framework.run_report(report, principal, tile["params"])
                query = [(k, v) for k, v in tile["params"].items() if k in ("period", "date_from", "date_to")]
                query += [("group_by", g) for g in tile["params"].get("group_by", [])]
                item["href"] = f"/app/reports/{report.key}" + (f"?{urlencode(query)}" if query else "")
            elif tile["kind"] == "saved":
                saved = await builder.get_saved(principal, tile["id"])
                report, params = await builder.compile_definition(
                    pm, entities, principal, saved["definition"]
                )
                result = await framework.run_report(report, principal, params)
                result["title"] = saved["name"]
                item["result"] = builder.measure_labels(saved["definition"], result)
                item["href"] = f"/app/saved-reports/{tile['id']}"
            else:
                item["kpi"] = panel.get(tile["id"])
                if item["kpi"]:
                    item["href"] = f"/app/reports/{item['kpi']['kpi']['report_key']}"
        except DomainError as exc:  # a report or permission the reader lacks: the tile says so
            item["error"] = exc.detail
        except KeyError:
            item["error"] = "the report is not available"
        out.append(item)
    return out
