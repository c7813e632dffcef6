"""Bulk import of parties (organisations and people) from CSV and XLSX files.

The first thing a company does with a CRM is load the client list it kept in spreadsheets
(seeds: Russian/Ukrainian Excel exports). ``import_parties`` reads such a file, maps its
columns by their headers (English, Russian and Ukrainian names, or ``mapping``), validates
every row with the same rules as ``POST /api/parties`` (name and lengths through ``PartyIn``,
phones to E.164, e-mails validated, custom fields by their JSON schema), detects duplicates
against the database and inside the file (tax id, e-mail, normalised phone), and writes the
good rows in ONE transaction with bulk inserts: the parties and their first status entry, then
one audit entry per contiguous range of the new ids (found by any of them: "who created party
X") and ``parties.imported`` outbox events listing the new ids (``IMPORTED_EVENT_IDS`` each).
After commit the events are delivered (search indexes the new parties, plugins hear
``parties.imported``).

Default: all or nothing (any invalid row and nothing is written); ``skip_invalid`` imports the
good rows and leaves the bad ones in ``ImportReport.rejected``; ``dry_run`` writes nothing and
reports what would happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import gc
import io
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import email_validator
import msgspec
from piccolo.utils.encoding import dump_json

from tessera import audit, clock, customfields, db, events, exports
from tessera.entities import service
from tessera.entities.channels import contact_index, normalise_email, normalise_phone, phone_search_forms
from tessera.entities.parties import PARTY, PartyIn
from tessera.entities.tables import CrmUser, Party
from tessera.errors import FieldError, ValidationFailed
from tessera.permissions import Principal

#: ``progress(stage, done, total)``; stages: "read", "check", "write", "index".
Progress = Callable[[str, int, int], None]

DUPLICATE_POLICIES = ("error", "skip", "update")
#: Rows per INSERT batch, and events per delivery batch after commit.
WRITE_BATCH = 5000
DELIVER_BATCH = 2000


class ImportFailed(Exception):
    """The file as a whole cannot be imported (unreadable, no name column, unknown --owner)."""


# --------------------------------------------------------------------------- report


@dataclass
class RejectedRow:
    """A row that was not imported: its line in the file, what is wrong, and its cells."""

    line: int
    errors: list[FieldError]
    values: dict[str, str]

    @property
    def message(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors)


@dataclass
class ImportReport:
    path: str = ""
    encoding: str = ""
    delimiter: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    imported: int = 0
    updated: int = 0
    #: Duplicates matched with ``on_duplicate="update"`` whose values were already stored.
    unchanged: int = 0
    #: Rows that repeat an earlier row of the file, merged into it (on_duplicate="update").
    merged: int = 0
    skipped: int = 0
    #: Contact persons created with the new parties (``contact*`` columns).
    contacts: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    dry_run: bool = False
    #: True when the transaction committed (False for a dry run or an all-or-nothing refusal).
    committed: bool = False
    #: Seconds from opening the file to the commit (what "rows per second" is measured on).
    seconds: float = 0.0
    #: Seconds spent delivering the events after commit (search index, plugins).
    index_seconds: float = 0.0
    #: Seconds per stage up to the commit ("read", "check", "duplicates", "write", "commit"),
    #: so a slow import shows where its time went (bench/importer.py prints them).
    stages: dict[str, float] = field(default_factory=dict)
    imported_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)
    skipped_lines: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "columns": self.columns,
            "ignored_columns": self.ignored_columns,
            "rows_read": self.rows_read,
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "merged": self.merged,
            "skipped": self.skipped,
            "contacts": self.contacts,
            "rejected": [
                {"line": r.line, "errors": [e.as_dict() for e in r.errors], "values": r.values}
                for r in self.rejected
            ],
            "dry_run": self.dry_run,
            "committed": self.committed,
            "seconds": round(self.seconds, 3),
            "index_seconds": round(self.index_seconds, 3),
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "rows_per_second": round(self.rows_per_second, 1),
            "warnings": self.warnings,
        }

    def write_rejected_csv(self, target: str | Path | io.TextIOBase) -> None:
        """The rejected rows as CSV (UTF-8 with BOM, so Excel opens it): line, errors, then the
        original cells, ready to fix and import again."""
        headers: list[str] = list(dict.fromkeys(h for r in self.rejected for h in r.values))
        own = isinstance(target, str | Path)
        fh: Any = open(target, "w", encoding="utf-8-sig", newline="") if own else target
        try:
            writer = exports.csv_writer(fh)
            writer.writerow(["line", "errors", *headers])
            for r in self.rejected:
                writer.writerow([r.line, r.message, *(r.values.get(h, "") for h in headers)])
        finally:
            if own:
                fh.close()


# --------------------------------------------------------------------------- reading


def _decode(raw: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding:
        return raw.decode(encoding), encoding
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # Excel on a Russian or Ukrainian Windows saves "CSV" in the ANSI code page.
        return raw.decode("cp1251"), "cp1251"
    except UnicodeDecodeError as exc:
        raise ImportFailed(
            "cannot decode the file: it is neither UTF-8 nor cp1251; save it as UTF-8 or pass the encoding"
        ) from exc


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (";", ",", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    if counts[best]:
        return best
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=";,\t|").delimiter
    except csv.Error:
        return ","


def _read_csv(path: Path, encoding: str | None, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    text, report.encoding = _decode(path.read_bytes(), encoding)
    report.delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=report.delimiter)
    line = 1
    if "'" not in text:
        # No cell can start with a quote: the rows as the reader gives them (the check below,
        # per cell, was a tenth of the reading time).
        for row in reader:
            yield line, row
            line = reader.line_num + 1
        return
    for row in reader:
        # A rejected-rows file this importer wrote comes back with its cells as they were.
        # (restore_cell only for the rare cell that starts with a quote)
        yield line, [exports.restore_cell(cell) if cell[:1] == "'" else cell for cell in row]
        line = reader.line_num + 1


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers and tax ids typed into number cells
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _read_xlsx(path: Path, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - openpyxl is a kernel dependency
        raise ImportFailed("reading .xlsx needs the openpyxl package; save the sheet as CSV") from exc
    report.encoding = "xlsx"
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise ImportFailed(f"cannot open {path.name} as an Excel workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell(v) for v in row]
    finally:
        book.close()


def read_rows(
    path: Path, encoding: str | None = None, report: ImportReport | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every row of the file, header included."""
    report = report or ImportReport()
    if not path.is_file():
        raise ImportFailed(f"no such file: {path}")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path, report)
    if path.suffix.lower() == ".xls":
        raise ImportFailed("old .xls workbooks are not supported: save the sheet as .xlsx or CSV")
    return _read_csv(path, encoding, report)


# --------------------------------------------------------------------------- columns


def normalise_header(text: str) -> str:
    text = text.replace("\ufeff", "").strip().lower().replace("ё", "е")
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


# fmt: off
#: Target field -> header names (normalised with ``normalise_header``).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": (
        "name", "company", "company name", "organisation", "organization", "client", "client name",
        "full name", "party", "наименование", "название", "компания", "организация", "клиент",
        "контрагент", "фио", "полное наименование", "наименование организации", "наименование клиента",
        "назва", "найменування", "компанія", "організація", "клієнт", "піб", "повне найменування",
    ),
    "kind": (
        "kind", "type", "party kind", "party type", "тип", "вид", "тип контрагента", "вид контрагента",
        "тип клиента", "тип клієнта", "вид лица", "тип особи",
    ),
    "relations": (
        "relations", "relation", "relationship", "отношение", "отношения", "відносини", "відношення",
    ),
    "status": (
        "status", "lifecycle", "lifecycle status", "статус", "состояние", "статус клиента", "стан",
        "статус клієнта",
    ),
    "owner": (
        "owner", "owner email", "owner e mail", "manager", "manager email", "responsible", "account manager",
        "ответственный", "менеджер", "ответственный менеджер", "email менеджера", "відповідальний",
        "менеджер email",
    ),
    "tax_id": (
        "tax id", "taxid", "tax number", "inn", "vat", "vat id", "vat number", "tin", "edrpou", "инн",
        "инн организации", "єдрпоу", "едрпоу", "код єдрпоу", "код едрпоу", "код за єдрпоу", "іпн", "рнокпп",
    ),
    "website": ("website", "web site", "site", "url", "www", "web", "сайт", "веб сайт", "вебсайт"),
    "phones": (
        "phone", "phones", "telephone", "tel", "phone number", "work phone", "телефон", "телефоны", "тел",
        "контактный телефон", "рабочий телефон", "номер телефона", "телефони", "номер телефону",
    ),
    "phones:mobile": (
        "mobile", "mobile phone", "cell", "cell phone", "мобильный", "мобильный телефон", "моб телефон",
        "сотовый", "мобільний", "мобільний телефон",
    ),
    "emails": (
        "email", "e mail", "emails", "mail", "email address", "e mail address", "почта", "эл почта",
        "электронная почта", "адрес электронной почты", "емейл", "имейл", "емайл", "електронна пошта",
        "ел пошта", "пошта",
    ),
    "addresses": (
        "address", "legal address", "адрес", "юридический адрес", "юр адрес", "адреса", "юридична адреса",
    ),
    "addresses:actual": (
        "actual address", "office address", "фактический адрес", "факт адрес", "фактична адреса",
    ),
    "addresses:postal": ("postal address", "mailing address", "почтовый адрес", "поштова адреса"),
    "tags": ("tags", "tag", "labels", "теги", "тэги", "метки", "мітки"),
    # A contact person of the party (one per row; a contact of its own, not a party's channel).
    "contact": (
        "contact", "contact name", "contact person", "контактное лицо", "контакт", "фио контакта",
        "контактна особа", "піб контакту",
    ),
    "contact_position": (
        "contact position", "position", "job title", "должность", "должность контакта", "посада",
        "посада контакту",
    ),
    "contact_phone": (
        "contact phone", "телефон контакта", "телефон контактного лица", "телефон контакту",
    ),
    "contact_email": (
        "contact email", "contact e mail", "email контакта", "почта контакта", "e mail контакта",
        "пошта контакту",
    ),
}
# fmt: on
_ALIAS_INDEX: dict[str, str] = {alias: target for target, names in HEADER_ALIASES.items() for alias in names}
IGNORE = "-"
TARGETS = (*HEADER_ALIASES, IGNORE)


def _target_of(header: str, mapping: dict[str, str]) -> str | None:
    if header in mapping:
        return mapping[header]
    key = normalise_header(header)
    if key in mapping:
        return mapping[key]
    if header.strip().lower().startswith("custom."):
        return "custom." + header.strip()[len("custom.") :]
    return _ALIAS_INDEX.get(key)


def parse_mapping(pairs: Sequence[str] | dict[str, str] | None) -> dict[str, str]:
    """``["Клиент=name", "Сегмент=custom.segment", "Примечание=-"]`` -> {header: field}."""
    if not pairs:
        return {}
    items = pairs.items() if isinstance(pairs, dict) else (_split_pair(p) for p in pairs)
    out: dict[str, str] = {}
    for header, target in items:
        target = target.strip()
        if target not in TARGETS and not (target.startswith("custom.") and len(target) > 7):
            raise ImportFailed(
                f"--map {header}={target}: unknown field {target!r}; use one of "
                f"{', '.join(TARGETS)} or custom.<name>"
            )
        out[header.strip()] = target
        out[normalise_header(header)] = target
    return out


def _split_pair(pair: str) -> tuple[str, str]:
    if "=" not in pair:
        raise ImportFailed(f"--map {pair!r}: expected COLUMN=FIELD")
    header, target = pair.rsplit("=", 1)
    return header, target


# --------------------------------------------------------------------------- values


# fmt: off
KIND_WORDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "organisation", "organization", "org", "company", "legal entity", "business", "юл", "юр лицо",
            "юридическое лицо", "организация", "компания", "юридична особа", "організація", "компанія",
        ),
        "organisation",
    ),
    **dict.fromkeys(
        (
            "person", "individual", "private person", "private", "фл", "физ лицо", "физическое лицо",
            "частное лицо", "ип", "фізична особа", "фо", "фоп", "приватна особа",
        ),
        "person",
    ),
}
STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("potential", "lead", "prospect", "потенциальный", "потенциальный клиент", "лид", "потенційний"),
        "potential",
    ),
    **dict.fromkeys(
        (
            "current", "active", "customer", "текущий", "действующий", "активный", "постоянный",
            "поточний", "діючий", "активний", "постійний",
        ),
        "current",
    ),
    **dict.fromkeys(
        ("former", "inactive", "lost", "past", "бывший", "прежний", "неактивный", "колишній", "неактивний"),
        "former",
    ),
}
RELATION_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ("client", "customer", "клиент", "покупатель", "заказчик", "клієнт", "покупець", "замовник"), "client"
    ),
    **dict.fromkeys(("partner", "партнер", "партнёр"), "partner"),
    **dict.fromkeys(("supplier", "vendor", "поставщик", "постачальник"), "supplier"),
    **dict.fromkeys(("competitor", "конкурент"), "competitor"),
}
BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "yes", "y", "1", "да", "так", "+", "x", "✓"), True),
    **dict.fromkeys(("false", "no", "n", "0", "нет", "ні", "-"), False),
}
# fmt: on
_LIST_SPLIT = re.compile(r"[;,\n]+")
_EMAIL_SPLIT = re.compile(r"[;,\s]+")
#: A cell that holds more than one e-mail (or an address with a space, which the split reports).
_EMAIL_SEPARATOR = re.compile(r"[;,\s]")


@functools.lru_cache(maxsize=4096)
def _word(value: str) -> str:
    return normalise_header(value)


def normalise_tax_id(value: str) -> str:
    return "".join(value.split()).upper()


def _coerce_custom(value: str, schema: dict[str, Any] | None) -> Any:
    """A cell's text as the JSON value the custom field's schema expects (best effort: a value
    that does not convert is left as text, and the schema check names the rule it breaks)."""
    kind = (schema or {}).get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "integer":
        text = value.replace(" ", "").replace("\u00a0", "")
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else value
    if kind == "number":
        text = value.replace(" ", "").replace("\u00a0", "").replace(",", ".")
        try:
            number = float(text)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if kind == "boolean":
        word = value.strip().lower()
        return BOOLEAN_WORDS.get(word, value)
    if kind == "array":
        items_schema = (schema or {}).get("items")
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return [_coerce_custom(v.strip(), items_schema) for v in _LIST_SPLIT.split(value) if v.strip()]
    if kind == "object" or (kind is None and value.lstrip()[:1] in "[{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --------------------------------------------------------------------------- fast paths

# Importing 100k rows must not spend 50 us per phone and per e-mail in the general parsers. The
# shapes below cover most spreadsheet cells and give exactly what ``normalise_phone`` /
# ``normalise_email`` give (tests/test_import.py checks it on random inputs); anything else goes
# through those functions, which also word the error messages.

_PHONE_PUNCTUATION = re.compile(r"[\s().\-]+")
#: +7 with a 10-digit national number starting 3, 4, 7, 8 or 9 (Russia, Kazakhstan); +380 with
#: 9 digits not starting with 0 (Ukraine). phonenumbers strips no prefix from these, and every
#: such length is a possible number, so E.164 is the digits themselves.
_FAST_PHONE = re.compile(r"\+(?:7[34789]\d{9}|380[1-9]\d{8})")
_RU_TRUNK = re.compile(r"8[34789]\d{9}")
_PHONE_SHAPE = re.compile(r"\+?[\d\s().\-]+")


def fast_normalise_phone(raw: str) -> str:
    """``normalise_phone(raw)``, without the general parser for the common shapes."""
    text = raw.strip()
    if _PHONE_SHAPE.fullmatch(text):
        compact = _PHONE_PUNCTUATION.sub("", text)
        if _FAST_PHONE.fullmatch(compact):
            return compact
        if _RU_TRUNK.fullmatch(compact):
            return "+7" + compact[1:]
    return normalise_phone(raw)


def search_forms(e164: str) -> list[str]:
    """``phone_search_forms(e164)`` (what ``contact_index`` is made of) without building a set
    and sorting it for the two shapes most client lists hold."""
    digits = e164.lstrip("+")
    if len(digits) == 11 and digits[0] == "7":
        return sorted((digits, "8" + digits[1:], digits[1:]))
    if len(digits) == 12 and digits.startswith("380"):
        return sorted((digits, "0" + digits[3:], digits[3:]))
    return phone_search_forms(e164)


def import_phone(raw: str) -> str:
    """A phone from a cell. Beyond the API's rule: a number cell cannot hold the "+", so bare
    digits the API would refuse (380671234567) are read as international (+380 67 123 4567)."""
    try:
        return fast_normalise_phone(raw)
    except ValueError:
        text = raw.strip()
        if text.isdigit() and len(text) >= 11:
            try:
                return normalise_phone("+" + text)
            except ValueError:
                pass
        raise


_DOT_ATOM = re.compile(r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+)*")
#: An ASCII host name of letter-digit-hyphen labels (each at most 63 characters, no hyphen at
#: either end) with at least one dot and an all-letter top-level domain.
_PLAIN_DOMAIN = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}")
#: Names email-validator refuses after the @-sign (and their subdomains): left to it.
_SPECIAL_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)


def _plain_domain(domain: str) -> bool:
    """True when email-validator accepts ``domain`` unchanged but for case: plain ASCII, no
    ``--`` (IDNA labels and the labels it reserves), not too long, not special-use."""
    if len(domain) > 253 or "--" in domain or not _PLAIN_DOMAIN.fullmatch(domain):
        return False
    lowered = domain.lower()
    return not any(lowered == d or lowered.endswith("." + d) for d in _SPECIAL_DOMAINS)


_domains: dict[str, bool] = {}


def fast_normalise_email(raw: str) -> str:
    """``normalise_email(raw)`` for the common shape: an ASCII address whose local part is a
    dot-atom of at most 64 characters (email-validator's own first check, which it then
    accepts as is) and whose domain is plain (``_plain_domain``, remembered per domain: a
    client list has many addresses per domain). Then the result is the address lower-cased;
    anything else goes to email-validator, which also words the error."""
    text = raw.strip()
    if len(text) <= 254 and text.isascii() and text.count("@") == 1:
        local, domain = text.split("@")
        if 0 < len(local) <= 64 and _DOT_ATOM.fullmatch(local):
            plain = _domains.get(domain)
            if plain is None:
                if len(_domains) > 100_000:
                    _domains.clear()
                plain = _domains[domain] = _plain_domain(domain)
            if plain:
                return text.lower()
    return normalise_email(raw)


# --------------------------------------------------------------------------- rows


@dataclass(slots=True)
class _Row:
    line: int
    cells: list[str]
    #: PartyIn-shaped values plus "owner_email"; only the cells that were filled.
    values: dict[str, Any]
    keys: list[tuple[str, str, str]] = field(default_factory=list)  # (key, field, shown value)
    errors: list[FieldError] = field(default_factory=list)
    #: Existing party this row updates (on_duplicate="update").
    target_id: int | None = None
    #: Earlier row of the file this one was merged into.
    merged_into: _Row | None = None
    #: A duplicate left out (on_duplicate="skip").
    skip: bool = False
    #: The party's ``contact_index`` (phone search forms and e-mails), for a valid row.
    index: str = ""
    #: The row's contact person (``contact*`` columns): name, position, phones, emails.
    contact: dict[str, Any] | None = None

    @property
    def writable(self) -> bool:
        return not self.errors and not self.skip and self.merged_into is None


@dataclass
class _Context:
    columns: list[tuple[int, str, str]]  # (index, header, target)
    custom_schema: dict[str, Any]
    users: dict[str, dict[str, Any]]
    principal: Principal | None
    custom_cache: dict[tuple[str, str], list[FieldError]] = field(default_factory=dict)
    #: (index, header, field, subtype) for the columns that are read.
    plan: list[tuple[int, str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, header, target in self.columns:
            if target != IGNORE:
                base, _, subtype = target.partition(":")
                self.plan.append((i, header, base, subtype))

    def raw(self, row: _Row) -> dict[str, str]:
        cells = row.cells
        return {header: (cells[i] if i < len(cells) else "") for i, header, _ in self.columns}


def _parse_row(ctx: _Context, line: int, cells: list[str]) -> _Row:
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    row = _Row(line=line, cells=cells, values=values, errors=errors)
    width = len(cells)
    for i, header, base, subtype in ctx.plan:
        if i >= width:
            continue
        text = cells[i].strip()
        if not text:
            continue
        if base == "name":
            values["name"] = " ".join(text.split())
        elif base == "phones":
            phones = values.setdefault("phones", [])
            for part in _LIST_SPLIT.split(text) if ("," in text or ";" in text or "\n" in text) else (text,):
                if not part.strip():
                    continue
                try:
                    number = import_phone(part)
                except ValueError as exc:
                    errors.append(FieldError("phones", f"column {header!r}: {part.strip()!r} {exc}"))
                    continue
                if not phones or all(p["number"] != number for p in phones):
                    phones.append({"number": number, "type": subtype or "work"})
        elif base == "emails":
            emails = values.setdefault("emails", [])
            one = _EMAIL_SEPARATOR.search(text) is None
            for part in (text,) if one else _EMAIL_SPLIT.split(text):
                if not part:
                    continue
                try:
                    address = fast_normalise_email(part)
                except ValueError as exc:
                    errors.append(FieldError("emails", f"column {header!r}: {part!r}: {exc}"))
                    continue
                if not emails or all(e["address"] != address for e in emails):
                    emails.append({"address": address, "type": "work"})
        elif base == "tax_id":
            values["tax_id"] = text
        elif base == "kind":
            kind = KIND_WORDS.get(_word(text))
            if kind is None:
                errors.append(
                    FieldError("kind", f"column {header!r}: {text!r} is not organisation or person")
                )
            else:
                values["kind"] = kind
        elif base == "status":
            status = STATUS_WORDS.get(_word(text))
            if status is None:
                errors.append(
                    FieldError("status", f"column {header!r}: {text!r} is not potential, current or former")
                )
            else:
                values["status"] = status
        elif base == "addresses":
            values.setdefault("addresses", []).append({"text": text, "type": subtype or "legal"})
        elif base == "tags":
            tags = values.setdefault("tags", [])
            if "," not in text and ";" not in text and "\n" not in text:  # one tag
                if text not in tags:
                    tags.append(text)
                continue
            for part in _LIST_SPLIT.split(text):
                tag = part.strip()
                if tag and tag not in tags:
                    tags.append(tag)
        elif base == "website":
            values["website"] = text
        elif base == "owner":
            values["owner_email"] = text.lower()
        elif base == "relations":
            rels = values.setdefault("relations", [])
            for part in _LIST_SPLIT.split(text):
                if not part.strip():
                    continue
                rel = RELATION_WORDS.get(_word(part))
                if rel is None:
                    errors.append(
                        FieldError(
                            "relations",
                            f"column {header!r}: {part.strip()!r} is not client, partner, supplier "
                            "or competitor",
                        )
                    )
                elif rel not in rels:
                    rels.append(rel)
        elif base.startswith("contact"):
            _contact_cell(row, base, header, text, errors)
        elif base.startswith("custom."):
            name = base[len("custom.") :]
            prop = ctx.custom_schema.get("properties", {}).get(name)
            values.setdefault("custom", {})[name] = _coerce_custom(text, prop)
    if "name" not in values:
        errors.append(FieldError("name", "is required"))
    if row.contact is not None and not row.contact.get("name"):
        errors.append(FieldError("contact", "a contact's phone, e-mail or position needs the contact's name"))
    _check_shape(values, errors)
    if "custom" in values:
        _check_custom(ctx, values["custom"], errors)
    owner_email = values.get("owner_email")
    if owner_email is not None:
        user = ctx.users.get(owner_email)
        if user is None:
            errors.append(FieldError("owner", f"no user with e-mail {owner_email}"))
        elif not user["is_active"]:
            errors.append(FieldError("owner", f"user {owner_email} is deactivated"))
        elif ctx.principal is not None and not ctx.principal.check_visible_owner(user["id"]):
            errors.append(FieldError("owner", "you may only assign records to users whose records you see"))
    if not errors:
        keys = row.keys
        if "tax_id" in values:
            tax = normalise_tax_id(values["tax_id"])
            keys.append(("tax:" + tax, "tax_id", tax))
        index: list[str] = []
        phones = values.get("phones")
        if phones:
            for p in phones:
                keys.append(("phone:" + p["number"][1:], "phones", p["number"]))
                index.extend(search_forms(p["number"]))
        emails = values.get("emails")
        if emails:
            for e in emails:
                keys.append(("email:" + e["address"], "emails", e["address"]))
                index.append(e["address"])
        row.index = " ".join(index)
    return row


def _contact_cell(row: _Row, base: str, header: str, text: str, errors: list[FieldError]) -> None:
    """One ``contact*`` cell into the row's contact person."""
    contact = row.contact if row.contact is not None else {}
    row.contact = contact
    if base == "contact":
        contact["name"] = " ".join(text.split())[:300]
    elif base == "contact_position":
        contact["position"] = text[:200]
    elif base == "contact_phone":
        for part in _LIST_SPLIT.split(text):
            if part.strip():
                try:
                    contact.setdefault("phones", []).append({"number": import_phone(part), "type": "work"})
                except ValueError as exc:
                    errors.append(FieldError("contact_phone", f"column {header!r}: {part.strip()!r} {exc}"))
    elif base == "contact_email":
        for part in _EMAIL_SPLIT.split(text):
            if part:
                try:
                    contact.setdefault("emails", []).append(
                        {"address": fast_normalise_email(part), "type": "work"}
                    )
                except ValueError as exc:
                    errors.append(FieldError("contact_email", f"column {header!r}: {part!r}: {exc}"))


_PATH = re.compile(r"at `\$\.(\w+)")


def _check_shape(values: dict[str, Any], errors: list[FieldError]) -> None:
    """The API's own DTO rules (lengths, allowed values). The whole row is checked at once;
    only a row that fails is checked field by field, so it reports every field that is wrong."""
    if "name" in values and "owner_email" not in values and "custom" not in values:
        probe = values  # the common row: nothing to leave out, so no copy
    else:
        probe = {k: v for k, v in values.items() if k not in ("owner_email", "custom")}
        probe.setdefault("name", "x")  # a missing name is reported already
    try:
        msgspec.convert(probe, PartyIn)
        return
    except msgspec.ValidationError:
        pass
    for name in probe:
        if any(e.field == name for e in errors):
            continue
        single = {"name": probe["name"], name: probe[name]} if name != "name" else {"name": probe[name]}
        try:
            msgspec.convert(single, PartyIn)
        except msgspec.ValidationError as exc:
            message = str(exc)
            match = _PATH.search(message)
            errors.append(FieldError(match.group(1) if match else name, message.split(" - at ")[0]))


def _check_custom(ctx: _Context, custom: dict[str, Any], errors: list[FieldError]) -> None:
    """Every custom value against the field's schema. Validation is per (field, value) and
    remembered: a column of categories is checked once per distinct value."""
    for name, value in custom.items():
        key = (name, json.dumps(value, sort_keys=True, default=str))
        found = ctx.custom_cache.get(key)
        if found is None:
            try:
                customfields.validate_against(ctx.custom_schema, {name: value})
                found = []
            except ValidationFailed as exc:
                found = list(exc.errors)
            ctx.custom_cache[key] = found
        errors.extend(found)


def _check_required_custom(ctx: _Context, custom: dict[str, Any]) -> list[FieldError]:
    return [
        FieldError(f"custom.{name}", "is required (rule: required)")
        for name in ctx.custom_schema.get("required", [])
        if name not in custom
    ]


# --------------------------------------------------------------------------- the import


async def _load_users() -> dict[str, dict[str, Any]]:
    rows = await CrmUser.select(CrmUser.id, CrmUser.email, CrmUser.team_id, CrmUser.is_active)
    return {r["email"].lower(): r for r in rows}


def _columns(header: list[str], mapping: dict[str, str], report: ImportReport) -> list[tuple[int, str, str]]:
    columns: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = cell.replace("\ufeff", "").strip()
        if not name:
            continue
        seen[name] = seen.get(name, 0) + 1
        shown = name if seen[name] == 1 else f"{name} ({seen[name]})"
        target = _target_of(name, mapping)
        if target is None:
            report.ignored_columns.append(shown)
            continue
        if target in ("name", "kind", "status", "owner", "tax_id", "website") and target in {
            t for _, _, t in columns
        }:
            report.warnings.append(f"column {shown!r} maps to {target} like an earlier column: ignored")
            report.ignored_columns.append(shown)
            continue
        columns.append((i, shown, target))
        report.columns[shown] = target
    if not any(t == "name" for _, _, t in columns):
        raise ImportFailed(
            "no name column: the header must name one (Name, Company, Наименование, Название, Назва ...) "
            "or map one with --map COLUMN=name; columns found: " + ", ".join(h for h in header if h.strip())
        )
    return columns


async def import_parties(
    path: str | Path,
    *,
    owner_email: str | None = None,
    dry_run: bool = False,
    skip_invalid: bool = False,
    on_duplicate: str = "error",
    mapping: Sequence[str] | dict[str, str] | None = None,
    progress: Progress | None = None,
    encoding: str | None = None,
    principal: Principal | None = None,
    index: bool = True,
    before_commit: Callable[[ImportReport], Awaitable[None]] | None = None,
    preread: tuple[list[str], list[tuple[int, list[str]]]] | None = None,
    display_name: str | None = None,
) -> ImportReport:
    """Import parties from a CSV or XLSX file; see the module docstring.

    :param owner_email: owner of rows that name none (a row's owner column wins).
    :param on_duplicate: what a row matching an existing party or an earlier row (same tax id,
        e-mail or phone) does: ``error`` (rejected), ``skip``, or ``update`` (fills the party
        with the row's values; phones, e-mails, tags and addresses are added to the stored ones).
    :param mapping: ``["Column=field", ...]`` or ``{"Column": "field"}``; field ``-`` ignores it.
    :param principal: the caller when it is a user (API): owners must be users whose records it
        sees, and rows default to it as owner. ``None`` (CLI, benchmark) acts as the system.
    :param index: deliver the events after commit (search index, plugins). When False the
        outbox keeps them for the worker / next start-up.
    :param before_commit: awaited inside the import's transaction once the rows are written
        (not for a dry run or a refusal): a background import records its checkpoint there, so
        the checkpoint commits with the rows or not at all.
    :param preread: ``(header, [(line, cells), ...])`` already read from ``path`` (a background
        import reads the file once and imports it in chunks); ``path`` then only names it.
    :param display_name: the file's name as the user knows it, for the audit entry and the
        status history (an uploaded file is stored under its content hash); default its name.
    """
    started = time.perf_counter()
    if on_duplicate not in DUPLICATE_POLICIES:
        raise ImportFailed(
            f"on_duplicate must be one of {', '.join(DUPLICATE_POLICIES)}, not {on_duplicate!r}"
        )
    if principal is not None:
        PARTY.require(principal, "write")
    file = Path(path)
    report = ImportReport(path=str(file), dry_run=dry_run)
    # The import holds every row in memory at once: the cyclic garbage collector would walk
    # them again and again as they accumulate (more than half of the checking time at 100k
    # rows), while nothing it builds needs collecting before the end.
    with _collector_paused():
        announced = await _import(
            file,
            report,
            started,
            owner_email=owner_email,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            on_duplicate=on_duplicate,
            mapping=mapping,
            progress=progress,
            encoding=encoding,
            principal=principal,
            before_commit=before_commit,
            preread=preread,
            display_name=display_name,
        )
    if index and announced:
        t0 = time.perf_counter()
        await deliver(announced, progress)
        report.index_seconds = time.perf_counter() - t0
    return report


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _import(
    file: Path,
    report: ImportReport,
    started: float,
    *,
    owner_email: str | None,
    dry_run: bool,
    skip_invalid: bool,
    on_duplicate: str,
    mapping: Sequence[str] | dict[str, str] | None,
    progress: Progress | None,
    encoding: str | None,
    principal: Principal | None,
    before_commit: Callable[[ImportReport], Awaitable[None]] | None = None,
    preread: tuple[list[str], list[tuple[int, list[str]]]] | None = None,
    display_name: str | None = None,
) -> list[tuple[int, int]]:
    """Read, check and write in one transaction; returns the events to deliver, each with the
    number of parties it is about."""
    mark = started
    cpu_mark = time.process_time()

    def lap(stage: str) -> None:
        nonlocal mark, cpu_mark
        now_ = time.perf_counter()
        cpu_now = time.process_time()
        report.stages[stage] = report.stages.get(stage, 0.0) + now_ - mark
        report.stages["cpu_" + stage] = report.stages.get("cpu_" + stage, 0.0) + cpu_now - cpu_mark
        mark, cpu_mark = now_, cpu_now

    header: list[str] | None = None
    data: list[tuple[int, list[str]]] = []
    if preread is not None:
        header, data = preread
    else:
        for line, cells in read_rows(file, encoding, report):
            if header is None:
                if any(c.strip() for c in cells):
                    header = cells
                continue
            if (cells and cells[0].strip()) or any(c.strip() for c in cells):
                data.append((line, cells))
    if header is None:
        raise ImportFailed(f"{file.name} is empty: the first row must be a header")
    columns = _columns(header, parse_mapping(mapping), report)
    report.rows_read = len(data)
    if progress:
        progress("read", len(data), len(data))
    lap("read")

    users = await _load_users()
    default_owner: dict[str, Any] | None = None
    if owner_email:
        default_owner = users.get(owner_email.strip().lower())
        if default_owner is None:
            raise ImportFailed(f"--owner {owner_email}: no such user")
        if principal is not None and not principal.check_visible_owner(default_owner["id"]):
            raise ImportFailed("--owner: you may only assign records to users whose records you see")
    elif principal is not None:
        default_owner = next((u for u in users.values() if u["id"] == principal.user_id), None)
    else:
        report.warnings.append(
            "no owner given (--owner or an owner column): rows without one are visible only to "
            "users who see all records"
        )
    schema = await customfields.effective_schema(service.plugin_manager(), "party")
    ctx = _Context(
        columns=columns,
        custom_schema=schema,
        users=users,
        principal=principal,
    )

    rows: list[_Row] = []
    for n, (line, cells) in enumerate(data, start=1):
        rows.append(_parse_row(ctx, line, cells))
        if progress and n % 5000 == 0:
            progress("check", n, len(data))
    if progress:
        progress("check", len(data), len(data))
    lap("check")

    async with db.transaction(bulk=True):
        existing = await _existing_keys_of(rows)
        hidden: set[int] = set()
        if principal is not None and not principal.sees_all:
            matched = sorted(set(existing.values()))
            visible: set[int] = set()
            for start in range(0, len(matched), 1000):
                visible |= await service.visible_ids(PARTY, principal, matched[start : start + 1000])
            hidden = set(matched) - visible
        _resolve_duplicates(rows, existing, on_duplicate, report, hidden)
        targets = [r for r in rows if r.writable and r.target_id is not None]
        loaded = await _load_parties([r.target_id for r in targets if r.target_id is not None])
        now = clock.now()
        changes = _plan_updates(ctx, [r for r in targets if r.writable], loaded, now, report)
        inserts = [r for r in rows if r.writable and r.target_id is None]
        if ctx.custom_schema.get("required"):
            for r in inserts:
                r.errors.extend(_check_required_custom(ctx, r.values.get("custom", {})))
        for r in rows:
            if r.merged_into is not None and r.merged_into.errors:
                r.errors.append(
                    FieldError("duplicate", f"merged into line {r.merged_into.line}, which is rejected")
                )
        report.rejected = sorted(
            (RejectedRow(r.line, r.errors, ctx.raw(r)) for r in rows if r.errors), key=lambda r: r.line
        )
        inserts = [r for r in inserts if r.writable]
        changes = [c for c in changes if c.row.writable]
        report.skipped = len(report.skipped_lines)
        lap("duplicates")
        if dry_run or (report.rejected and not skip_invalid):
            if dry_run:
                report.imported, report.updated = len(inserts), len(changes)
            report.seconds = time.perf_counter() - started
            return []
        actor = events.current_actor()
        if actor is None and principal is not None:
            actor = principal.user_id
        async with _larger_page_cache():
            name = display_name or file.name
            announced = await _insert(ctx, inserts, default_owner, actor, now, name, report, progress)
            announced += [(i, 1) for i in await _write_updates(changes, actor, now, name, report)]
        if before_commit is not None:
            await before_commit(report)
        lap("write")
    lap("commit")
    report.committed = True
    report.seconds = time.perf_counter() - started
    return announced


async def deliver(announced: list[tuple[int, int]], progress: Progress | None = None) -> None:
    """Deliver the import's events (search index, plugins) after commit, in batches of about
    ``DELIVER_BATCH`` parties. ``announced``: (event id, how many parties it is about)."""
    total = sum(n for _, n in announced)
    done = 0
    batch: list[int] = []
    size = 0
    for i, (event_id, parties) in enumerate(announced):
        batch.append(event_id)
        size += parties
        if size >= DELIVER_BATCH or i == len(announced) - 1:
            await events.deliver(batch)
            done += size
            batch, size = [], 0
            if progress:
                progress("index", done, total)


# --------------------------------------------------------------------------- duplicates


_STORED_KEYS_SQL = (
    "SELECT id, tax_id, contact_index FROM party WHERE tax_id <> '' OR contact_index <> '' ORDER BY id"
)


async def _stored_keys() -> list[tuple[int, str, str]]:
    """(id, tax id, contact index) of every party that has either, as plain tuples (the
    connection's dict rows cost a dict per party, and the scan runs once per chunk)."""
    conn = _connection()
    if db.is_postgres():
        return [tuple(r) for r in await conn.fetch(_STORED_KEYS_SQL)]
    return await _on_sqlite(conn, _fetch_tuples, _STORED_KEYS_SQL)  # type: ignore[no-any-return]


async def _on_sqlite(conn: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(raw sqlite3 connection, *args)`` on the thread that owns the connection: queued
    to an aiosqlite connection's own thread, or called at once on an inline connection (a
    short write transaction, ``tessera.db``; the activities and tasks imports look duplicates
    up in one)."""
    raw = getattr(conn, "raw", None)
    if raw is not None:
        return fn(raw, *args)
    return await conn._execute(fn, conn._conn, *args)


def _fetch_tuples(raw: Any, sql: str) -> list[tuple[Any, ...]]:
    """Run in the aiosqlite connection's own thread (so the cursor never crosses threads)."""
    cursor = raw.cursor()
    cursor.row_factory = None
    try:
        return cursor.execute(sql).fetchall()
    finally:
        cursor.close()


def _match_stored(stored: list[tuple[int, str, str]], taxes: set[str], tokens: set[str]) -> dict[str, int]:
    """Key ("tax:", "email:" or "phone:" + value) -> id of the first stored party that holds it.
    ``taxes``: normalised tax ids; ``tokens``: e-mails and E.164 digits (an e-mail token has an
    "@", a phone token never)."""
    found: dict[str, int] = {}
    for party_id, tax, index_text in stored:
        if tax and taxes:
            tax = normalise_tax_id(tax)
            if tax in taxes:
                found.setdefault("tax:" + tax, party_id)
        if index_text and tokens:
            for token in index_text.split():
                if token in tokens:
                    found.setdefault(("email:" if "@" in token else "phone:") + token, party_id)
    return found


async def _existing_keys(wanted: set[str]) -> dict[str, int]:
    """Key -> id of the existing party with that tax id, e-mail or phone, for the keys the
    file uses (one pass over the parties' tax ids and contact indexes)."""
    if not wanted:
        return {}
    stored = await _stored_keys()
    if not stored:
        return {}
    # The wanted keys without their prefix, so a stored token is looked up as it is (no new
    # string per token of every stored party).
    taxes = {k[4:] for k in wanted if k.startswith("tax:")}
    tokens = {k[6:] for k in wanted if k.startswith(("email:", "phone:"))}
    return _match_stored(stored, taxes, tokens)


async def _existing_keys_of(rows: list[_Row]) -> dict[str, int]:
    """``_existing_keys`` for the keys of the valid rows, the key sets built only when some
    party holds a tax id, e-mail or phone (never for an import into an empty table)."""
    stored = await _stored_keys()
    if not stored:
        return {}
    taxes: set[str] = set()
    tokens: set[str] = set()
    for r in rows:
        if r.errors:
            continue
        for key, _, _ in r.keys:
            if key[0] == "t":  # "tax:"
                taxes.add(key[4:])
            else:  # "email:" / "phone:"
                tokens.add(key[6:])
    return _match_stored(stored, taxes, tokens)


def _describe(field_name: str) -> str:
    return {"tax_id": "tax id", "emails": "e-mail", "phones": "phone"}.get(field_name, field_name)


def _resolve_duplicates(
    rows: list[_Row], existing: dict[str, int], policy: str, report: ImportReport, hidden: set[int]
) -> None:
    """Apply the duplicate policy. ``hidden``: matched parties the caller may not see, never
    named in a message (a manager learns a duplicate exists, not whose it is)."""
    first_row: dict[str, _Row] = {}  # key -> the row that holds it (after merging)
    by_party: dict[int, _Row] = {}  # existing party -> the row that updates it

    def register(row: _Row, holder: _Row) -> None:
        for k, _, _ in row.keys:
            first_row.setdefault(k, holder)

    for row in rows:
        if row.errors:
            continue
        keys = row.keys
        for k, _, _ in keys:
            if k in existing or k in first_row:
                break
        else:  # most rows: no duplicate
            for k, _, _ in keys:
                first_row[k] = row
            continue
        matches_db = sorted({(existing[k], f, v) for k, f, v in row.keys if k in existing})
        db_ids = sorted({m[0] for m in matches_db})
        earlier = next(((first_row[k], f, v) for k, f, v in row.keys if k in first_row), None)
        if not db_ids and earlier is None:
            register(row, row)
            continue
        if policy == "error":
            for party_id, f, v in matches_db:
                which = "a party you cannot see" if party_id in hidden else f"existing party {party_id}"
                row.errors.append(FieldError(f, f"duplicate of {which} (same {_describe(f)} {v})"))
            if earlier is not None and not matches_db:
                other, f, v = earlier
                row.errors.append(FieldError(f, f"duplicate of line {other.line} (same {_describe(f)} {v})"))
            continue
        if policy == "skip":
            row.skip = True
            report.skipped_lines.append(row.line)
            continue
        # update: fill the existing party, or merge into the earlier row that holds the key.
        if hidden.intersection(db_ids):
            row.errors.append(FieldError("duplicate", "matches an existing party you cannot see"))
            continue
        if len(db_ids) > 1:
            listed = ", ".join(map(str, db_ids))
            row.errors.append(
                FieldError("duplicate", f"matches several existing parties ({listed}); merge them first")
            )
            continue
        target = (earlier[0].merged_into or earlier[0]) if earlier is not None else None
        if db_ids and db_ids[0] in by_party:
            holder = by_party[db_ids[0]]
            if target is not None and target is not holder:
                row.errors.append(
                    FieldError("duplicate", f"matches both line {target.line} and line {holder.line}")
                )
                continue
            target = holder
        if target is None:
            row.target_id = db_ids[0]
            by_party[db_ids[0]] = row
            register(row, row)
            continue
        if db_ids and target.target_id not in (None, db_ids[0]):
            row.errors.append(
                FieldError("duplicate", f"matches line {target.line} and party {db_ids[0]}, which differ")
            )
            continue
        _merge_values(target.values, row.values)
        if db_ids:
            target.target_id = db_ids[0]
            by_party[db_ids[0]] = target
        for key in row.keys:
            if key not in target.keys:
                target.keys.append(key)
        register(row, target)
        row.merged_into = target
        report.merged += 1


def _merge_list(current: list[Any], extra: list[Any], key: str | None) -> list[Any]:
    out = list(current)
    seen = {(item[key] if key else item) for item in out}
    for item in extra:
        ident = item[key] if key else item
        if ident not in seen:
            out.append(item)
            seen.add(ident)
    return out


_LIST_KEYS = {"phones": "number", "emails": "address", "addresses": "text", "tags": None, "relations": None}


def _merge_values(target: dict[str, Any], extra: dict[str, Any]) -> None:
    """``extra``'s filled cells into ``target``: lists are joined, other fields replaced."""
    for name, value in extra.items():
        if name in _LIST_KEYS:
            target[name] = _merge_list(target.get(name, []), value, _LIST_KEYS[name])
        elif name == "custom":
            target["custom"] = {**target.get("custom", {}), **value}
        else:
            target[name] = value


# --------------------------------------------------------------------------- writing


def _connection() -> Any:
    """The raw connection of the current transaction (aiosqlite or asyncpg)."""
    engine = db.get_engine()
    tx = engine.current_transaction.get()
    if tx is None:
        raise RuntimeError("bulk import must run inside db.transaction()")
    return tx.connection


async def _reserve_ids(table: str, count: int) -> list[int]:
    """Primary keys for ``count`` new rows: a block after MAX(id) on SQLite (the write lock is
    held, BEGIN IMMEDIATE), values drawn from the sequence on PostgreSQL."""
    conn = _connection()
    if db.is_postgres():
        rows = await conn.fetch(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, $1)", count
        )
        return [r[0] for r in rows]
    found = await conn.execute_fetchall(f'SELECT COALESCE(MAX(id), 0) AS top FROM "{table}"')
    base = int(found[0]["top"])
    return list(range(base + 1, base + 1 + count))


#: SQLite page cache (KiB) of the import's connection while it writes: the party table's six
#: indexes outgrow the default 2 MiB within a few thousand rows, and then every batch spills
#: pages to the WAL before the commit writes them again.
IMPORT_CACHE_KIB = 65536


@contextlib.asynccontextmanager
async def _larger_page_cache() -> AsyncIterator[None]:
    """``IMPORT_CACHE_KIB`` for the current transaction's SQLite connection, the previous size
    restored after (the connection goes back to the pool). Durability is untouched: the
    commit still syncs as configured."""
    if db.is_postgres():
        yield
        return
    conn = _connection()
    found = await conn.execute_fetchall("PRAGMA cache_size")
    before = int(next(iter(found[0].values())))
    await conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        await conn.execute(f"PRAGMA cache_size = {before}")


#: Rows per multi-row INSERT on SQLite (fewer for wide tables: at most ``db.MAX_ARGS`` values).
INSERT_ROWS = 500


def _insert_many(raw: Any, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]) -> None:
    """INSERT ``records`` as multi-row ``VALUES (...), (...)`` statements, in the aiosqlite
    connection's own thread: one statement (one GIL release and retake, one step) per
    ``INSERT_ROWS`` rows instead of one per row as with ``executemany``. Its cursors are closed
    here too: a cursor freed on another thread resets its statement, which may be the cached
    one this thread is running (``sqlite3.InterfaceError: bad parameter or other API misuse``,
    seen under load with ``executemany``'s cursors freed on the event loop's thread)."""
    width = len(columns)
    head = f'INSERT INTO "{table}" (' + ", ".join(f'"{c}"' for c in columns) + ") VALUES "
    row = "(" + ", ".join("?" * width) + ")"
    full: tuple[int, str] = (0, "")  # (rows, SQL) of the full-sized statement, built once
    for part in db.chunks(records, width, INSERT_ROWS * width):
        if len(part) != full[0]:
            full = (len(part), head + ", ".join([row] * len(part)))
        raw.execute(full[1], [value for record in part for value in record]).close()


class _Writer:
    """Bulk inserts into the current transaction. On SQLite each batch runs in the
    connection's thread (``_insert_many``) while the caller builds the next one (SQLite
    releases the GIL while it writes), so building rows and writing them overlap; ``flush``
    waits for the last one."""

    def __init__(self) -> None:
        self.conn = _connection()
        self.pg = db.is_postgres()
        self.pending: list[asyncio.Future[Any]] = []

    async def insert(self, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]) -> None:
        if not records:
            return
        if self.pg:
            await self.conn.copy_records_to_table(table, records=records, columns=list(columns))
            return
        # aiosqlite's own queue (``_on_sqlite``): the function runs in the connection's
        # thread in the order queued, after the statements queued before it.
        queued = _on_sqlite(self.conn, _insert_many, table, columns, records)
        self.pending.append(asyncio.ensure_future(queued))
        # Let the task queue its statement now: the caller goes on building without yielding.
        await asyncio.sleep(0)
        if len(self.pending) > 4:  # bound the memory held by batches still being written
            await self.pending.pop(0)

    async def flush(self) -> None:
        """Wait for the queued statements; raises the first one's error."""
        for result in await self.drain():
            if isinstance(result, BaseException):
                raise result

    async def drain(self) -> list[Any]:
        """Wait for the queued statements without raising (the caller is failing already and
        rolls back after them)."""
        pending, self.pending = self.pending, []
        return list(await asyncio.gather(*pending, return_exceptions=True))


async def _bulk_insert(table: str, columns: Sequence[str], records: list[tuple[Any, ...]]) -> None:
    writer = _Writer()
    await writer.insert(table, columns, records)
    await writer.flush()


_PARTY_COLUMNS = (
    "id",
    "kind",
    "name",
    "relations",
    "status",
    "status_changed_at",
    "owner_id",
    "team_id",
    "tax_id",
    "website",
    "addresses",
    "phones",
    "emails",
    "tags",
    "contact_index",
    "custom",
    "created_at",
    "updated_at",
    "version",
)
_AUDIT_COLUMNS = ("at", "user_id", "action", "entity", "entity_id", "changes", "detail")
_RANGE_AUDIT_COLUMNS = (*_AUDIT_COLUMNS[:5], "entity_id_last", *_AUDIT_COLUMNS[5:])
_EVENT_COLUMNS = (
    "id",
    "name",
    "entity",
    "entity_id",
    "payload",
    "user_id",
    "occurred_at",
    "dispatched_at",
    "attempts",
    "last_error",
)
_STATUS_COLUMNS = ("party_id", "from_status", "to_status", "changed_at", "changed_by", "comment")
_CONTACT_COLUMNS = (
    "party_id",
    "name",
    "position",
    "role",
    "phones",
    "emails",
    "preferred_channel",
    "contact_index",
    "custom",
    "created_at",
    "updated_at",
    "version",
)


def _contact_record(party_id: int, contact: dict[str, Any], stamp: Any, enc: Any) -> tuple[Any, ...]:
    phones = contact.get("phones")
    emails = contact.get("emails")
    if not phones and not emails:  # most contacts: a name and a position
        return (
            party_id,
            contact["name"],
            contact.get("position", ""),
            "",
            "[]",
            "[]",
            "",
            "",
            "{}",
            stamp,
            stamp,
            1,
        )
    phones = phones or []
    emails = emails or []
    index = [f for p in phones for f in search_forms(p["number"])] + [e["address"] for e in emails]
    return (
        party_id,
        contact["name"],
        contact.get("position", ""),
        "",
        enc(phones).decode(),
        enc(emails).decode(),
        "",
        " ".join(index),
        "{}",
        stamp,
        stamp,
        1,
    )


#: Ids per ``parties.imported`` event: one search index write (and one plugin call) each.
IMPORTED_EVENT_IDS = DELIVER_BATCH


def id_ranges(ids: Sequence[int]) -> list[list[int]]:
    """``[1, 2, 3, 7]`` -> ``[[1, 3], [7, 7]]`` (sorted ids as inclusive ranges)."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


async def _insert(
    ctx: _Context,
    rows: list[_Row],
    default_owner: dict[str, Any] | None,
    actor: int | None,
    now: datetime,
    filename: str,
    report: ImportReport,
    progress: Progress | None,
) -> list[tuple[int, int]]:
    """INSERT the new parties and their first status entry in batches of ``WRITE_BATCH`` rows
    (multi-row INSERTs on SQLite, COPY on PostgreSQL), then one audit entry per contiguous
    range of the new ids and one ``parties.imported`` event per ``IMPORTED_EVENT_IDS`` parties.
    Returns (event id, parties).

    A per-party audit entry would repeat the whole row the party table and the file already
    hold, and per-party events would cost a plugin call and an outbox row each: at 100k rows
    they were half of the write time and most of the delivery time."""
    if not rows:
        return []
    users = ctx.users
    party_ids = await _reserve_ids("party", len(rows))
    pg = db.is_postgres()
    enc = msgspec.json.encode
    dumped: dict[tuple[str, ...], str] = {}

    def dumps(items: list[str]) -> str:
        """``json.dumps(items)``, once per distinct list (a file has few distinct tag lists)."""
        key = tuple(items)
        text = dumped.get(key)
        if text is None:
            text = dumped[key] = json.dumps(items)
        return text

    # SQLite: the text Piccolo's datetime adapter would produce, computed once instead of per value.
    stamp: Any = now if pg else str(now.astimezone(UTC))
    status_comment = f"import {filename}"
    writer = _Writer()
    total = len(rows)
    try:
        for start in range(0, total, WRITE_BATCH):
            parties: list[tuple[Any, ...]] = []
            statuses: list[tuple[Any, ...]] = []
            add_party = parties.append
            add_status = statuses.append
            for party_id, row in zip(
                party_ids[start : start + WRITE_BATCH], rows[start : start + WRITE_BATCH], strict=True
            ):
                v = row.values
                email = v.get("owner_email")
                owner = users[email] if email else default_owner
                status = v.get("status", "potential")
                relations = v.get("relations")
                phones = v.get("phones")
                emails = v.get("emails")
                tags = v.get("tags")
                addresses = v.get("addresses")
                custom = v.get("custom")
                if relations:
                    relations = sorted(set(relations))
                add_party(
                    (
                        party_id,
                        v.get("kind", "organisation"),
                        v["name"],
                        # ARRAY columns as Piccolo writes them on SQLite (json.dumps: the tag
                        # filter matches that text); JSON columns with msgspec, ten times faster.
                        (relations or ["client"])
                        if pg
                        else (dumps(relations) if relations else '["client"]'),
                        status,
                        stamp,
                        owner["id"] if owner else None,
                        owner["team_id"] if owner else None,
                        v.get("tax_id", ""),
                        v.get("website", ""),
                        enc(addresses).decode() if addresses else "[]",
                        enc(phones).decode() if phones else "[]",
                        enc(emails).decode() if emails else "[]",
                        (tags or []) if pg else (dumps(tags) if tags else "[]"),
                        row.index,
                        enc(custom).decode() if custom else "{}",
                        stamp,
                        stamp,
                        1,
                    )
                )
                add_status((party_id, None, status, stamp, actor, f"{status_comment} line {row.line}"))
            await writer.insert("party", _PARTY_COLUMNS, parties)
            await writer.insert("party_status_change", _STATUS_COLUMNS, statuses)
            contacts = [
                _contact_record(party_id, row.contact, stamp, enc)
                for party_id, row in zip(
                    party_ids[start : start + WRITE_BATCH], rows[start : start + WRITE_BATCH], strict=True
                )
                if row.contact
            ]
            await writer.insert("contact", _CONTACT_COLUMNS, contacts)
            report.contacts += len(contacts)
            if progress:
                progress("write", min(start + WRITE_BATCH, total), total)
        # One audit entry per contiguous range of the new ids (one per import on SQLite, whose
        # ids are a block; PostgreSQL's sequence may interleave another writer's): the log
        # filtered by a party's id finds the entry of the import that created it
        # (``audit_visibility.about_record``), without an entry per party repeating the row.
        ranges = id_ranges(party_ids)
        entries = []
        for first, last in ranges:
            count = last - first + 1
            changes = {"file": [None, filename], "created": [None, count], "ids": [None, [[first, last]]]}
            shown = f"{first}-{last}" if first != last else str(first)
            entries.append(
                (
                    stamp,
                    actor,
                    "import",
                    "party",
                    first,
                    last,
                    enc(changes).decode(),
                    f"import {filename}: {count} parties created (ids {shown})",
                )
            )
        await writer.insert("audit_log", _RANGE_AUDIT_COLUMNS, entries)
        chunks = [party_ids[i : i + IMPORTED_EVENT_IDS] for i in range(0, total, IMPORTED_EVENT_IDS)]
        event_ids = await _reserve_ids("domain_event", len(chunks))
        await writer.insert(
            "domain_event",
            _EVENT_COLUMNS,
            [
                (
                    event_id,
                    "parties.imported",
                    "party",
                    None,
                    enc({"ids": chunk, "file": filename}).decode(),
                    actor,
                    stamp,
                    None,
                    0,
                    "",
                )
                for event_id, chunk in zip(event_ids, chunks, strict=True)
            ],
        )
    except BaseException:
        await writer.drain()
        raise
    await writer.flush()
    report.imported = total
    report.imported_ids = party_ids
    return [(event_id, len(chunk)) for event_id, chunk in zip(event_ids, chunks, strict=True)]


async def _load_parties(ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for row in await Party.select().where(Party.id.is_in(chunk)).output(load_json=True):
            out[row["id"]] = row
    return out


@dataclass
class _Change:
    row: _Row
    old: dict[str, Any]
    new: dict[str, Any]
    diff: dict[str, list[Any]]


def _plan_updates(
    ctx: _Context, rows: list[_Row], loaded: dict[int, dict[str, Any]], now: datetime, report: ImportReport
) -> list[_Change]:
    """What each matched party becomes, as ``service.update`` would change it: filled cells
    replace scalar fields, phones/e-mails/addresses/tags/relations are added to the stored
    ones, custom fields are merged (then checked whole, required ones included)."""
    changes: list[_Change] = []
    for row in rows:
        assert row.target_id is not None
        old = loaded[row.target_id]
        new = dict(old)
        v = row.values
        for name in ("name", "kind", "status", "tax_id", "website"):
            if name in v:
                new[name] = v[name]
        for name, key in _LIST_KEYS.items():
            if name in v:
                new[name] = _merge_list(old.get(name) or [], v[name], key)
        new["relations"] = sorted(set(new["relations"] or ["client"]))
        if "custom" in v:
            new["custom"] = service.merge_custom(old.get("custom"), v["custom"])
            errors = _check_required_custom(ctx, new["custom"])
            try:
                customfields.validate_against(ctx.custom_schema, new["custom"])
            except ValidationFailed as exc:
                errors += [e for e in exc.errors if e not in errors]
            if errors:
                row.errors.extend(errors)
                continue
        if "owner_email" in v:
            owner = ctx.users[v["owner_email"]]
            if owner["id"] != old["owner_id"]:
                new["owner_id"] = owner["id"]
                new["team_id"] = owner["team_id"]
        if new["status"] != old["status"]:
            new["status_changed_at"] = now
        new["contact_index"] = contact_index(new["phones"] or [], new["emails"] or [])
        public_old = {k: x for k, x in old.items() if k != "contact_index"}
        public_new = {k: x for k, x in new.items() if k != "contact_index"}
        diff = audit.diff(public_old, public_new)
        if not diff:
            report.unchanged += 1
            continue
        changes.append(_Change(row, old, new, diff))
    return changes


_UPDATE_COLUMNS = (
    "name",
    "kind",
    "status",
    "status_changed_at",
    "owner_id",
    "team_id",
    "tax_id",
    "website",
    "relations",
    "addresses",
    "phones",
    "emails",
    "tags",
    "contact_index",
    "custom",
)
_JSON_COLUMNS = {"addresses", "phones", "emails", "custom"}


async def _write_updates(
    changes: list[_Change], actor: int | None, now: datetime, filename: str, report: ImportReport
) -> list[int]:
    """UPDATE the matched parties (new version), audit old -> new, ``party.updated`` events."""
    if not changes:
        return []
    conn = _connection()
    records = [
        (
            *(dump_json(c.new[col]) if col in _JSON_COLUMNS else c.new[col] for col in _UPDATE_COLUMNS),
            now,
            c.old["version"] + 1,
            c.old["id"],
        )
        for c in changes
    ]
    n = len(_UPDATE_COLUMNS)
    if db.is_postgres():
        sets = ", ".join(
            f'"{col}" = ${i}' + ("::json" if col in _JSON_COLUMNS else "")
            for i, col in enumerate(_UPDATE_COLUMNS, start=1)
        )
        sql = f"UPDATE party SET {sets}, updated_at = ${n + 1}, version = ${n + 2} WHERE id = ${n + 3}"
    else:
        sets = ", ".join(f'"{col}" = ?' for col in _UPDATE_COLUMNS)
        sql = f"UPDATE party SET {sets}, updated_at = ?, version = ? WHERE id = ?"
    await conn.executemany(sql, records)
    audits = []
    statuses = []
    announced: list[tuple[str, int, dict[str, Any]]] = []
    for c in changes:
        party_id = c.old["id"]
        audits.append(
            (
                now,
                actor,
                "update",
                "party",
                party_id,
                dump_json(c.diff),
                f"import {filename} line {c.row.line}",
            )
        )
        announced.append(("party.updated", party_id, {"id": party_id, "fields": sorted(c.diff)}))
        if c.new["status"] != c.old["status"]:
            statuses.append(
                (
                    party_id,
                    c.old["status"],
                    c.new["status"],
                    now,
                    actor,
                    f"import {filename} line {c.row.line}",
                )
            )
            announced.append(
                (
                    "party.status_changed",
                    party_id,
                    {"id": party_id, "from": c.old["status"], "to": c.new["status"]},
                )
            )
    await _bulk_insert("audit_log", _AUDIT_COLUMNS, audits)
    await _bulk_insert("party_status_change", _STATUS_COLUMNS, statuses)
    event_ids = await _reserve_ids("domain_event", len(announced))
    await _bulk_insert(
        "domain_event",
        _EVENT_COLUMNS,
        [
            (eid, name, "party", pid, dump_json(payload), actor, now, None, 0, "")
            for eid, (name, pid, payload) in zip(event_ids, announced, strict=True)
        ],
    )
    report.updated = len(changes)
    report.updated_ids = [c.old["id"] for c in changes]
    return event_ids
