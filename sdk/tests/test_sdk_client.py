"""The typed client against a real server: ``tessera serve`` in a child process on a free
loopback port (``live_server``), sharing the test's freshly migrated database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from tessera_sdk import AsyncClient, Client, RetryPolicy, errors, models


async def test_sync_client_round_trip_with_typed_models_pages_and_errors(tessera_app, live_server) -> None:
    admin = await tessera_app.user("admin")
    with live_server.client(admin["token"]) as crm:
        assert crm.me().user_id == admin["id"]
        tag = uuid.uuid4().hex[:8]
        created = [
            crm.parties.create(models.PartyIn(name=f"Client {i}", tags=[tag], relations=["client"]))
            for i in range(5)
        ]
        assert all(isinstance(p, models.PartyOut) for p in created)
        assert isinstance(created[0].created_at, datetime) and created[0].created_at.tzinfo is not None

        # Iteration follows the cursors across pages of two.
        first = crm.parties.page(limit=2, tag=tag)
        assert len(first.items) == 2 and first.next_cursor
        names = [p.name for p in crm.parties.list(page_size=2, tag=tag, order="name")]
        assert names == [f"Client {i}" for i in range(5)]
        assert crm.parties.count(tag=tag) == 5

        party = crm.parties.get(created[0].id)
        changed = crm.parties.update(party.id, models.PartyPatch(website="https://acme.example"), version=1)
        assert changed.website == "https://acme.example" and changed.version == 2
        assert changed.name == "Client 0"  # fields not sent stay as they were

        with pytest.raises(errors.PreconditionFailed) as stale:
            crm.parties.update(party.id, {"website": "https://other.example"}, version=1)
        assert stale.value.status == 412 and stale.value.current_version == 2
        assert isinstance(stale.value, errors.Conflict)  # code catching the old 409 still works
        with pytest.raises(errors.PreconditionFailed):
            crm.parties.delete(party.id, version=1)

        with pytest.raises(errors.ValidationError) as invalid:
            crm.parties.create({"name": "", "status": "nonsense"})
        assert invalid.value.status == 422
        assert invalid.value.errors and all(isinstance(e, errors.FieldError) for e in invalid.value.errors)
        assert set(invalid.value.field_errors) & {"name", "status"}

        with pytest.raises(errors.NotFound):
            crm.parties.get(999_999)

        card = crm.parties.card(party.id)
        assert isinstance(card, models.ClientCard) and card.party.id == party.id

        crm.parties.delete(created[4].id)
        assert crm.parties.count(tag=tag) == 4

        # Routes the SDK has no models for (plugins) are reachable with get/request.
        assert crm.get("/api/health") == {"status": "ok"}
        with pytest.raises(errors.NotFound):
            crm.get("/api/no-such-plugin/things")

    with live_server.client("tsr_not-a-real-token") as stranger, pytest.raises(errors.AuthenticationError):
        stranger.parties.count()

    manager = await tessera_app.user("manager")
    with live_server.client(manager["token"]) as crm, pytest.raises(errors.PermissionDenied) as denied:
        crm.jobs()
    assert denied.value.status == 403 and denied.value.detail


async def test_async_client_is_the_same_api_awaited(tessera_app, live_server) -> None:
    admin = await tessera_app.user("admin")
    async with live_server.async_client(admin["token"]) as crm:
        assert isinstance(crm, AsyncClient)
        tag = uuid.uuid4().hex[:8]
        for i in range(3):
            await crm.parties.create({"name": f"Async {i}", "tags": [tag]})
        seen = [p.name async for p in crm.parties.list(page_size=1, tag=tag, order="name")]
        assert seen == ["Async 0", "Async 1", "Async 2"]
        task = await crm.tasks.create(
            models.TaskIn(
                title="Call back", assignee_id=admin["id"], deadline=datetime(2030, 1, 1, tzinfo=UTC)
            )
        )
        done = await crm.tasks.complete(task.id, result="Called", version=task.version)
        assert done.status == "done" and done.result == "Called"
        with pytest.raises(errors.ValidationError) as invalid:
            await crm.tasks.create({"title": ""})
        assert "title" in invalid.value.field_errors
        # What only the blocking client had before it was generated from this one.
        first = (await crm.parties.page(tag=tag, order="name", limit=1)).items[0]
        exported = await crm.parties.export_csv(tag=tag)
        assert exported.count("Async ") == 3
        stored = await crm.attachments.upload("offer.txt", b"price list", "text/plain", party_id=first.id)
        assert await crm.attachments.download(stored.id) == b"price list"
        assert [h.to_user_id for h in await crm.tasks.handoffs(task.id)] == [admin["id"]]


async def test_retries_429_and_503_and_a_lost_create_makes_no_duplicate(
    tessera_app, live_server, flaky_proxy
) -> None:
    admin = await tessera_app.user("admin")
    # The first attempt reaches the server but its answer is lost (503), the second is
    # throttled (429): the client retries with the same Idempotency-Key and gets the party
    # the first attempt created.
    flaky_proxy.faults = ["lose-503", "429"]
    retry = RetryPolicy(max_retries=4, backoff=0.01, max_backoff=0.05)
    with Client(flaky_proxy.url, admin["token"], retry=retry) as crm:
        party = crm.parties.create({"name": "Exactly once"})
    posts = [r for r in flaky_proxy.seen if r["method"] == "POST"]
    assert len(posts) == 3
    keys = {r["headers"]["idempotency-key"] for r in posts}
    assert len(keys) == 1
    with live_server.client(admin["token"]) as direct:
        assert [p.id for p in direct.parties.list(q="Exactly once")] == [party.id]

    # Reads are retried on 503 too, and the client gives up with a typed error.
    flaky_proxy.seen.clear()
    retry = RetryPolicy(max_retries=2, backoff=0.01, max_backoff=0.05)
    async with AsyncClient(flaky_proxy.url, admin["token"], retry=retry) as async_crm:
        flaky_proxy.faults = ["503", "503"]
        assert (await async_crm.me()).user_id == admin["id"]
        flaky_proxy.faults = ["503", "503", "503", "503"]
        with pytest.raises(errors.ServiceUnavailable) as gave_up:
            await async_crm.me()
    assert gave_up.value.status == 503
    assert len(flaky_proxy.seen) == 3 + 3


@pytest.mark.plugins("probe")
async def test_live_server_serves_the_enabled_plugins(tessera_app, live_server) -> None:
    admin = await tessera_app.user("admin")
    with live_server.client(admin["token"]) as crm:
        assert isinstance(crm.get("/api/probe/marks"), list)
        assert "probe.read" in crm.permissions()
        assert {p["name"]: p["enabled"] for p in crm.plugins()}["probe"] is True
