"""Hook implementations of the probe plugin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import get
from tessera import clock
from tessera.hookspecs import hookimpl
from tessera.permissions import Principal
from tessera.scheduler import JobContext, JobSpec

from tessera_probe.tables import ProbeMark


@get("/marks", operation_id="probe_marks")
async def marks(principal: Principal, kind: str | None = None) -> list[dict[str, Any]]:
    """What the probe recorded (needs probe.read)."""
    principal.require("probe.read")
    query = ProbeMark.select(ProbeMark.kind, ProbeMark.party_id, ProbeMark.detail).order_by(ProbeMark.id)
    if kind:
        query = query.where(ProbeMark.kind == kind)
    return await query


async def heartbeat(ctx: JobContext) -> None:
    # Idempotent per due time: a second run for the same scheduled time adds nothing.
    detail = ctx.scheduled_for.isoformat()
    if not await ProbeMark.exists().where(ProbeMark.kind == "heartbeat", ProbeMark.detail == detail):
        await ProbeMark.insert(ProbeMark(kind="heartbeat", detail=detail, at=clock.now()))


@hookimpl
def tessera_tables() -> str:
    return "tessera_probe.piccolo_app"


@hookimpl
def tessera_routes() -> list[Any]:
    return [marks]


@hookimpl
def tessera_permissions() -> dict[str, str]:
    return {"probe.read": "Read the probe's marks"}


@hookimpl
def tessera_jobs() -> list[JobSpec]:
    return [JobSpec("probe.heartbeat", heartbeat, every=timedelta(minutes=5), description="Probe heartbeat")]


async def background_mark(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Background job ``probe.mark``: one mark per run, naming the job and the attempt."""
    await ProbeMark.insert(
        ProbeMark(kind="background", detail=f"{payload['label']}#{ctx.attempt}", at=clock.now())
    )
    return {"label": payload["label"]}


@hookimpl
def tessera_background_jobs() -> dict[str, Any]:
    return {"probe.mark": background_mark}


@hookimpl
def tessera_custom_field_targets() -> dict[str, dict[str, Any]]:
    return {"party": {"probe_score": {"type": "integer", "minimum": 0, "maximum": 100}}, "probe_thing": {}}


@hookimpl
def tessera_on_event(event: Any) -> Any:
    async def record() -> None:
        await ProbeMark.insert(
            ProbeMark(kind="event", party_id=event.entity_id, detail=event.name, at=clock.now())
        )

    return record()


@hookimpl
def tessera_timeline_items(party_id: int) -> Any:
    async def items() -> list[dict[str, Any]]:
        return [
            {
                "kind": "probe.visit",
                "at": clock.now() - timedelta(days=400),
                "title": f"Probe saw party {party_id}",
            }
        ]

    return items()


@hookimpl
def tessera_party_participants(party_id: int) -> list[int]:
    return []


@hookimpl
def tessera_demo_data(ctx: Any) -> Any:
    async def load() -> None:
        await ProbeMark.insert(ProbeMark(kind="demo", detail=str(len(ctx.parties)), at=clock.now()))

    return load()
