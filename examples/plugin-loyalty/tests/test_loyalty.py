"""Tests of the loyalty plugin, written with the tessera_sdk kit. They run against the
plugin as installed (``pip install ./examples/plugin-loyalty``), not the source folder."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import tessera_loyalty
from tessera.scheduler import sync_jobs, tick
from tessera_sdk import errors
from tessera_sdk.contract import CHECKS

pytestmark = pytest.mark.plugins("loyalty")


def test_the_plugin_is_installed_not_imported_from_the_source_tree() -> None:
    source = Path(__file__).resolve().parents[1]
    assert not Path(tessera_loyalty.__file__).resolve().is_relative_to(source), (
        "tessera_loyalty is imported from the source folder: install it with "
        "`pip install ./examples/plugin-loyalty` (./run test does)"
    )


async def test_award_points_and_read_the_balance(api_client) -> None:
    party = await api_client.parties.create({"name": "Loyal Ltd"})
    award = await api_client.post(
        "/api/loyalty/awards", {"party_id": party.id, "points": 120, "reason": "Order"}
    )
    assert award["points"] == 120
    await api_client.post("/api/loyalty/awards", {"party_id": party.id, "points": 30})
    assert (await api_client.get(f"/api/loyalty/balance/{party.id}"))["points"] == 150

    with pytest.raises(errors.ValidationError) as invalid:
        await api_client.post("/api/loyalty/awards", {"party_id": party.id, "points": 0})
    assert "points" in invalid.value.field_errors


async def test_users_without_the_permission_cannot_award(api_client, as_user) -> None:
    party = await api_client.parties.create({"name": "Guarded"})
    manager = await as_user(role="manager")
    with pytest.raises(errors.PermissionDenied):
        await manager.post("/api/loyalty/awards", {"party_id": party.id, "points": 5})


async def test_awards_show_on_the_client_card(api_client, frozen_clock) -> None:
    party = await api_client.parties.create({"name": "Card client"})
    await api_client.post("/api/loyalty/awards", {"party_id": party.id, "points": 40, "reason": "Referral"})
    card = await api_client.parties.card(party.id)
    items = [i for i in card.timeline if i.source == "loyalty"]
    assert [(i.kind, i.title, i.at) for i in items] == [
        ("loyalty.award", "+40 loyalty points: Referral", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    ]


async def test_points_expire_after_a_year_when_the_job_runs(tessera_app, api_client, frozen_clock) -> None:
    party = await api_client.parties.create({"name": "Expiring"})
    await api_client.post("/api/loyalty/awards", {"party_id": party.id, "points": 70})
    await sync_jobs(tessera_app.pm)
    frozen_clock.advance(days=366)
    ran = await tick(tessera_app.pm, tessera_app.settings)
    assert "loyalty.expire_points" in ran
    assert (await api_client.get(f"/api/loyalty/balance/{party.id}"))["points"] == 0
    card = await api_client.parties.card(party.id)
    assert [i.status for i in card.timeline if i.source == "loyalty"] == ["expired"]


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_plugin_passes_the_contract(check: str, tmp_path: Path) -> None:
    CHECKS[check]("loyalty", tmp_path)
