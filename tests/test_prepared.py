"""``tessera.prepared``: the statements built once per table read, insert and update rows as
the ORM does (defaults, JSON, times, a compare-and-set), on both engines (docs/kernel.md,
"Prepared statements")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tessera import events, prepared
from tessera.entities.tables import Task


async def test_prepared_rows_match_what_the_orm_reads(crm: Any) -> None:
    author = await crm.user("manager")
    statements = prepared.of(Task)
    deadline = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
    async with events.unit_of_work():
        row = (
            await statements.insert(
                {
                    "title": "Call back",
                    "author_id": author["id"],
                    "deadline": deadline,
                    "custom": {"k": [1, "два"]},
                }
            )
        )[0]
    assert statements.loaded(row)["custom"] == {"k": [1, "два"]}
    orm = await Task.select().where(Task.id == row["id"]).first().output(load_json=True)
    mine = await statements.get(row["id"])
    assert mine == orm
    assert mine is not None and mine["status"] == "open" and mine["version"] == 1  # column defaults
    assert mine["deadline"] == deadline and mine["description"] == ""

    async with events.unit_of_work():
        changed = await statements.update({"status": "done", "version": 2}, row["id"], match={"version": 1})
        stale = await statements.update({"status": "open", "version": 2}, row["id"], match={"version": 1})
    assert [r["id"] for r in changed] == [row["id"]] and stale == []  # compare-and-set
    assert (await Task.select(Task.status).where(Task.id == row["id"]).first())["status"] == "done"

    async with events.unit_of_work():  # a given primary key is kept
        await statements.insert({"id": 9001, "title": "Kept id"}, returning="none")
        locked = await statements.get(9001, lock=True)
    assert locked is not None and locked["title"] == "Kept id"
    assert await statements.get(123456) is None
    titles = await statements.with_ids(("title",), [row["id"], 9001])
    assert sorted(r["title"] for r in titles) == ["Call back", "Kept id"]


def test_sqlite_values_read_back_as_piccolo_reads_them() -> None:
    """The kernel's SQLite converters (INTEGER, TIMESTAMPTZ, BOOLEAN: no per-value wrapper or
    Decimal, ``tessera.db``) give what Piccolo's own give, odd stored values included."""
    import sqlite3

    from piccolo.engine import sqlite as piccolo_sqlite
    from tessera import db

    cases = {
        "INTEGER": (
            piccolo_sqlite.convert_int_out,
            [b"0", b"42", b"-7", b"1.0", b"2.9", b"-2.9", b"1e3", b" 5 "],
        ),
        "TIMESTAMPTZ": (
            piccolo_sqlite.convert_timestamptz_out,
            [b"2026-03-04 12:00:00", b"2026-03-04 12:00:00.123456", b"2026-03-04T12:00:00+00:00"],
        ),
        "BOOLEAN": (piccolo_sqlite.convert_boolean_out, [b"1", b"0"]),
    }
    for declared, (piccolo_converter, values) in cases.items():
        ours = sqlite3.converters[declared]
        assert ours.__module__ == db.__name__  # the kernel's are installed
        for value in values:
            expected = piccolo_converter(value)
            got = ours(value)
            assert (got, type(got)) == (expected, type(expected)), (declared, value)
