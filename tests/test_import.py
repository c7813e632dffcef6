"""Importing parties from spreadsheets (``tessera.importer``, ``tessera import parties``), on
SQLite and PostgreSQL: what was imported is visible through the API and search exactly like a
party created through the API; a bad file writes nothing and names each bad line and field."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tessera import importer
from tessera.entities.channels import normalise_email, normalise_phone, phone_search_forms

TESSERA = str(Path(sys.executable).with_name("tessera"))


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


async def parties(crm: Any, user: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    r = await crm.get("/api/parties", user, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def search(crm: Any, user: dict[str, Any], q: str) -> set[str]:
    r = await crm.get("/api/search", user, params={"q": q})
    assert r.status_code == 200, r.text
    return {h["title"] for h in r.json()["hits"] if h["type"] == "party"}


async def count_rows(table: str) -> int:
    from tessera import db

    return int((await db.raw(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"])


# --------------------------------------------------------------------------- a good file


async def test_good_file_is_imported_and_visible_through_api_and_search(crm: Any, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    owner = await crm.user("manager")
    path = write_csv(
        tmp_path / "clients.csv",
        [
            ["Name", "Kind", "Phone", "Email", "Tax ID", "Address", "Status", "Tags", "Website"],
            [
                "Orbita Logistics",
                "company",
                "+7 (495) 123-45-67",
                "Sales@Orbita.example.com",
                "7701234567",
                "Moscow, Tverskaya 1",
                "current",
                "vip; wholesale",
                "orbita.example.com",
            ],
            ["Ivan Kuznetsov", "person", "8 916 000-11-22, +380 44 123 4567", "", "", "", "", "", ""],
        ],
        encoding="utf-8-sig",  # Excel's "CSV UTF-8" starts with a BOM
    )
    report = await importer.import_parties(path, owner_email=owner["email"])
    assert report.committed and report.rows_read == 2 and report.imported == 2 and not report.rejected

    listed = {p["name"]: p for p in await parties(crm, admin)}
    orbita, ivan = listed["Orbita Logistics"], listed["Ivan Kuznetsov"]
    assert orbita["kind"] == "organisation" and ivan["kind"] == "person"
    assert orbita["phones"] == [{"number": "+74951234567", "type": "work"}]
    assert orbita["emails"] == [{"address": "sales@orbita.example.com", "type": "work"}]
    assert orbita["tax_id"] == "7701234567" and orbita["status"] == "current"
    assert orbita["tags"] == ["vip", "wholesale"] and orbita["website"] == "orbita.example.com"
    assert orbita["addresses"] == [{"text": "Moscow, Tverskaya 1", "type": "legal"}]
    assert orbita["owner_id"] == owner["id"] and orbita["relations"] == ["client"]
    assert [p["number"] for p in ivan["phones"]] == ["+79160001122", "+380441234567"]
    assert ivan["status"] == "potential"

    # Found by the API's phone filter in another format, and by full-text search.
    assert [p["name"] for p in await parties(crm, admin, phone_or_email="84951234567")] == [
        "Orbita Logistics"
    ]
    assert await search(crm, admin, "Orbita") == {"Orbita Logistics"}
    assert await search(crm, owner, "Kuznetsov") == {"Ivan Kuznetsov"}
    assert await search(crm, admin, "+7 916 000 11 22") == {"Ivan Kuznetsov"}

    # History: each party's first status entry names the file and line; the audit log has one
    # entry for the whole import, naming the file, the count and the ids it created.
    r = await crm.get(f"/api/parties/{orbita['id']}/status-history", admin)
    assert r.status_code == 200, r.text
    assert [(h["from_status"], h["to_status"], h["comment"]) for h in r.json()] == [
        (None, "current", "import clients.csv line 2")
    ]
    r = await crm.get("/api/audit", admin, params={"entity": "party", "action": "import"})
    assert r.status_code == 200, r.text
    [entry] = r.json()
    first, last = sorted([orbita["id"], ivan["id"]])
    assert entry["detail"] == f"import clients.csv: 2 parties created (ids {first}-{last})"
    assert entry["changes"] == {
        "file": [None, "clients.csv"],
        "created": [None, 2],
        "ids": [None, [[first, last]]],
    }
    r = await crm.get(f"/api/parties/{orbita['id']}", admin)
    assert r.status_code == 200 and r.json()["version"] == 1
    # And the imported party is editable like any other.
    r = await crm.patch(f"/api/parties/{orbita['id']}", admin, json={"status": "former"})
    assert r.status_code == 200, r.text


async def test_russian_excel_export_in_cp1251_with_semicolons(crm: Any, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    path = write_csv(
        tmp_path / "клиенты.csv",
        [
            ["Наименование", "Тип", "ИНН", "Телефон", "Эл. почта", "Юридический адрес", "Статус", "Метки"],
            [
                "ООО «Ромашка»",
                "Юр. лицо",
                "7701 234 567",
                "+7 495 765-43-21",
                "info@romashka.ru",
                "г. Москва, ул. Ленина, д. 1",
                "Действующий",
                "опт",
            ],
            ["Сидоренко Пётр", "Физ. лицо", "", "8 (916) 111-22-33", "", "", "Потенциальный", ""],
        ],
        encoding="cp1251",
        delimiter=";",
    )
    report = await importer.import_parties(path, owner_email=admin["email"])
    assert (report.encoding, report.delimiter) == ("cp1251", ";")
    assert report.imported == 2, report.rejected
    listed = {p["name"]: p for p in await parties(crm, admin)}
    romashka = listed["ООО «Ромашка»"]
    assert romashka["status"] == "current" and romashka["kind"] == "organisation"
    assert romashka["phones"][0]["number"] == "+74957654321"
    assert romashka["addresses"] == [{"text": "г. Москва, ул. Ленина, д. 1", "type": "legal"}]
    assert romashka["tags"] == ["опт"]
    assert listed["Сидоренко Пётр"]["kind"] == "person"
    assert await search(crm, admin, "Ромашка") == {"ООО «Ромашка»"}


async def test_ukrainian_headers_and_xlsx(crm: Any, tmp_path: Path) -> None:
    import openpyxl

    admin = await crm.user("admin")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Назва", "ЄДРПОУ", "Телефон", "Електронна пошта", "Статус"])
    sheet.append(["ТОВ «Дніпро Агро»", 41234567, 380671234567, "office@dnipro-agro.ua", "Поточний"])
    sheet.append(["ФОП Шевченко", None, "+380 (50) 765 43 21", None, None])
    book.save(tmp_path / "клієнти.xlsx")
    report = await importer.import_parties(tmp_path / "клієнти.xlsx", owner_email=admin["email"])
    assert report.imported == 2, report.rejected
    listed = {p["name"]: p for p in await parties(crm, admin)}
    agro = listed["ТОВ «Дніпро Агро»"]
    assert agro["tax_id"] == "41234567"  # a number cell, not "41234567.0"
    assert agro["phones"] == [{"number": "+380671234567", "type": "work"}]
    assert agro["status"] == "current"
    assert listed["ФОП Шевченко"]["phones"][0]["number"] == "+380507654321"


async def test_column_mapping_and_custom_fields(crm: Any, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    r = await crm.put(
        "/api/custom-fields/party",
        admin,
        json={
            "properties": {
                "segment": {"type": "string", "enum": ["A", "B", "C"]},
                "employees": {"type": "integer", "minimum": 0},
            }
        },
    )
    assert r.status_code == 200, r.text
    path = write_csv(
        tmp_path / "crm.csv",
        [
            ["Клиент", "custom.segment", "Штат", "Комментарий"],
            ["Alpha", "A", "120", "ignored text"],
            ["Beta", "Z", "many", ""],
            ["Gamma", "B", "", ""],
        ],
    )
    mapping = ["Клиент=name", "Штат=custom.employees", "Комментарий=-"]
    report = await importer.import_parties(path, owner_email=admin["email"], mapping=mapping)
    assert not report.committed and report.imported == 0
    assert [(r.line, sorted(e.field for e in r.errors)) for r in report.rejected] == [
        (3, ["custom.employees", "custom.segment"])
    ]
    assert await count_rows("party") == 0

    report = await importer.import_parties(
        path, owner_email=admin["email"], mapping=mapping, skip_invalid=True
    )
    assert report.imported == 2
    listed = {p["name"]: p for p in await parties(crm, admin)}
    assert listed["Alpha"]["custom"] == {"segment": "A", "employees": 120}
    assert listed["Gamma"]["custom"] == {"segment": "B"}

    # A required custom field is required on import too.
    r = await crm.put(
        "/api/custom-fields/party",
        admin,
        json={"properties": {"segment": {"type": "string"}}, "required": ["segment"]},
    )
    assert r.status_code == 200, r.text
    path = write_csv(tmp_path / "more.csv", [["Name", "custom.segment"], ["Delta", ""], ["Echo", "B"]])
    report = await importer.import_parties(path, owner_email=admin["email"], dry_run=True)
    assert [(r.line, [e.field for e in r.errors]) for r in report.rejected] == [(2, ["custom.segment"])]


# --------------------------------------------------------------------------- a bad file


async def test_invalid_rows_are_reported_by_line_and_field_and_nothing_is_written(
    crm: Any, tmp_path: Path
) -> None:
    admin = await crm.user("admin")
    events_before = await count_rows("domain_event")
    audit_before = await count_rows("audit_log")
    path = write_csv(
        tmp_path / "bad.csv",
        [
            ["Name", "Phone", "E-mail", "Status", "Owner"],
            ["Good One", "+7 495 111-22-33", "good@example.com", "current", ""],
            ["Bad Phone", "12", "", "", ""],
            ["", "+7 495 222-33-44", "", "", ""],
            ["Bad Mail", "", "not an e-mail", "", ""],
            ["Bad Status", "", "", "sleeping", ""],
            ["Nobody's", "", "", "", "ghost@example.com"],
            ["X" * 301, "", "", "", ""],
            ["Good Two", "", "two@example.com", "", ""],
        ],
    )
    report = await importer.import_parties(path, owner_email=admin["email"])
    assert not report.committed and report.imported == 0 and report.rows_read == 8
    found = {(r.line, e.field) for r in report.rejected for e in r.errors}
    assert found == {
        (3, "phones"),
        (4, "name"),
        (5, "emails"),
        (6, "status"),
        (7, "owner"),
        (8, "name"),
    }
    bad_phone = next(r for r in report.rejected if r.line == 3)
    assert "'12'" in bad_phone.message and bad_phone.values["Name"] == "Bad Phone"
    # All or nothing: not even the good rows, no audit entries, no events.
    assert await count_rows("party") == 0
    assert await count_rows("audit_log") == audit_before
    assert await count_rows("domain_event") == events_before

    # The dry run says the same without writing, and what would be imported.
    dry = await importer.import_parties(path, owner_email=admin["email"], dry_run=True)
    assert dry.imported == 2 and {r.line for r in dry.rejected} == {3, 4, 5, 6, 7, 8}
    assert await count_rows("party") == 0

    # --skip-invalid imports the good rows and hands back the bad ones as a CSV to fix.
    report = await importer.import_parties(path, owner_email=admin["email"], skip_invalid=True)
    assert report.committed and report.imported == 2
    assert sorted(p["name"] for p in await parties(crm, admin)) == ["Good One", "Good Two"]
    out = tmp_path / "rejected.csv"
    report.write_rejected_csv(out)
    rejected = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert [r["line"] for r in rejected] == ["3", "4", "5", "6", "7", "8"]
    assert rejected[0]["Name"] == "Bad Phone" and "phones" in rejected[0]["errors"]


async def test_a_file_without_a_name_column_is_refused(crm: Any, tmp_path: Path) -> None:
    await crm.user("admin")
    path = write_csv(tmp_path / "x.csv", [["Foo", "Phone"], ["a", "+74951112233"]])
    with pytest.raises(importer.ImportFailed, match="no name column"):
        await importer.import_parties(path)
    with pytest.raises(importer.ImportFailed, match="no such user"):
        await importer.import_parties(path, owner_email="nobody@example.com", mapping=["Foo=name"])


# --------------------------------------------------------------------------- duplicates


async def _existing(crm: Any, admin: dict[str, Any]) -> dict[str, Any]:
    r = await crm.post(
        "/api/parties",
        admin,
        json={
            "name": "Vector LLC",
            "tax_id": "7709998877",
            "phones": [{"number": "+7 (495) 555-00-11"}],
            "emails": [{"address": "office@vector.example.com"}],
            "tags": ["old"],
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _duplicates_file(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "dups.csv",
        [
            ["Name", "Tax ID", "Phone", "Email", "Tags", "Status"],
            ["Vector (new name)", "7709 998 877", "", "", "new", "current"],  # same tax id as the stored one
            ["Fresh Co", "", "8 495 700-00-01", "", "", ""],
            ["Fresh Co copy", "", "+7 495 700 00 01", "fresh@example.com", "", ""],  # same phone as line 3
            ["By e-mail", "", "", "OFFICE@vector.example.com", "", ""],  # the stored party's e-mail
        ],
    )


async def test_duplicates_are_errors_by_default(crm: Any, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    vector = await _existing(crm, admin)
    report = await importer.import_parties(_duplicates_file(tmp_path), owner_email=admin["email"])
    assert not report.committed
    messages = {(r.line, e.field): e.message for r in report.rejected for e in r.errors}
    assert set(messages) == {(2, "tax_id"), (4, "phones"), (5, "emails")}
    assert messages[(2, "tax_id")] == f"duplicate of existing party {vector['id']} (same tax id 7709998877)"
    assert messages[(4, "phones")] == "duplicate of line 3 (same phone +74957000001)"
    assert len(await parties(crm, admin)) == 1


async def test_duplicates_skipped(crm: Any, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    await _existing(crm, admin)
    report = await importer.import_parties(
        _duplicates_file(tmp_path), owner_email=admin["email"], on_duplicate="skip"
    )
    assert report.committed and report.imported == 1 and report.skipped == 3
    assert report.skipped_lines == [2, 4, 5]
    assert sorted(p["name"] for p in await parties(crm, admin)) == ["Fresh Co", "Vector LLC"]


async def test_duplicates_update_the_existing_party(crm: Any, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    vector = await _existing(crm, admin)
    report = await importer.import_parties(
        _duplicates_file(tmp_path), owner_email=admin["email"], on_duplicate="update"
    )
    assert report.committed, report.rejected
    # Line 2 updates the stored party by its tax id; line 5 matches it by e-mail and is merged into
    # line 2's update; line 4 has line 3's phone and is merged into line 3's new party.
    assert (report.imported, report.updated, report.merged) == (1, 1, 2)
    # Rows apply in file order, so a later row's name wins.
    listed = {p["name"]: p for p in await parties(crm, admin)}
    assert set(listed) == {"By e-mail", "Fresh Co copy"}
    updated = listed["By e-mail"]
    assert updated["id"] == vector["id"] and updated["version"] == 2 and updated["status"] == "current"
    assert updated["tags"] == ["old", "new"]  # lists are added to, not replaced
    assert updated["phones"] == vector["phones"] and updated["emails"] == vector["emails"]
    assert updated["tax_id"] == "7709 998 877"
    fresh = listed["Fresh Co copy"]
    assert fresh["phones"] == [{"number": "+74957000001", "type": "work"}]
    assert fresh["emails"] == [{"address": "fresh@example.com", "type": "work"}]
    r = await crm.get("/api/audit", admin, params={"entity": "party", "entity_id": vector["id"]})
    actions = [(e["action"], e["detail"]) for e in r.json()]
    assert ("update", "import dups.csv line 2") in actions
    assert await search(crm, admin, "Vector") == set()  # the old name is gone from the index
    assert await search(crm, admin, "7709998877") == {"By e-mail"}

    # Importing the same file again changes nothing.
    again = await importer.import_parties(
        _duplicates_file(tmp_path), owner_email=admin["email"], on_duplicate="update"
    )
    assert (again.imported, again.updated, again.unchanged, again.merged) == (0, 0, 2, 2)
    r = await crm.get(f"/api/parties/{vector['id']}", admin)
    assert r.json()["version"] == 2


@pytest.mark.plugins("probe")
async def test_search_and_plugins_hear_an_import_as_parties_imported_events(crm: Any, tmp_path: Path) -> None:
    """An import announces its new parties in ``parties.imported`` events of up to
    ``IMPORTED_EVENT_IDS`` ids each, not one ``party.created`` per party. Left in the outbox
    (``--no-index``), they are delivered later like any event: search then finds the parties
    and plugins hear the events."""
    from tessera import events

    admin = await crm.user("admin")
    r = await crm.post("/api/parties", admin, json={"name": "Created by hand"})
    assert r.status_code == 201, r.text
    by_hand = r.json()["id"]
    count = importer.IMPORTED_EVENT_IDS + 1
    names = ["Orbita First", *(f"Filler {i}" for i in range(count - 2)), "Vector Last"]
    path = write_csv(tmp_path / "many.csv", [["Name"], *([n] for n in names)])
    report = await importer.import_parties(path, owner_email=admin["email"], index=False)
    assert report.committed and report.imported == count
    assert await search(crm, admin, "Orbita") == set()  # not delivered yet

    stored = await db_events("parties.imported")
    assert [len(e["payload"]["ids"]) for e in stored] == [importer.IMPORTED_EVENT_IDS, 1]
    assert [i for e in stored for i in e["payload"]["ids"]] == report.imported_ids
    assert {e["payload"]["file"] for e in stored} == {"many.csv"}
    assert [e["entity_id"] for e in await db_events("party.created")] == [by_hand]

    assert await events.redeliver_pending() == 2
    assert await search(crm, admin, "Orbita") == {"Orbita First"}
    assert await search(crm, admin, "Vector") == {"Vector Last"}  # from the second event
    marks = (await crm.get("/api/probe/marks", admin, params={"kind": "event"})).json()
    assert [m["detail"] for m in marks if m["detail"].startswith("part")] == [
        "party.created",
        "parties.imported",
        "parties.imported",
    ]


async def db_events(name: str) -> list[dict[str, Any]]:
    from tessera.entities.tables import DomainEvent

    rows = await DomainEvent.select().where(DomainEvent.name == name).order_by(DomainEvent.id)
    return [
        {**r, "payload": r["payload"] if isinstance(r["payload"], dict) else json.loads(r["payload"])}
        for r in rows
    ]


# --------------------------------------------------------------------------- owners


async def test_imported_parties_are_visible_only_to_their_owner(crm: Any, tmp_path: Path) -> None:
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    path = write_csv(
        tmp_path / "alice.csv",
        [
            ["Company", "Manager", "Phone"],
            ["Solaris Trade", "", "+7 812 300-00-01"],
            ["Lunaris Group", bob["email"].upper(), "+7 812 300-00-02"],
        ],
    )
    report = await importer.import_parties(path, owner_email=alice["email"])
    assert report.imported == 2, report.rejected
    assert [p["name"] for p in await parties(crm, alice)] == ["Solaris Trade"]
    assert [p["name"] for p in await parties(crm, bob)] == ["Lunaris Group"]
    assert await search(crm, bob, "Solaris") == set()
    assert await search(crm, alice, "Solaris") == {"Solaris Trade"}
    assert len(await parties(crm, admin)) == 2
    solaris = next(p for p in await parties(crm, alice))
    r = await crm.get(f"/api/parties/{solaris['id']}", bob)
    assert r.status_code == 404


async def test_a_managers_import_cannot_assign_or_update_what_they_cannot_see(
    crm: Any, tmp_path: Path
) -> None:
    admin = await crm.user("admin")
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    r = await crm.post("/api/parties", bob, json={"name": "Bob's client", "tax_id": "5001"})
    assert r.status_code == 201
    principal = await crm.principal(alice)
    path = write_csv(
        tmp_path / "mine.csv",
        [["Name", "Owner", "Tax ID"], ["Mine", "", ""], ["For Bob", bob["email"], ""], ["Dup", "", "5001"]],
    )
    report = await importer.import_parties(path, principal=principal, on_duplicate="update", dry_run=True)
    errors = {(r.line, e.field): e.message for r in report.rejected for e in r.errors}
    assert set(errors) == {(3, "owner"), (4, "duplicate")}
    assert "5001" not in errors[(4, "duplicate")] and "Bob" not in errors[(4, "duplicate")]
    report = await importer.import_parties(path, principal=principal, skip_invalid=True)
    assert report.imported == 1
    dup = next(r for r in report.rejected if r.line == 4)
    assert dup.errors[0].message == "duplicate of a party you cannot see (same tax id 5001)"
    assert [p["name"] for p in await parties(crm, alice)] == ["Mine"]  # owned by the caller
    assert len(await parties(crm, admin)) == 2


# --------------------------------------------------------------------------- fast paths


def test_fast_phone_and_email_paths_agree_with_the_api_rules() -> None:
    """The importer's shortcuts for common shapes return what ``normalise_phone`` /
    ``normalise_email`` return, and fail where they fail."""
    rnd = random.Random(20261126)

    def formatted(digits: str) -> str:
        return "".join(ch + (rnd.choice(" ()-.") if rnd.random() < 0.25 else "") for ch in digits)

    def outcome(fn: Any, text: str) -> str:
        try:
            return str(fn(text))
        except ValueError:
            return "invalid"

    for _ in range(4000):
        prefix = rnd.choice(["+7", "8", "+380", "7", "+", "", "+1", "0"])
        digits = prefix + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(7, 12)))
        text = formatted(digits)
        assert outcome(importer.fast_normalise_phone, text) == outcome(normalise_phone, text), text
    alphabet = "abcXYZ019._-+!#'\"()<> @йЖ"
    domains = ["example.com", "Mail.RU", "пример.рф", "a..b", "-a.com", "localhost", "x.y", "[1.2.3.4]",
               "ex ample.com", "a.b@c.d", "foo.local", "ex_ample.com", "a" * 64 + ".com", ""]  # fmt: skip
    for _ in range(3000):
        local = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
        text = rnd.choice(["", " "]) + local + "@" + rnd.choice(domains)
        assert outcome(importer.fast_normalise_email, text) == outcome(normalise_email, text), text


def test_fast_email_path_agrees_on_tricky_domains_and_lengths() -> None:
    """Where the shortcut says yes, email-validator says the same address; everything near its
    rules' edges (IDNA, reserved names, label and address lengths, Unicode) goes to it."""

    def outcome(fn: Any, text: str) -> str:
        try:
            return str(fn(text))
        except ValueError:
            return "invalid"

    def domain_of(length: int) -> str:  # labels of 63 letters and a shorter one, then ".com"
        name = ""
        while len(name) + 4 < length:
            name += ("." if name else "") + "d" * min(63, length - 4 - len(name) - (1 if name else 0))
        assert len(name + ".com") == length
        return name + ".com"

    domains = [
        "Example.COM", "mail.example.co.uk", "a-b.example.com", "a--b.example.com", "ab--cd.com",
        "xn--e1afmkfd.xn--p1ai", "XN--E1AFMKFD.xn--p1ai", "xn--80ak6aa92e.com", "example.c0m",
        "example.123", "example.c", "example.co1", "1.2.3.4", "example.com.", ".example.com",
        "example..com", "-example.com", "example-.com", "exa_mple.com", "a" * 63 + ".com",
        "a" * 64 + ".com", "test", "example.test", "foo.localhost", "foo.invalid", "foo.onion",
        "in-addr.arpa", "home.arpa", "x.local", "localhost.com", "example.invalid.com", "пример.рф",
        "EXAMPLE.рф", "exam ple.com", "example.com\u200b", "ｅｘａｍｐｌｅ.com", "example。com",
        "example.com/", "[1.2.3.4]", domain_of(253), domain_of(254), domain_of(189), domain_of(190),
    ]  # fmt: skip
    locals_ = [
        "a", "A.B", "a+tag", "o'reilly", "a.", ".a", "a..b", "a" * 64, "a" * 65, "x" * 240, '"quoted"',
        "Postmaster", "ИВАН", "a b", "a\\b", "a(b)", "a<b>", "",
    ]  # fmt: skip
    checked = 0
    for local in locals_:
        for domain in domains:
            for text in (f"{local}@{domain}", f" {local}@{domain} "):
                assert outcome(importer.fast_normalise_email, text) == outcome(normalise_email, text), text
                checked += 1
    assert checked == len(locals_) * len(domains) * 2


def test_fast_phone_search_forms_agree_with_the_contact_index() -> None:
    rnd = random.Random(7)
    for _ in range(3000):
        country = rnd.choice(["7", "380", "1", "44", "49", "86"])
        number = "+" + country + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(6, 11)))
        assert importer.search_forms(number) == phone_search_forms(number), number


# --------------------------------------------------------------------------- the command


async def test_cli_import_with_progress_and_rate(backend: str, tmp_path: Path) -> None:
    if backend != "sqlite":
        pytest.skip("the command's database handling is covered by tests/test_cli.py on both engines")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TESSERA_PLUGINS": ""})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TESSERA, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    init = run("init", "--admin-email", "boss@example.com", "--admin-password", "long-enough-pw")
    assert init.returncode == 0, init.stderr
    good = write_csv(
        tmp_path / "clients.csv",
        [["Наименование", "Телефон"], ["ООО «Север»", "+7 495 100-00-01"], ["ООО «Юг»", "+7 495 100-00-02"]],
        encoding="cp1251",
        delimiter=";",
    )
    bad = write_csv(tmp_path / "bad.csv", [["Name", "Phone"], ["Bad", "12"], ["Fine", "+7 495 100-00-03"]])

    dry = run("import", "parties", str(bad), "--dry-run")
    assert dry.returncode == 1 and "Dry run" in dry.stdout and "phones" in dry.stdout
    refused = run("import", "parties", str(bad), "--owner", "boss@example.com")
    assert refused.returncode == 1, refused.stdout
    assert "Nothing imported" in refused.stdout
    report = tmp_path / "bad.rejected.csv"
    assert "12" in report.read_text(encoding="utf-8-sig")

    result = run("import", "parties", str(good), "--owner", "boss@example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 new" in result.stdout and "rows/s" in result.stdout
    con = sqlite3.connect(tmp_path / "data" / "tessera.sqlite3")
    try:
        names = [r[0] for r in con.execute("SELECT name FROM party ORDER BY id")]
    finally:
        con.close()
    assert names == ["ООО «Север»", "ООО «Юг»"]
    search = run("search", "status")
    assert "pending: 0" in search.stdout

    unknown = run("import", "parties", str(good), "--owner", "ghost@example.com")
    assert unknown.returncode == 2 and "no such user" in unknown.stderr
