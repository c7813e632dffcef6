"""Helpers of the knowledge base plugin's tests."""

from __future__ import annotations

from typing import Any


async def role_user(crm: Any, name: str, permissions: list[str], scope: str = "own") -> dict[str, Any]:
    """A user holding a role with exactly these permissions (created once per database)."""
    from tessera.entities import admin, service
    from tessera.entities.tables import Role

    if not await Role.exists().where(Role.name == name):
        values = {"name": name, "permissions": permissions, "scope": scope}
        await service.create(admin.ROLE, crm.system, values)
    return await crm.user(name, name=name)


async def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def article(crm: Any, editor: dict[str, Any], publisher: dict[str, Any] | None, **body: Any) -> Any:
    """An article written by ``editor``; submitted and published by ``publisher`` when given."""
    row = await ok(await crm.post("/api/knowledge_base/articles", editor, json=body), 201)
    if publisher is not None:
        url = f"/api/knowledge_base/articles/{row['id']}"
        await ok(await crm.post(f"{url}/submit", editor, json={}))
        row = await ok(await crm.post(f"{url}/publish", publisher, json={}))
    return row


async def page(crm: Any, user: dict[str, Any], url: str, status: int = 200) -> str:
    """A web page as ``user`` sees it (signed in with a session; unescaped text)."""
    import html

    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": user["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303, r.text
    try:
        r = await crm.client.get(url)
        assert r.status_code == status, r.text[:800]
        return html.unescape(r.text)
    finally:
        crm.client.cookies.clear()
