"""Hook implementations of the loyalty plugin, and nothing else."""

from __future__ import annotations

from typing import Any

from tessera_sdk.plugin import hookimpl, job, permissions, routes, timeline_item

from tessera_loyalty import jobs, services
from tessera_loyalty.routes import ROUTES

PERMISSIONS = permissions(
    "loyalty",
    {"read": "See clients' loyalty points", "award": "Award loyalty points to clients"},
)


@hookimpl
def tessera_tables() -> str:
    return "tessera_loyalty.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    return routes(*ROUTES)


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return PERMISSIONS


@hookimpl
def tessera_jobs() -> list[Any]:
    return [job("loyalty.expire_points", jobs.expire_points, cron="0 3 * * *")]


@hookimpl
def tessera_timeline_items(party_id: int) -> Any:
    async def items() -> list[dict[str, Any]]:
        return [
            timeline_item(
                "loyalty.award",
                row["awarded_at"],
                f"+{row['points']} loyalty points" + (f": {row['reason']}" if row["reason"] else ""),
                id=row["id"],
                user_id=row["awarded_by"],
                status="expired" if row["expired"] else "active",
            )
            for row in await services.history(party_id)
        ]

    return items()


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    async def load() -> None:
        for party in ctx.parties[:5]:
            await services.award(ctx.admin, party["id"], ctx.random.randint(10, 500), "Welcome bonus")

    return load()
