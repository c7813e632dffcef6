"""Every write a plugin route makes is audited, structurally: the kernel watches each write
request to a plugin's routes, and one that succeeds without an audit entry of the plugin's own
(and without declaring that it changed nothing) gets an ``unaudited_write`` entry from the
kernel, naming the plugin, the route and the caller."""

from types import SimpleNamespace
from typing import Any

import httpx
from litestar import get, post
from tessera import audit, clock, db
from tessera.app import create_app
from tessera.entities.tables import AuditLog, Notification
from tessera.errors import ValidationFailed
from tessera.hookspecs import hookimpl
from tessera.permissions import Principal


@post("/forgetful", operation_id="sloppy_forgetful", status_code=201)
async def forgetful(principal: Principal) -> dict[str, Any]:
    """Writes a row and forgets the audit entry."""
    await Notification.insert(
        Notification(user_id=principal.user_id, kind="x", title="t", created_at=clock.now())
    )
    return {}


@post("/careful", operation_id="sloppy_careful", status_code=201)
async def careful(principal: Principal) -> dict[str, Any]:
    """Writes a row with its audit entry."""
    async with db.transaction():
        rows = await Notification.insert(
            Notification(user_id=principal.user_id, kind="x", title="t", created_at=clock.now())
        ).returning(Notification.id)
        await audit.record("create", "sloppy.note", rows[0]["id"])
    return {}


@post("/same-again", operation_id="sloppy_same_again", status_code=200)
async def same_again(principal: Principal) -> dict[str, Any]:
    """Asked to store what is stored already: changes nothing, and says so."""
    audit.unchanged()
    return {}


@post("/refused", operation_id="sloppy_refused", status_code=201)
async def refused(principal: Principal) -> dict[str, Any]:
    """Refuses the request."""
    raise ValidationFailed.field("name", "is required")


@get("/read", operation_id="sloppy_read")
async def read(principal: Principal) -> dict[str, Any]:
    """Reads."""
    return {}


def _sloppy() -> SimpleNamespace:
    def tessera_routes() -> list[Any]:
        return [forgetful, careful, same_again, refused, read]

    def tessera_permissions() -> dict[str, str]:
        return {"sloppy.write": "Write"}

    return SimpleNamespace(
        tessera_routes=hookimpl(tessera_routes), tessera_permissions=hookimpl(tessera_permissions)
    )


async def test_a_plugin_write_without_an_audit_entry_is_recorded_by_the_kernel(crm: Any) -> None:
    admin = await crm.user("admin")
    settings = crm.settings.with_(plugins=("sloppy",), autoload_plugins=False)
    app = create_app(settings, {"sloppy": _sloppy()}, check_migrations=False)
    await db.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        before = await AuditLog.count()
        for route, status in [
            ("forgetful", 201),
            ("careful", 201),
            ("same-again", 200),
            ("refused", 422),
        ]:
            r = await client.post(f"/api/sloppy/{route}", headers=admin["headers"])
            assert r.status_code == status, r.text
        assert (await client.get("/api/sloppy/read", headers=admin["headers"])).status_code == 200

    entries = await AuditLog.select().where(AuditLog.id > before).order_by(AuditLog.id)
    assert [(e["action"], e["entity"]) for e in entries if e["action"] != "login"] == [
        (audit.UNAUDITED, "sloppy"),  # the forgetful write, recorded by the kernel
        ("create", "sloppy.note"),  # the careful one audited itself: no fallback
    ]
    fallback = entries[0]
    assert fallback["user_id"] == admin["id"]
    assert fallback["detail"] == "POST /api/sloppy/forgetful -> 201"
