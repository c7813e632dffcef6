"""Import through the API (issue 16.7): a CSV or XLSX file of parties with contact persons runs
as a background job through the CLI's importer; a dry run reports the bad rows by line, a real
run imports the rest, duplicates (tax id, e-mail, phone) are skipped, and a worker killed in the
middle leaves whole chunks that the retry continues from without importing a row twice."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from entity_helpers import field_errors
from tessera import imports, jobs
from tessera.entities.tables import Activity, BackgroundJob, Contact, ExternalRef, Party, Task
from tessera_sdk import AsyncClient
from tessera_sdk.testing import PASSWORD

HEADER = "Наименование,ИНН,Телефон,E-mail,Статус,Контактное лицо,Должность,Телефон контакта\n"


def _csv(good: int, bad_at: dict[int, str] | None = None) -> tuple[bytes, list[int]]:
    """``good`` + len(bad_at) rows; row n (1-based) from ``bad_at`` is broken that way.
    Returns the file and the file lines of the bad rows."""
    bad_at = bad_at or {}
    lines = [HEADER]
    bad_lines = []
    total = good + len(bad_at)
    for n in range(1, total + 1):
        name, tax, phone, email, status = (
            f"ООО Ромашка {n}",
            f"77{n:08d}",
            f"8 (495) 100-{n:02d}-{n % 100:02d}",
            f"info{n}@romashka{n}.ru",
            "текущий",
        )
        broken = bad_at.get(n)
        if broken == "email":
            email = "not-an-email"
        elif broken == "phone":
            phone = "12"
        elif broken == "name":
            name = ""
        elif broken == "status":
            status = "сомнительный"
        elif broken == "contact":
            phone = f"+7 495 200-{n:02d}-00"
        contact = "" if broken == "contact" else f"Иван Петров {n}"
        lines.append(f"{name},{tax},{phone},{email},{status},{contact},Директор,+7 916 000-{n:02d}-{n:02d}\n")
        if broken:
            bad_lines.append(n + 1)
    return "".join(lines).encode("utf-8"), bad_lines


async def _upload(
    crm: Any, user: dict[str, Any], content: bytes, name: str = "clients.csv", **fields: Any
) -> Any:
    headers = fields.pop("headers", None) or {}
    return await crm.post(
        "/api/imports/parties",
        user,
        files={"file": (name, content, "application/octet-stream")},
        data={k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()},
        headers=headers,
    )


async def _job(crm: Any, user: dict[str, Any], job_id: int) -> dict[str, Any]:
    r = await crm.get(f"/api/jobs/background/{job_id}", user)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


BROKEN = {3: "email", 7: "phone", 11: "name", 15: "status", 18: "contact"}


async def test_a_file_with_five_bad_rows_reports_exactly_those_and_imports_the_rest(crm: Any) -> None:
    anna = await crm.user("manager", name="anna")
    content, bad_lines = _csv(15, BROKEN)
    r = await _upload(crm, anna, content, dry_run=True)
    assert r.status_code == 202, r.text
    assert [s for _, s in await jobs.work(crm.pm, crm.settings)] == ["done"]
    dry = (await _job(crm, anna, r.json()["job_id"]))["result"]
    assert sorted(x["line"] for x in dry["rejected"]) == bad_lines
    assert (dry["imported"], dry["committed"]) == (15, False)
    assert await Party.count() == 0  # a dry run writes nothing

    r = await _upload(crm, anna, content, headers={"Idempotency-Key": "upload-1"})
    again = await _upload(crm, anna, content, headers={"Idempotency-Key": "upload-1"})
    assert again.json()["job_id"] == r.json()["job_id"]  # a retried upload: the same job
    await jobs.work(crm.pm, crm.settings)
    job = await _job(crm, anna, r.json()["job_id"])
    assert job["status"] == "done" and job["progress"]["done"] == job["progress"]["total"] == 20
    result = job["result"]
    assert sorted(x["line"] for x in result["rejected"]) == bad_lines
    assert (result["imported"], result["contacts"], result["rejected_count"]) == (15, 15, 5)
    assert await Party.count() == 15 and await Contact.count() == 15
    party = await Party.select().where(Party.name == "ООО Ромашка 1").first().output(load_json=True)
    assert party["owner_id"] == anna["id"] and party["phones"][0]["number"] == "+74951000101"
    contact = await Contact.select().where(Contact.party_id == party["id"]).first().output(load_json=True)
    assert (contact["name"], contact["position"]) == ("Иван Петров 1", "Директор")

    # The same file again: every row is a duplicate (tax id, e-mail, phone) and is skipped.
    r = await _upload(crm, anna, content)
    await jobs.work(crm.pm, crm.settings)
    result = (await _job(crm, anna, r.json()["job_id"]))["result"]
    assert (result["imported"], result["skipped"]) == (0, 15)
    assert await Party.count() == 15

    r = await _upload(crm, anna, content, name="clients.pdf")
    assert r.status_code == 422 and "file" in field_errors(r)
    r = await _upload(crm, anna, content, mapping='{"Наименование": "nonsense"}')
    assert r.status_code == 422 and "mapping" in field_errors(r)


async def test_an_xlsx_file_with_a_column_mapping(crm: Any) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    admin = await crm.user("admin")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Клиент", "Примечание", "Почта"])
    sheet.append(["ТОВ Калина", "VIP", "kalyna@example.ua"])
    sheet.append(["ТОВ Верба", "", "verba@example.ua"])
    out = io.BytesIO()
    book.save(out)
    transport = httpx.ASGITransport(app=crm.app)
    async with AsyncClient(
        "http://testserver", admin["token"], transport=transport
    ) as sdk:  # the SDK's typed call
        started = await sdk.import_parties("clients.xlsx", out.getvalue(), mapping={"Примечание": "-"})
        await jobs.work(crm.pm, crm.settings)
        job = await sdk.background_job(started.job_id)
    assert job.status == "done"
    result = job.result
    assert result["imported"] == 2 and result["rejected"] == []
    assert sorted(p["name"] for p in await Party.select(Party.name)) == ["ТОВ Верба", "ТОВ Калина"]


class Killed(BaseException):
    """The worker process dies (nothing in it catches this)."""


async def test_a_killed_workers_import_resumes_without_duplicates(
    crm: Any, frozen_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await crm.user("admin")
    monkeypatch.setattr(imports, "CHUNK_ROWS", 10)
    content, _ = _csv(35)
    r = await _upload(crm, admin, content)
    job_id = r.json()["job_id"]
    chunks = 0
    import_chunk = imports.import_parties

    async def dying(*args: Any, **kwargs: Any) -> Any:
        nonlocal chunks
        chunks += 1
        if chunks == 3:  # the third chunk never starts: the worker is gone
            raise Killed
        return await import_chunk(*args, **kwargs)

    monkeypatch.setattr(imports, "import_parties", dying)
    with pytest.raises(Killed):
        await jobs.work(crm.pm, crm.settings, node="worker-a")
    assert await Party.count() == 20  # two whole chunks
    row = await BackgroundJob.select().where(BackgroundJob.id == job_id).first().output(load_json=True)
    assert row["status"] == "running" and row["progress"]["chunk"] == 2

    monkeypatch.setattr(imports, "import_parties", import_chunk)
    assert await jobs.work(crm.pm, crm.settings, node="worker-b") == []  # its lease holds
    frozen_clock.advance(hours=2)  # the lease expires: another worker takes the job over
    assert [s for _, s in await jobs.work(crm.pm, crm.settings, node="worker-b")] == ["done"]
    names = [p["name"] for p in await Party.select(Party.name)]
    assert len(names) == len(set(names)) == 35
    result = (await _job(crm, admin, job_id))["result"]
    assert (result["imported"], result["skipped"], result["contacts"]) == (35, 0, 35)


# --------------------------------------------------------------------------- activities and tasks


async def _clients(crm: Any, owner: dict[str, Any]) -> list[int]:
    """Three parties to link rows to: by tax id, by phone, by e-mail; the third also by its
    external id in the accounting system."""
    ids = []
    for body in (
        {"name": "ООО Ромашка", "tax_id": "7701234567"},
        {"name": "ООО Лютик", "phones": [{"number": "+74951234567"}]},
        {"name": "ТОВ Калина", "emails": [{"address": "info@kalyna.ua"}]},
    ):
        r = await crm.post("/api/parties", owner, json={"kind": "organisation", **body})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    await ExternalRef.insert(
        ExternalRef(system="1c", entity="party", external_id="1C-000777", entity_id=ids[2])
    )
    return ids


ACTIVITIES = (
    "Тип;Тема;Дата;Статус;ИНН;Телефон;Email;Код контрагента;Ответственный;Длительность\n"
    "звонок;Обсудили цены;02.03.2026 10:00;проведено;7701234567;;;;{anna};15\n"  # line 2: tax id
    "встреча;Презентация;2026-03-03 15:30;запланировано;;8 (495) 123-45-67;;;;\n"  # 3: phone, any format
    "письмо;Счёт отправлен;04.03.2026;;;;INFO@kalyna.ua;;;\n"  # 4: e-mail, case-blind
    "звонок;По коду 1С;05.03.2026 11:00;проведено;;;;1C-000777;;\n"  # 5: external id
    "факс;Не бывает;05.03.2026;;7701234567;;;;;\n"  # 6: unknown type
    "звонок;Без даты;вчера;;7701234567;;;;;\n"  # 7: not a date
    "звонок;Чужой клиент;05.03.2026;;9999999999;;;;;\n"  # 8: no such party
    "звонок;Кто это;05.03.2026;;7701234567;;;;nobody@example.com;\n"  # 9: unknown user
    "звонок;;05.03.2026;;7701234567;;;;;\n"  # 10: no subject
)


async def test_activities_link_to_their_parties_and_bad_rows_are_reported_by_line(crm: Any) -> None:
    anna = await crm.user("manager", name="anna")
    romashka, lutik, kalyna = await _clients(crm, anna)
    content = ACTIVITIES.format(anna=anna["email"]).encode("cp1251")
    fields = {"external_system": "1c", "timezone": "Europe/Moscow"}
    r = await crm.post(
        "/api/imports/activities",
        anna,
        files={"file": ("activities.csv", content, "text/csv")},
        data={"dry_run": "true", **fields},
    )
    assert r.status_code == 202, r.text
    assert [s for _, s in await jobs.work(crm.pm, crm.settings)] == ["done"]
    dry = (await _job(crm, anna, r.json()["job_id"]))["result"]
    assert {x["line"]: x["errors"][0]["field"] for x in dry["rejected"]} == {
        6: "type",
        7: "starts_at",
        8: "party_tax_id",
        9: "owner_id",
        10: "subject",
    }
    assert (dry["imported"], dry["rejected_count"], dry["committed"]) == (4, 5, False)
    assert await Activity.count() == 0  # a dry run writes nothing

    r = await crm.post(
        "/api/imports/activities",
        anna,
        files={"file": ("activities.csv", content, "text/csv")},
        data=fields,
        headers={"Idempotency-Key": "activities-1"},
    )
    again = await crm.post(
        "/api/imports/activities",
        anna,
        files={"file": ("activities.csv", content, "text/csv")},
        data=fields,
        headers={"Idempotency-Key": "activities-1"},
    )
    assert again.json()["job_id"] == r.json()["job_id"]
    await jobs.work(crm.pm, crm.settings)
    job = await _job(crm, anna, r.json()["job_id"])
    assert job["status"] == "done" and (job["result"]["imported"], job["result"]["rejected_count"]) == (4, 5)
    rows = await Activity.select().order_by(Activity.id).output(load_json=True)
    assert [(a["subject"], a["party_id"], a["type"]) for a in rows] == [
        ("Обсудили цены", romashka, "call"),
        ("Презентация", lutik, "meeting"),
        ("Счёт отправлен", kalyna, "letter"),
        ("По коду 1С", kalyna, "call"),
    ]
    first = rows[0]
    assert (first["status"], first["duration_minutes"], first["owner_id"]) == ("done", 15, anna["id"])
    assert first["starts_at"].astimezone(UTC).hour == 7  # 10:00 in Moscow
    # Created through the kernel's write path: on the card's timeline and audited.
    card = await crm.get(f"/api/activities?party_id={romashka}", anna)
    assert [a["subject"] for a in card.json()["items"]] == ["Обсудили цены"]

    # A party the importer may not see is "no party" to them, as in POST /api/activities.
    boris = await crm.user("manager", name="boris")
    r = await crm.post(
        "/api/imports/activities",
        boris,
        files={
            "file": ("a.csv", "Тип;Тема;Дата;ИНН\nзвонок;Чужой;05.03.2026;7701234567\n".encode(), "text/csv")
        },
    )
    await jobs.work(crm.pm, crm.settings)
    result = (await _job(crm, boris, r.json()["job_id"]))["result"]
    assert (result["imported"], result["rejected"][0]["line"]) == (0, 2)
    r = await crm.post(
        "/api/imports/activities",
        anna,
        files={"file": ("a.csv", content, "text/csv")},
        data={"mapping": '{"Тема": "deadline"}'},
    )
    assert r.status_code == 422 and "mapping" in field_errors(r)
    r = await crm.post(
        "/api/imports/activities",
        anna,
        files={"file": ("a.csv", content, "text/csv")},
        data={"timezone": "Mars/Base"},
    )
    assert r.status_code == 422 and "timezone" in field_errors(r)


async def test_tasks_from_xlsx_resume_after_a_killed_worker_without_duplicates(
    crm: Any, frozen_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    from tessera import record_imports

    anna = await crm.user("manager", name="anna")
    romashka, _, _ = await _clients(crm, anna)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Задача", "Срок", "Приоритет", "Исполнитель", "ИНН", "Примечание"])
    for n in range(1, 8):
        # Dates as text and as a date cell (openpyxl reads it back as a datetime at midnight).
        deadline: Any = f"1{n}.03.2026" if n % 2 else datetime(2026, 3, 10 + n)
        sheet.append([f"Позвонить {n}", deadline, "высокий", anna["email"], "7701234567", "x"])
    out = io.BytesIO()
    book.save(out)
    monkeypatch.setattr(record_imports, "CHUNK_ROWS", 3)
    async with AsyncClient(
        "http://testserver", anna["token"], transport=httpx.ASGITransport(app=crm.app)
    ) as sdk:  # the SDK's typed call
        started = await sdk.import_records("tasks", "tasks.xlsx", out.getvalue(), mapping={"Примечание": "-"})
    job_id = started.job_id
    chunks = 0
    real_chunk = record_imports.RecordImport.chunk

    async def dying(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal chunks
        chunks += 1
        if chunks == 2:  # the second chunk never finishes: the worker is gone
            raise Killed
        return await real_chunk(self, *args, **kwargs)

    monkeypatch.setattr(record_imports.RecordImport, "chunk", dying)
    with pytest.raises(Killed):
        await jobs.work(crm.pm, crm.settings, node="worker-a")
    assert await Task.count() == 3  # one whole chunk
    monkeypatch.setattr(record_imports.RecordImport, "chunk", real_chunk)
    frozen_clock.advance(hours=2)  # the lease expires: another worker takes the job over
    assert [s for _, s in await jobs.work(crm.pm, crm.settings, node="worker-b")] == ["done"]
    tasks = await Task.select().order_by(Task.id).output(load_json=True)
    assert [t["title"] for t in tasks] == [f"Позвонить {n}" for n in range(1, 8)]
    assert {(t["party_id"], t["priority"], t["assignee_id"]) for t in tasks} == {
        (romashka, "high", anna["id"])
    }
    assert [(t["deadline"].astimezone(UTC).day, t["deadline"].astimezone(UTC).hour) for t in tasks[:2]] == [
        (11, 18),
        (12, 18),
    ]
    result = (await _job(crm, anna, job_id))["result"]
    assert (result["imported"], result["rejected_count"], result["committed"]) == (7, 0, True)


async def test_the_import_page_uploads_shows_the_dry_run_report_and_imports(crm: Any) -> None:
    """The page: upload with a mapping and a dry run, the job's page with every rejected row
    (the API's checks), then the real import; in the user's language."""
    anna = await crm.user("manager", name="anna")
    romashka, _, _ = await _clients(crm, anna)
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": anna["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    page = await crm.client.get("/app/imports", headers={"Accept-Language": "ru"})
    assert page.status_code == 200 and "Импорт" in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    content = (
        "Вид звонка;Тема;Дата;ИНН\n"
        "звонок;Первый;02.03.2026 10:00;7701234567\nфакс;Второй;02.03.2026;7701234567\n"
    )
    form = {"csrf_token": csrf, "what": "activities", "mapping": "Вид звонка = type", "dry_run": "true"}
    files = {"file": ("calls.csv", content.encode(), "text/csv")}
    r = await crm.client.post("/app/imports", data=form, files=files)
    assert r.status_code == 303, r.text
    job_page = r.headers["location"]
    waiting = await crm.client.get(job_page)
    assert 'http-equiv="refresh"' in waiting.text and "import-progress" in waiting.text
    await jobs.work(crm.pm, crm.settings)
    report = await crm.client.get(job_page)
    assert 'http-equiv="refresh"' not in report.text
    rejected = re.search(r'<table id="import-rejected">.*?</table>', report.text, re.S).group(0)  # type: ignore[union-attr]
    assert "<td>3</td>" in rejected and "type" in rejected and "<td>2</td>" not in rejected
    assert await Activity.count() == 0

    r = await crm.client.post("/app/imports", data={**form, "dry_run": ""}, files=files)
    await jobs.work(crm.pm, crm.settings)
    assert [a["party_id"] for a in await Activity.select(Activity.party_id)] == [romashka]
    listing = await crm.client.get("/app/imports")
    assert r.headers["location"].rsplit("/", 1)[1] in listing.text and "calls.csv" in listing.text

    # Refused as the API refuses: the field named next to its input, nothing queued.
    bad = await crm.client.post(
        "/app/imports", data={**form, "mapping": "Вид звонка = nonsense"}, files=files
    )
    assert bad.status_code == 422 and "nonsense" in bad.text
    boris = await crm.user("manager", name="boris")
    crm.client.cookies.clear()
    await crm.client.post("/login", data={"email": boris["email"], "password": "correct-horse-battery"})
    assert (await crm.client.get(job_page)).status_code == 404  # another user's import


async def test_the_audit_log_says_who_created_each_imported_party(crm: Any) -> None:
    """An import writes one audit entry per contiguous range of the parties it created, not one
    per party: filtered by any of those parties, the log still answers "who created it", for
    the readers who may read that party."""
    team = await crm.team()
    other_team = await crm.team()
    anna = await crm.user("manager", team_id=team["id"], name="anna")
    head = await crm.user("head", team_id=team["id"])
    other_head = await crm.user("head", team_id=other_team["id"])
    admin = await crm.user("admin")
    content, _ = _csv(12)
    r = await _upload(crm, anna, content)
    assert r.status_code == 202, r.text
    await jobs.work(crm.pm, crm.settings)
    assert (await _job(crm, anna, r.json()["job_id"]))["status"] == "done"
    ids = sorted(p["id"] for p in await Party.select(Party.id))
    assert len(ids) == 12

    async def creators(user: dict[str, Any], party_id: int) -> list[tuple[str, int | None]]:
        r = await crm.get("/api/audit", user, params={"entity": "party", "entity_id": party_id})
        assert r.status_code == 200, r.text
        return [(e["action"], e["user_id"]) for e in r.json()]

    # The first, a middle and the last party of the import: the import's entry, by anna.
    for party_id in (ids[0], ids[5], ids[-1]):
        assert await creators(admin, party_id) == [("import", anna["id"])]
        assert await creators(head, party_id) == [("import", anna["id"])]  # anna's team head
        assert await creators(other_head, party_id) == []  # may not read anna's parties
    r = await crm.get("/api/audit", admin, params={"entity": "party", "entity_id": ids[3]})
    [entry] = r.json()
    assert entry["changes"]["ids"] == [None, [[ids[0], ids[-1]]]]
    assert entry["changes"]["created"] == [None, 12]
    # A party created afterwards, one by one, is not in the import's range.
    r = await crm.post("/api/parties", anna, json={"name": "Created by hand"})
    assert r.status_code == 201, r.text
    assert await creators(admin, r.json()["id"]) == [("create", anna["id"])]
    # The audit page's filter by record finds the same entry, for anna's head and not the other.
    for reader, shown in ((head, True), (other_head, False)):
        crm.client.cookies.clear()
        signed = await crm.client.post("/login", data={"email": reader["email"], "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        page = await crm.client.get("/app/admin/audit", params={"entity": "party", "entity_id": ids[5]})
        assert page.status_code == 200
        assert ("import clients.csv: 12 parties created" in html.unescape(page.text)) is shown
