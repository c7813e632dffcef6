"""Full-text search, on both backends: whoosh (SQLite and PostgreSQL databases) and PostgreSQL
full-text (PostgreSQL databases)."""

from __future__ import annotations

from typing import Any

import pytest
from tessera import db, events
from tessera.app import boot, startup
from tessera.search import service as search

pytestmark = pytest.mark.usefixtures("search_engine")


@pytest.fixture(
    params=["whoosh", pytest.param("postgres", marks=pytest.mark.search_backend("postgres"))],
)
def search_engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def find(crm: Any, user: dict[str, Any], q: str, **params: Any) -> dict[str, Any]:
    r = await crm.get("/api/search", user, params={"q": q, **params})
    assert r.status_code == 200, r.text
    return dict(r.json())


def keys(result: dict[str, Any]) -> set[tuple[str, int]]:
    return {(h["type"], h["id"]) for h in result["hits"]}


async def party(crm: Any, user: dict[str, Any], **values: Any) -> dict[str, Any]:
    r = await crm.post("/api/parties", user, json=values)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def activity(crm: Any, user: dict[str, Any], **values: Any) -> dict[str, Any]:
    values.setdefault("type", "meeting")
    values.setdefault("starts_at", "2026-03-02T10:00:00Z")
    r = await crm.post("/api/activities", user, json=values)
    assert r.status_code == 201, r.text
    return dict(r.json())


# --------------------------------------------------------------------------- entities indexed


async def test_every_kernel_entity_is_found(crm: Any) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Ромашка")
    r = await crm.post(
        "/api/contacts", admin, json={"party_id": p["id"], "name": "Пётр Сидоренко", "position": "бухгалтер"}
    )
    assert r.status_code == 201, r.text
    contact = r.json()
    a = await activity(
        crm,
        admin,
        party_id=p["id"],
        subject="Встреча в офисе",
        description="обсудили сроки",
        agreements="подписать договор поставки до пятницы",
    )
    r = await crm.post(
        "/api/tasks", admin, json={"title": "Подготовить коммерческое предложение", "party_id": p["id"]}
    )
    assert r.status_code == 201, r.text
    task = r.json()
    r = await crm.post(
        "/api/notes", admin, json={"body": "Клиент просит скидку на логистику", "party_id": p["id"]}
    )
    assert r.status_code == 201, r.text
    note = r.json()

    assert ("party", p["id"]) in keys(await find(crm, admin, "Ромашка"))
    assert keys(await find(crm, admin, "Сидоренко")) == {("contact", contact["id"])}
    found = await find(crm, admin, "поставки")
    assert keys(found) == {("activity", a["id"])}
    assert "<mark>поставки</mark>" in found["hits"][0]["snippet"]
    assert keys(await find(crm, admin, "коммерческое")) == {("task", task["id"])}
    assert keys(await find(crm, admin, "скидку")) == {("note", note["id"])}


async def test_results_are_grouped_by_type_with_facets(crm: Any) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Альфа Логистика")
    await activity(crm, admin, party_id=p["id"], subject="Звонок по логистике")
    await activity(crm, admin, party_id=p["id"], subject="Логистика: тарифы")
    result = await find(crm, admin, "логистика")
    assert result["total"] == 3
    assert result["facets"]["type"] == {"party": 1, "activity": 2}
    groups = {g["type"]: g for g in result["groups"]}
    assert groups["activity"]["total"] == 2 and len(groups["activity"]["hits"]) == 2
    assert groups["party"]["label"] == "Parties"
    only = await find(crm, admin, "логистика", type="activity")
    assert {h["type"] for h in only["hits"]} == {"activity"}
    assert only["total"] == 2


async def test_filters_by_owner_and_date(crm: Any) -> None:
    admin = await crm.user("admin")
    other = await crm.user("manager")
    await activity(crm, admin, subject="Тендер март", starts_at="2026-03-05T10:00:00Z")
    late = await activity(crm, admin, subject="Тендер май", starts_at="2026-05-05T10:00:00Z")
    mine = await activity(
        crm, admin, subject="Тендер чужой", starts_at="2026-05-06T10:00:00Z", owner_id=other["id"]
    )
    result = await find(crm, admin, "тендер", date_from="2026-04-01T00:00:00Z")
    assert keys(result) == {("activity", late["id"]), ("activity", mine["id"])}
    result = await find(crm, admin, "тендер", owner_id=other["id"])
    assert keys(result) == {("activity", mine["id"])}
    assert result["facets"]["owner"] == {str(other["id"]): 1}


# --------------------------------------------------------------------------- languages


async def test_russian_ukrainian_english_inflections(crm: Any) -> None:
    admin = await crm.user("admin")
    ru1 = await activity(crm, admin, subject="Условия договора")
    ru2 = await activity(crm, admin, subject="Реестр договоров")
    uk = await activity(crm, admin, subject="Підписання договорів з постачальником")
    en = await activity(crm, admin, subject="Contracts renewal call")
    assert keys(await find(crm, admin, "договор")) >= {("activity", ru1["id"]), ("activity", ru2["id"])}
    assert ("activity", uk["id"]) in keys(await find(crm, admin, "договір"))
    assert ("activity", uk["id"]) in keys(await find(crm, admin, "постачальника"))
    assert keys(await find(crm, admin, "contract")) == {("activity", en["id"])}
    assert keys(await find(crm, admin, "renewing")) == {("activity", en["id"])}


async def test_phrase_query_needs_adjacent_words(crm: Any) -> None:
    admin = await crm.user("admin")
    near = await activity(crm, admin, subject="Договор поставки оборудования")
    far = await activity(crm, admin, subject="Поставки идут, договор позже")
    assert keys(await find(crm, admin, "договор поставки")) == {
        ("activity", near["id"]),
        ("activity", far["id"]),
    }
    assert keys(await find(crm, admin, '"договор поставки"')) == {("activity", near["id"])}


async def test_phone_matches_in_any_format(crm: Any) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Вектор", phones=[{"number": "+7 (495) 123-45-67"}])
    for q in ["84951234567", "+7 495 123 45 67", "74951234567", "(495) 123-45-67", "123-45-67"]:
        assert keys(await find(crm, admin, q)) == {("party", p["id"])}, q
    assert keys(await find(crm, admin, "84951234568")) == set()


async def test_email_and_name_prefix(crm: Any) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Петренко и партнёры", emails=[{"address": "Office@Petrenko.UA"}])
    assert keys(await find(crm, admin, "office@petrenko.ua")) == {("party", p["id"])}
    assert keys(await find(crm, admin, "Петрен")) == {("party", p["id"])}
    assert keys(await find(crm, admin, "партнеры")) == {("party", p["id"])}  # ё folded


@pytest.mark.parametrize("typo", ["Ромошка"])
async def test_typo_in_a_name(crm: Any, search_engine: str, typo: str) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Ромашка")
    found = keys(await find(crm, admin, typo))
    if search_engine == "whoosh":
        assert found == {("party", p["id"])}
    else:  # PostgreSQL full-text has no edit-distance matching (documented)
        assert found == set()


# --------------------------------------------------------------------------- visibility


async def test_own_scope_user_never_sees_another_users_party(crm: Any) -> None:
    alice = await crm.user("manager", name="Alice")
    bob = await crm.user("manager", name="Bob")
    secret = await party(crm, bob, name="Квазар", tags=["секретный"])
    await activity(crm, bob, party_id=secret["id"], subject="Квазар: переговоры", agreements="скидка квазар")
    result = await find(crm, alice, "квазар")
    assert result["hits"] == [] and result["total"] == 0 and result["groups"] == []
    assert result["facets"]["type"] == {}
    assert "квазар" not in str(result).lower().replace("'квазар'", "")
    bob_result = await find(crm, bob, "квазар")
    assert bob_result["total"] == 2


async def test_team_scope_and_reassigning_a_party_moves_its_history(crm: Any) -> None:
    team = await crm.team()
    head = await crm.user("head", team_id=team["id"])
    member = await crm.user("manager", team_id=team["id"])
    outsider = await crm.user("manager")
    p = await party(crm, outsider, name="Гелиос")
    a = await activity(crm, outsider, party_id=p["id"], subject="Гелиос: замер")
    assert keys(await find(crm, head, "гелиос")) == set()
    admin = await crm.user("admin")
    r = await crm.patch(
        f"/api/parties/{p['id']}", admin, json={"owner_id": member["id"], "team_id": team["id"]}
    )
    assert r.status_code == 200, r.text
    # The activity stays owned by the outsider but is now visible through its party.
    assert keys(await find(crm, head, "гелиос")) == {("party", p["id"]), ("activity", a["id"])}
    assert keys(await find(crm, member, "гелиос")) == {("party", p["id"]), ("activity", a["id"])}


async def test_type_permission_is_required(crm: Any) -> None:
    admin = await crm.user("admin")
    await party(crm, admin, name="Орбита")
    r = await crm.post(
        "/api/roles",
        admin,
        json={"name": "searcher", "permissions": ["search.use", "activity.read"], "scope": "all"},
    )
    assert r.status_code == 201, r.text
    limited = await crm.user("searcher")
    assert (await find(crm, limited, "орбита"))["total"] == 0
    r = await crm.post(
        "/api/roles", admin, json={"name": "blind", "permissions": ["party.read"], "scope": "all"}
    )
    blind = await crm.user("blind")
    r = await crm.get("/api/search", blind, params={"q": "орбита"})
    assert r.status_code == 403


# --------------------------------------------------------------------------- bounded work per query


@pytest.fixture
def small_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting and ranking caps small enough to exceed with a handful of records (the real ones,
    2,000 and 500, bound the work of a query over a million documents)."""
    import tessera.search.postgres_backend as pb
    import tessera.search.whoosh_backend as wb

    monkeypatch.setattr(pb, "COUNT_CAP", 4)
    monkeypatch.setattr(wb, "COUNT_CAP", 4)
    monkeypatch.setattr(pb, "RANK_CAP", 2)


@pytest.mark.usefixtures("small_caps")
async def test_a_record_named_after_the_query_comes_first_however_many_mention_it(crm: Any) -> None:
    admin = await crm.user("admin")
    named = await party(crm, admin, name="Стройресурс")
    other = await party(crm, admin, name="Вектор")
    mentions = [
        await activity(crm, admin, party_id=other["id"], subject=f"Звонок {i}", description="про стройресурс")
        for i in range(5)
    ]
    result = await find(crm, admin, "стройресурс")
    # More match than are counted and ranked: the total says "at least", yet the party whose
    # name is the query is on the page, first, and the newest mentions fill the rest.
    assert result["total"] == 4 and result["total_is_lower_bound"] is True
    assert (result["hits"][0]["type"], result["hits"][0]["id"]) == ("party", named["id"])
    assert ("activity", mentions[-1]["id"]) in keys(result)
    # A prefix of the name finds it the same way.
    assert (await find(crm, admin, "Стройрес"))["hits"][0]["id"] == named["id"]


@pytest.mark.usefixtures("small_caps")
async def test_counting_cap_applies_to_visible_records_only(crm: Any) -> None:
    admin = await crm.user("admin")
    alice = await crm.user("manager", name="Alice")
    bob = await crm.user("manager", name="Bob")
    for i in range(6):
        await activity(crm, bob, subject=f"Аукцион {i}")
    mine = await activity(crm, alice, subject="Аукцион Алисы")
    seen = await find(crm, alice, "аукцион")
    assert keys(seen) == {("activity", mine["id"])}
    assert seen["total"] == 1 and seen["total_is_lower_bound"] is False
    assert seen["facets"]["owner"] == {str(alice["id"]): 1}
    everything = await find(crm, admin, "аукцион")
    assert everything["total"] == 4 and everything["total_is_lower_bound"] is True


@pytest.mark.usefixtures("small_caps")
@pytest.mark.parametrize("plan", ["sorted", "walk", "storage", "visible"])
async def test_every_query_plan_keeps_visibility_and_ranking(
    crm: Any, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PostgreSQL backend picks how to find candidates from the planner's estimate (a rare
    word, a common one, in between, a caller who sees few documents); thresholds are set here so
    that this small database takes each path. Every path filters visibility inside the query."""
    import tessera.search.postgres_backend as pb

    never, always = -1, 10**9
    thresholds = {
        "sorted": (always, 2.0, never),
        "walk": (never, 0.0, never),
        "storage": (never, 2.0, never),
        "visible": (never, 2.0, always),
    }[plan]
    for name, value in zip(("SORT_UP_TO", "WALK_FROM", "VISIBLE_UP_TO"), thresholds, strict=True):
        monkeypatch.setattr(pb, name, value)
    alice = await crm.user("manager", name="Alice")
    bob = await crm.user("manager", name="Bob")
    named = await party(crm, alice, name="Уралтех")
    for i in range(6):
        await activity(crm, alice, subject=f"Встреча {i}", description="поставка для уралтех")
    hidden = await activity(crm, bob, subject="Уралтех у Боба", description="уралтех")
    seen = await find(crm, alice, "уралтех")
    assert ("activity", hidden["id"]) not in keys(seen)
    assert (seen["hits"][0]["type"], seen["hits"][0]["id"]) == ("party", named["id"])
    assert seen["total"] == 4 and seen["total_is_lower_bound"] is True
    assert set(seen["facets"]["owner"]) == {str(alice["id"])}
    bobs = await find(crm, bob, "уралтех")
    assert keys(bobs) == {("activity", hidden["id"])} and bobs["total"] == 1
    assert "поставка" not in str(bobs)  # no snippet of Alice's records


@pytest.mark.usefixtures("small_caps")
@pytest.mark.parametrize("plan", ["in-query", "from-visible"])
async def test_whoosh_plans_for_a_caller_who_sees_few_documents(
    crm: Any, search_engine: str, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """whoosh matches an own-scope caller's query either with the access list inside the query or,
    when the access list holds few documents, from those documents (the word postings decoded only
    where they are); the threshold is set so this small index takes each path. Both show only the
    caller's records, count and facet only them, and rank the record named after the query first."""
    if search_engine != "whoosh":
        pytest.skip("the access-list-driven plan is the whoosh backend's")
    import tessera.search.whoosh_backend as wb

    monkeypatch.setattr(wb, "ACL_DRIVEN", -1 if plan == "in-query" else 10**9)
    monkeypatch.setattr(wb, "RANK_CAP", 2)
    alice = await crm.user("manager", name="Alice")
    bob = await crm.user("manager", name="Bob")
    named = await party(crm, alice, name="Уралтех")
    mentions, hidden_ones = [], []
    for i in range(6):  # interleaved, so that Bob's records share index segments with Alice's
        mentions.append(
            await activity(crm, alice, subject=f"Встреча {i}", description="поставка для уралтех")
        )
        hidden_ones.append(
            await activity(crm, bob, subject=f"Уралтех у Боба {i}", description="поставка уралтех")
        )
    bobs_keys = {("activity", h["id"]) for h in hidden_ones}
    seen = await find(crm, alice, "уралтех")
    assert not keys(seen) & bobs_keys
    assert (seen["hits"][0]["type"], seen["hits"][0]["id"]) == ("party", named["id"])
    assert ("activity", mentions[-1]["id"]) in keys(seen)
    assert seen["total"] == 4 and seen["total_is_lower_bound"] is True
    assert set(seen["facets"]["owner"]) == {str(alice["id"])}
    # Two words: both must match, still only Alice's records; a type filter applies too.
    both = await find(crm, alice, "поставка уралтех")
    assert ("party", named["id"]) not in keys(both) and not keys(both) & bobs_keys
    assert keys(both) and keys(both) <= {("activity", m["id"]) for m in mentions}
    # A phrase: candidates from Alice's records, positions checked by whoosh.
    phrase = await find(crm, alice, '"поставка для уралтех"')
    assert keys(phrase) and keys(phrase) <= {("activity", m["id"]) for m in mentions}
    assert (await find(crm, alice, '"уралтех у боба"'))["total"] == 0
    assert (await find(crm, alice, '"уралтех поставка"'))["total"] == 0  # both words, other order
    parties = await find(crm, alice, "уралтех", type="party")
    assert keys(parties) == {("party", named["id"])} and parties["total"] == 1
    # A typo finds the name through the retry, on this path as well.
    typo = await find(crm, alice, "Уралтек")
    assert typo["hits"] and (typo["hits"][0]["type"], typo["hits"][0]["id"]) == ("party", named["id"])
    bobs = await find(crm, bob, "поставка")
    assert keys(bobs) and keys(bobs) <= bobs_keys and bobs["total"] == 4
    assert "Встреча" not in str(bobs) and set(bobs["facets"]["owner"]) == {str(bob["id"])}


@pytest.mark.search_backend("postgres")
async def test_many_matches_give_estimated_totals_without_leaking(
    crm: Any, search_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the planner expects many matches (here: every estimate counts as many), only the
    ranking pool is fetched; totals and facets are estimates, still of visible records only."""
    if search_engine != "postgres":
        pytest.skip("the estimate path is the PostgreSQL backend's")
    import tessera.search.postgres_backend as pb

    monkeypatch.setattr(pb, "SORT_UP_TO", -1)
    monkeypatch.setattr(pb, "VISIBLE_UP_TO", -1)
    monkeypatch.setattr(pb, "WALK_FROM", 2.0)
    monkeypatch.setattr(pb, "RANK_CAP", 3)
    alice = await crm.user("manager", name="Alice")
    bob = await crm.user("manager", name="Bob")
    for i in range(5):
        await activity(crm, alice, subject=f"Монтаж {i}")
    secret = await activity(crm, bob, subject="Монтаж у Боба")
    result = await find(crm, alice, "монтаж", limit=2)
    assert len(result["hits"]) == 2 and ("activity", secret["id"]) not in keys(result)
    assert result["total"] >= 3
    assert set(result["facets"]["owner"]) == {str(alice["id"])}
    assert set(result["facets"]["type"]) == {"activity"}


# --------------------------------------------------------------------------- index upkeep


async def test_update_and_delete_reach_the_index(crm: Any) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Старое Название")
    r = await crm.patch(f"/api/parties/{p['id']}", admin, json={"name": "Новое Имя"})
    assert r.status_code == 200
    assert keys(await find(crm, admin, "старое")) == set()
    assert keys(await find(crm, admin, "новое")) == {("party", p["id"])}
    a = await activity(crm, admin, party_id=p["id"], subject="Звонок новому клиенту")
    r = await crm.delete(f"/api/activities/{a['id']}", admin)
    assert r.status_code == 204, r.text
    assert keys(await find(crm, admin, "звонок")) == set()
    await activity(crm, admin, party_id=p["id"], subject="Звонок снова")
    r = await crm.delete(f"/api/parties/{p['id']}", admin)
    assert r.status_code == 204, r.text
    # The party and the activities deleted with it are gone.
    assert (await find(crm, admin, "звонок"))["total"] == 0
    assert (await find(crm, admin, "новое"))["total"] == 0


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


async def crash_listener(event: Any) -> None:
    raise Crash


async def test_crash_between_commit_and_indexing_is_repaired_at_restart(crm: Any) -> None:
    admin = await crm.user("admin")
    events.configure(crm.pm, listeners=[crash_listener])  # the indexing step dies
    with pytest.raises(Crash):
        await party(crm, admin, name="Феникс")
    r = await crm.get("/api/parties", admin, params={"q": "Феникс"})
    assert r.status_code == 200 and len(r.json()["items"]) == 1  # the write committed
    # Restart: boot wires the indexer again, start-up redelivers what was left undelivered.
    await db.stop()  # the old process's pool closes with it
    boot(crm.settings)
    await startup()
    assert [h["title"] for h in (await find(crm, admin, "феникс"))["hits"]] == ["Феникс"]


async def _create_while_index_is_broken(
    crm: Any, admin: Any, search_engine: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    if search_engine == "whoosh":
        # Another process holds the index's write lock for longer than a writer waits.
        import tessera.search.whoosh_backend as wb
        from whoosh.index import open_dir

        monkeypatch.setattr(wb, "WRITE_LOCK_TIMEOUT", 0.2)
        lock = open_dir(str(crm.settings.data_dir / "search" / "whoosh")).lock("WRITELOCK")
        assert lock.acquire()
        try:
            created = await party(crm, admin, name="Меридиан")
            await search.settled()  # indexing runs after the answer: let it meet the lock
            return created
        finally:
            lock.release()
    # The index table is unavailable (an operator is rebuilding it by hand).
    await db.raw("ALTER TABLE search_document RENAME TO search_document_away")
    try:
        created = await party(crm, admin, name="Меридиан")
        await search.settled()
        return created
    finally:
        await db.raw("ALTER TABLE search_document_away RENAME TO search_document")


async def test_failed_indexing_is_retried_without_losing_the_write(
    crm: Any, search_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await crm.user("admin")
    p = await _create_while_index_is_broken(crm, admin, search_engine, monkeypatch)
    assert await search.pending_count() == 1
    r = await crm.get(f"/api/parties/{p['id']}", admin)
    assert r.status_code == 200  # the database write is never lost
    assert keys(await find(crm, admin, "меридиан")) == {("party", p["id"])}  # retried
    assert await search.pending_count() == 0


async def test_more_waiting_records_than_one_statement_can_bind_are_queued_and_indexed(crm: Any) -> None:
    """A bulk write (an import, a plugin's backfill) can leave tens of thousands of records to
    (re)index at once; PostgreSQL's driver binds at most 32,767 values per statement."""
    admin = await crm.user("admin")
    kept = await party(crm, admin, name="Гиперион")
    refs = [("party", i) for i in range(kept["id"], kept["id"] + 33_000)]
    await search.enqueue(refs)
    assert await search.pending_count() == 33_000
    # The record that exists is indexed; the 32,999 that do not lose any documents they had.
    await search.index_records(refs)
    assert keys(await find(crm, admin, "гиперион")) == {("party", kept["id"])}
    await db.raw("DELETE FROM search_pending")


async def test_the_worker_retries_failed_indexing_without_anyone_searching(
    crm: Any, search_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tessera.scheduler import sync_jobs, tick

    admin = await crm.user("admin")
    await _create_while_index_is_broken(crm, admin, search_engine, monkeypatch)
    assert await search.pending_count() == 1
    await sync_jobs(crm.pm)
    assert "kernel.search_retry" in await tick(crm.pm)
    assert await search.pending_count() == 0


async def test_reindex_rebuilds_a_missing_index(crm: Any, search_engine: str) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Сириус")
    if search_engine == "whoosh":
        import shutil

        shutil.rmtree(crm.settings.data_dir / "search")
    else:
        await db.raw("DELETE FROM search_document")
        await db.raw("DELETE FROM search_state")
    await db.stop()  # the old process's pool closes with it
    boot(crm.settings)
    await startup()
    assert keys(await find(crm, admin, "сириус")) == {("party", p["id"])}


async def test_reindex_of_one_type_keeps_the_others(crm: Any) -> None:
    admin = await crm.user("admin")
    p = await party(crm, admin, name="Полярис")
    a = await activity(crm, admin, party_id=p["id"], subject="Полярис встреча")
    written = await search.reindex(["activity"])
    assert written == 1
    assert keys(await find(crm, admin, "полярис")) == {("party", p["id"]), ("activity", a["id"])}


async def test_reindex_purges_documents_of_records_gone_behind_its_back(crm: Any, search_engine: str) -> None:
    """A record removed without an event (by hand in the database) is still found until a
    rebuild, which purges what it did not write again; a rebuild with nothing stale keeps
    everything."""
    admin = await crm.user("admin")
    gone = await party(crm, admin, name="Андромеда один")
    kept = await party(crm, admin, name="Андромеда два")
    assert await search.reindex() >= 2
    assert keys(await find(crm, admin, "андромеда")) == {("party", gone["id"]), ("party", kept["id"])}
    await db.raw("DELETE FROM party WHERE id = {}", gone["id"])
    assert keys(await find(crm, admin, "андромеда")) == {("party", gone["id"]), ("party", kept["id"])}
    await search.reindex()
    assert keys(await find(crm, admin, "андромеда")) == {("party", kept["id"])}


async def test_search_before_anything_was_indexed(crm: Any, search_engine: str) -> None:
    """A fresh installation: nothing indexed yet, search answers an empty result, not an error."""
    user = await crm.user("manager")
    result = await find(crm, user, "Ромашка")
    assert result["hits"] == [] and result["total"] == 0


async def test_whoosh_indexing_process_is_restarted_after_it_died(crm: Any) -> None:
    """Index changes are applied by a child process; when it dies (killed, out of memory) the
    next change starts a new one and nothing acknowledged is missing from search."""
    from tessera.search import indexer

    if crm.settings.search_backend != "whoosh":
        pytest.skip("the PostgreSQL backend indexes inside the database")
    user = await crm.user("manager")
    first = await party(crm, user, name="Первый Гранит")
    assert indexer._child, "the change went through the indexing process"
    indexer._child[0].process.kill()
    indexer._child[0].process.wait()
    second = await party(crm, user, name="Второй Гранит")
    assert keys(await find(crm, user, "Гранит")) == {("party", first["id"]), ("party", second["id"])}


def test_whoosh_indexing_process_ends_with_the_server(tmp_path: Any) -> None:
    """A server killed with SIGKILL leaves no indexing process behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from tessera.search import indexer, whoosh_backend\n"
        "from tessera.search.documents import Document\n"
        f"searcher = whoosh_backend.WhooshSearcher(__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "searcher._open_sync()\n"
        "indexer.call(str(searcher.directory), [], [], 0.0, whoosh_backend.WRITE_LOCK_TIMEOUT)\n"
        "print(indexer._child[0].process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    child = int(server.stdout.readline())
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the indexing process outlived the server")


def test_writes_before_start_up_create_the_index(tmp_path: Any) -> None:
    """`tessera demo` and the CLI write before any server opened the index: the first change
    creates it instead of failing into the retry queue."""
    import asyncio

    from tessera.search import whoosh_backend
    from tessera.search.documents import Document

    searcher = whoosh_backend.WhooshSearcher(tmp_path / "whoosh")
    doc = Document(type="party", id=1, title="Ромашка", source="party:1")
    asyncio.run(searcher.replace(["party:1"], [doc], 0.0))
    assert asyncio.run(searcher.count()) == 1
