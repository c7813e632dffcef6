"""The plugin author's kit: fixtures (tessera_app, api_client, as_user, frozen_clock) and
the declaration helpers."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from piccolo.columns import Varchar
from piccolo.table import Table
from tessera_sdk import errors, models
from tessera_sdk.plugin import job, permissions, routes, tables_app, timeline_item


async def test_api_client_is_an_admin_and_as_user_gives_role_bound_clients(
    tessera_app, api_client, as_user, frozen_clock
) -> None:
    party = await api_client.parties.create(models.PartyIn(name="Kit client"))
    assert party.created_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the frozen clock
    frozen_clock.advance(days=1)
    changed = await api_client.parties.update(party.id, {"website": "https://kit.example"})
    assert changed.updated_at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)

    manager = await as_user(role="manager")
    assert manager.user is not None and (await manager.me()).user_id == manager.user["id"]
    with pytest.raises(errors.PermissionDenied):
        await manager.jobs()
    # Managers see their own records only: the admin's party is invisible, not forbidden.
    with pytest.raises(errors.NotFound):
        await manager.parties.get(party.id)
    # SQLite unless CRM_TEST_POSTGRES names a server, and the app really runs on that engine.
    expected = "postgres" if os.environ.get("CRM_TEST_POSTGRES") else "sqlite"
    assert tessera_app.backend == expected
    scheme = tessera_app.settings.resolved_database_url.split(":", 1)[0]
    assert scheme == {"sqlite": "sqlite", "postgres": "postgresql"}[expected]


@pytest.mark.plugins("probe")
async def test_the_plugins_marker_enables_plugins_for_tessera_app(tessera_app, api_client) -> None:
    assert "probe.read" in await api_client.permissions()
    before = await api_client.get("/api/probe/marks", kind="event")
    party = await api_client.parties.create(models.PartyIn(name="Seen by the probe"))
    # The probe's event hook ran: the plugin is wired in, not only its routes.
    after = await api_client.get("/api/probe/marks", kind="event")
    assert after == [*before, {"kind": "event", "party_id": party.id, "detail": "party.created"}]


async def test_tessera_app_runs_the_kernel_alone_by_default(api_client) -> None:
    assert not [p for p in await api_client.permissions() if p.startswith("probe.")]


def test_permissions_helper_prefixes_and_checks() -> None:
    assert permissions("loyalty", {"read": "See points", "loyalty.award": "Award"}) == {
        "loyalty.read": "See points",
        "loyalty.award": "Award",
    }
    with pytest.raises(ValueError, match="description"):
        permissions("loyalty", {"read": " "})
    with pytest.raises(ValueError):
        permissions("Loyalty", {"read": "x"})


def test_tables_app_refuses_tables_without_the_plugin_prefix(tmp_path) -> None:
    class KitThing(Table, tablename="kit_thing"):
        name = Varchar()

    class Unprefixed(Table, tablename="thing"):
        name = Varchar()

    config = tables_app("kit", [KitThing], str(tmp_path / "piccolo_app.py"))
    assert config.app_name == "kit" and config.migration_dependencies == ["tessera.piccolo_app"]
    assert config.migrations_folder_path == str(tmp_path / "piccolo_migrations")
    with pytest.raises(ValueError, match="prefix"):
        tables_app("kit", [Unprefixed], str(tmp_path / "piccolo_app.py"))


def test_routes_job_and_timeline_helpers_catch_mistakes() -> None:
    from litestar import get

    @get("/documented", operation_id="kit_documented")
    async def documented() -> dict[str, str]:
        """Documented."""
        return {}

    @get("/bare")
    async def bare() -> dict[str, str]:
        return {}

    assert routes(documented) == [documented]
    with pytest.raises(ValueError, match="operation_id"):
        routes(bare)

    async def tick(ctx) -> None:
        """Tick once."""

    spec = job("kit.tick", tick, every=timedelta(minutes=5))
    assert spec.description == "Tick once." and spec.schedule == "every 300s"
    with pytest.raises(ValueError):
        job("tick", tick, every=timedelta(minutes=5))

    item = timeline_item("kit.seen", datetime(2026, 1, 1, tzinfo=UTC), "Seen")
    assert item["kind"] == "kit.seen" and item["detail"] == ""
    with pytest.raises(ValueError, match="timezone"):
        timeline_item("kit.seen", datetime(2026, 1, 1), "Seen")
