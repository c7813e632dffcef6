"""Spreadsheet-safe exports: every CSV and XLSX file the kernel or a plugin hands out goes
through these helpers.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (and tab or
carriage return can smuggle one in), so a party named ``=HYPERLINK(...)`` would turn an export
into an attack on whoever opens it (CSV formula injection). Such *text* cells are prefixed with
a single quote, which spreadsheets show as text and which keeps the value readable; numbers stay
numbers (a negative amount in a numeric column is still a number).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

#: Leading characters a spreadsheet may read as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """The value to write into an exported cell: text that a spreadsheet would run as a
    formula gets a leading ``'``; numbers, dates and everything else are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """The original text of a cell ``safe_cell`` neutralised (for re-importing an export)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in row]


class SafeCsvWriter:
    """``csv.writer`` whose rows are neutralised cell by cell."""

    def __init__(self, target: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(target, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(target: Any, **kwargs: Any) -> SafeCsvWriter:
    """A CSV writer for exports (use it instead of ``csv.writer``)."""
    return SafeCsvWriter(target, **kwargs)


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, bool | int | float | Decimal | datetime | date) or value is None:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.replace(tzinfo=None)  # Excel has no time zones
        return value
    return safe_cell(str(value))


def xlsx_bytes(header: Sequence[str], rows: Iterable[Iterable[Any]], title: str = "Export") -> bytes:
    """An XLSX workbook with one sheet: ``header`` then ``rows``. Text cells are neutralised
    and always stored as text (never as a formula), numbers and dates keep their type."""
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append([_xlsx_value(h) for h in header])
    for row in rows:
        cells = []
        for value in row:
            plain = _xlsx_value(value)
            if isinstance(plain, str):
                cell = openpyxl.cell.WriteOnlyCell(sheet, value=plain)
                cell.data_type = "s"  # text, even if it looks like a formula
                cells.append(cell)
            else:
                cells.append(plain)
        sheet.append(cells)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --------------------------------------------------------------------------- streamed files

#: Number formats by report column type (``tessera.reports``): exports keep them.
NUMBER_FORMATS = {
    "int": "#,##0",
    "decimal": "#,##0.00",
    "float": "#,##0.00",
    "days": "#,##0.00",
    "percent": '0.00"%"',
}


def csv_chunks(header: Sequence[str], rows: Iterable[Iterable[Any]], every: int = 500) -> Iterator[str]:
    """A CSV file in pieces of ``every`` rows (neutralised like ``csv_writer``): a response
    streams it row group by row group, so memory does not grow with the number of rows."""
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
        if n % every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def xlsx_to_file(
    path: Any,
    header: Sequence[str],
    rows: Iterable[Iterable[Any]],
    types: Sequence[str] = (),
    title: str = "Export",
) -> None:
    """Write an XLSX workbook to ``path`` row by row (openpyxl's write-only mode keeps the sheet
    in a temporary file, not in memory); number columns get their number format (``types``),
    text cells are neutralised and stored as text."""
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append([_xlsx_value(h) for h in header])
    formats = [NUMBER_FORMATS.get(t) for t in types]
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            plain = _xlsx_value(value)
            cell = openpyxl.cell.WriteOnlyCell(sheet, value=plain)
            if isinstance(plain, str):
                cell.data_type = "s"
            elif i < len(formats) and formats[i] and isinstance(plain, int | float | Decimal):
                cell.number_format = formats[i]
            cells.append(cell)
        sheet.append(cells)
    book.save(path)


def file_chunks(path: Any, size: int = 64 * 1024, remove: bool = True) -> Iterator[bytes]:
    """A file's bytes in pieces (then the file is removed): for streamed downloads."""
    import os

    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(size):
                yield chunk
    finally:
        if remove:
            os.unlink(path)
