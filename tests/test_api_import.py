"""Import through the API (issue 16.7): a CSV or XLSX file of parties with contact persons runs
as a background job through the CLI's importer; a dry run reports the bad rows by line, a real
run imports the rest, duplicates (tax id, e-mail, phone) are skipped, and a worker killed in the
middle leaves whole chunks that the retry continues from without importing a row twice."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from entity_helpers import field_errors
from tessera import imports, jobs
from tessera.entities.tables import BackgroundJob, Contact, Party
from tessera_sdk import AsyncClient

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
