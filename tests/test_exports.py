"""Exports are safe to open in a spreadsheet: a text cell starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return comes out prefixed with ``'`` (shown as text, value still
readable) in every CSV and XLSX export; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from entity_helpers import new_party
from tessera import exports
from tessera.errors import FieldError
from tessera.importer import ImportReport, RejectedRow, read_rows

LEADING = ["=", "+", "-", "@", "\t", "\r"]
PAYLOAD = 'HYPERLINK("http://evil.example","x")'


@pytest.mark.parametrize("lead", LEADING)
async def test_party_export_neutralises_each_formula_start_in_csv_and_xlsx(crm: Any, lead: str) -> None:
    admin = await crm.user("admin")
    # In a free-text field the API keeps as typed: required text (the name) is trimmed on
    # input, so a leading tab or carriage return would not reach the export there.
    value = f"{lead}{PAYLOAD}"
    await new_party(crm, admin, name="Formula Ltd", website=value, tags=["plain"])

    r = await crm.get("/api/parties/export", admin)
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text, newline="")))
    assert [row["website"] for row in rows] == [f"'{value}"]
    assert rows[0]["name"] == "Formula Ltd"  # harmless text is untouched
    assert rows[0]["tags"] == "plain"

    r = await crm.get("/api/parties/export", admin, params={"format": "xlsx"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).worksheets[0]
    header = [c.value for c in sheet[1]]
    cell = sheet.cell(row=2, column=header.index("website") + 1)
    assert cell.data_type == "s"  # text, not a formula
    # (XML stores a carriage return as a line feed; the leading quote is what matters.)
    assert cell.value == f"'{value}".replace("\r", "\n")


def test_helpers_keep_numbers_numbers_and_neutralise_only_text(tmp_path: Path) -> None:
    row = [-12.5, -3, "-3", "=1+1", "safe", None, "+49 30 1234"]
    assert exports.safe_row(row) == [-12.5, -3, "'-3", "'=1+1", "safe", None, "'+49 30 1234"]

    sheet = openpyxl.load_workbook(io.BytesIO(exports.xlsx_bytes(["a", "b", "c"], [[-42, "-42", "@cmd"]])))
    cells = next(iter(sheet.worksheets[0].iter_rows(min_row=2, values_only=True)))
    assert cells == (-42, "'-42", "'@cmd")


@pytest.mark.parametrize("lead", LEADING)
def test_rejected_rows_csv_is_neutralised_and_reimports_as_written(tmp_path: Path, lead: str) -> None:
    report = ImportReport()
    original = f"{lead}cmd|' /C calc'!A0"
    report.rejected.append(
        RejectedRow(
            line=2,
            errors=[FieldError("email", "is not an e-mail address")],
            values={"name": original, "email": "x"},
        )
    )
    target = tmp_path / "rejected.csv"
    report.write_rejected_csv(target)

    with target.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["name"] == f"'{original}"
    # Imported again (after fixing the e-mail), the name is what the user typed.
    cells = [row for _, row in read_rows(target)]
    assert cells[1][cells[0].index("name")] == original
