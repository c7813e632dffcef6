"""Imports of activities and tasks through the API and the import page: a CSV or XLSX file runs
as a background job (``import.activities`` / ``import.tasks``), read by the parties importer's
reader (``tessera.importer.read_rows``: encodings, delimiters, XLSX), its columns mapped by
header (English, Russian and Ukrainian names) or by a mapping, each row linked to its party by
the party's external id (``external_ref``), e-mail, phone or tax id, then created through the
kernel's write path (``service.create``: the API's checks, visibility, audit and events), so a
file is checked exactly as ``POST /api/activities`` / ``POST /api/tasks`` would check its rows.

Rows are imported in chunks of ``CHUNK_ROWS``, each chunk in one transaction together with the
job's checkpoint: a worker killed in the middle leaves whole chunks, and the job taken over by
another worker continues at the checkpoint without creating a row twice. A dry run runs the
same code in a transaction that is rolled back. docs/integrations.md, "Import of activities and
tasks".
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from tessera import customfields, events, jobs
from tessera.entities import service
from tessera.entities.activities import ACTIVITY, ActivityIn
from tessera.entities.channels import normalise_email, normalise_phone
from tessera.entities.dto import set_fields
from tessera.entities.tables import BackgroundJob, CrmUser, ExternalRef
from tessera.entities.tasks import TASK, TaskIn
from tessera.errors import DomainError, FieldError
from tessera.importer import (
    IGNORE,
    ImportFailed,
    _coerce_custom,
    _existing_keys,
    normalise_header,
    normalise_tax_id,
)
from tessera.imports import REJECTED_SHOWN, _rows
from tessera.permissions import Principal, build_principal

KINDS = {"activities": "import.activities", "tasks": "import.tasks"}
#: Rows per transaction (and checkpoint): each row goes through the kernel's write path.
CHUNK_ROWS = 1000

#: How a row names its party (any of them; the first that finds a party wins, in this order).
LINKS = ("party_external_id", "party_tax_id", "party_email", "party_phone")

# fmt: off
_LINK_ALIASES: dict[str, tuple[str, ...]] = {
    "party_external_id": (
        "party external id", "external id", "client code", "код контрагента", "код клиента",
        "внешний код", "код клієнта", "зовнішній код",
    ),
    "party_tax_id": ("tax id", "inn", "vat", "инн", "инн клиента", "єдрпоу", "код єдрпоу", "рнокпп"),
    "party_email": (
        "party email", "client email", "email", "e mail", "почта", "email клиента", "e mail клиента",
        "почта клиента", "email клієнта", "e mail клієнта", "пошта клієнта", "електронна пошта",
    ),
    "party_phone": (
        "party phone", "client phone", "phone", "телефон", "телефон клиента", "телефон клієнта",
    ),
}
ACTIVITY_ALIASES: dict[str, tuple[str, ...]] = {
    "type": ("type", "activity type", "kind", "тип", "вид", "тип активности", "тип активності"),
    "subject": ("subject", "topic", "title", "тема", "предмет"),
    "starts_at": (
        "date", "when", "starts at", "start", "date and time", "дата", "начало", "дата и время",
        "дата і час", "початок", "когда", "коли",
    ),
    "status": ("status", "статус", "состояние", "стан"),
    "description": ("description", "notes", "comment", "описание", "комментарий", "опис", "коментар"),
    "direction": ("direction", "направление", "напрямок"),
    "duration_minutes": (
        "duration", "duration minutes", "minutes", "длительность", "длительность мин", "минуты",
        "тривалість", "хвилини",
    ),
    "outcome": ("outcome", "result", "итог", "результат", "підсумок"),
    "agreements": ("agreements", "договоренности", "домовленості"),
    "owner": ("owner", "responsible", "manager", "ответственный", "менеджер", "відповідальний"),
    **_LINK_ALIASES,
}
TASK_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("title", "task", "subject", "задача", "название", "тема", "назва", "завдання"),
    "description": ("description", "notes", "comment", "описание", "комментарий", "опис", "коментар"),
    "deadline": ("deadline", "due", "due date", "срок", "крайний срок", "дедлайн", "термін"),
    "priority": ("priority", "приоритет", "пріоритет"),
    "status": ("status", "статус", "состояние", "стан"),
    "result": ("result", "результат"),
    "assignee": (
        "assignee", "executor", "responsible", "исполнитель", "ответственный", "виконавець", "відповідальний",
    ),
    "controller": ("controller", "контролер", "контролирующий", "контролюючий"),
    **_LINK_ALIASES,
}
ACTIVITY_TYPE_WORDS: dict[str, str] = {
    **dict.fromkeys(("call", "phone call", "звонок", "телефонный звонок", "дзвінок"), "call"),
    **dict.fromkeys(("meeting", "встреча", "зустріч"), "meeting"),
    **dict.fromkeys(("email", "e mail", "электронное письмо", "электронная почта", "лист e mail"), "email"),
    **dict.fromkeys(("letter", "письмо", "лист"), "letter"),
    **dict.fromkeys(("seminar", "семинар", "семінар"), "seminar"),
    **dict.fromkeys(("mailing", "рассылка", "розсилка"), "mailing"),
    **dict.fromkeys(("claim", "претензия", "жалоба", "претензія", "скарга"), "claim"),
    **dict.fromkeys(("note", "заметка", "примечание", "нотатка", "примітка"), "note"),
}
ACTIVITY_STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(("planned", "plan", "запланировано", "запланирована", "план", "заплановано"), "planned"),
    **dict.fromkeys(
        ("done", "completed", "held", "выполнено", "проведена", "проведено", "сделано", "виконано"), "done"
    ),
    **dict.fromkeys(("cancelled", "canceled", "отменено", "отменена", "скасовано"), "cancelled"),
}
TASK_STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(("open", "new", "открыта", "новая", "відкрита", "нова"), "open"),
    **dict.fromkeys(("in progress", "in_progress", "в работе", "в роботі"), "in_progress"),
    **dict.fromkeys(("done", "completed", "выполнена", "выполнено", "виконана", "виконано"), "done"),
    **dict.fromkeys(("cancelled", "canceled", "отменена", "скасована"), "cancelled"),
}
PRIORITY_WORDS: dict[str, str] = {
    **dict.fromkeys(("low", "низкий", "низький"), "low"),
    **dict.fromkeys(("normal", "medium", "обычный", "средний", "звичайний", "середній"), "normal"),
    **dict.fromkeys(("high", "высокий", "високий"), "high"),
    **dict.fromkeys(("urgent", "срочный", "терміновий"), "urgent"),
}
DIRECTION_WORDS: dict[str, str] = {
    **dict.fromkeys(("in", "incoming", "inbound", "входящий", "входящее", "вхідний", "вхідне"), "in"),
    **dict.fromkeys(("out", "outgoing", "outbound", "исходящий", "исходящее", "вихідний", "вихідне"), "out"),
}
# fmt: on


@dataclass(frozen=True)
class RecordKind:
    name: str  # "activities" | "tasks"
    spec: service.EntitySpec
    struct: type[msgspec.Struct]
    aliases: dict[str, tuple[str, ...]]
    #: Columns holding a user's e-mail -> the struct's field.
    users: dict[str, str]
    #: Columns holding a date-time.
    moments: tuple[str, ...]
    #: Columns given as words -> their word table.
    words: dict[str, dict[str, str]]
    required: tuple[str, ...]
    index: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for target, names in self.aliases.items():
            for alias in names:
                self.index.setdefault(normalise_header(alias), target)

    @property
    def targets(self) -> tuple[str, ...]:
        return (*self.aliases, IGNORE)


RECORD_KINDS = {
    "activities": RecordKind(
        "activities",
        ACTIVITY,
        ActivityIn,
        ACTIVITY_ALIASES,
        users={"owner": "owner_id"},
        moments=("starts_at",),
        words={
            "type": ACTIVITY_TYPE_WORDS,
            "status": ACTIVITY_STATUS_WORDS,
            "direction": DIRECTION_WORDS,
        },
        required=("type", "subject", "starts_at"),
    ),
    "tasks": RecordKind(
        "tasks",
        TASK,
        TaskIn,
        TASK_ALIASES,
        users={"assignee": "assignee_id", "controller": "controller_id"},
        moments=("deadline",),
        words={"status": TASK_STATUS_WORDS, "priority": PRIORITY_WORDS},
        required=("title",),
    ),
}


def parse_mapping(kind: RecordKind, pairs: dict[str, str]) -> dict[str, str]:
    """``{"Column": "field"}`` checked against the kind's fields -> {header: field}."""
    out: dict[str, str] = {}
    for header, target in pairs.items():
        target = target.strip()
        if target not in kind.targets and not (target.startswith("custom.") and len(target) > 7):
            raise ImportFailed(
                f"{header}: unknown field {target!r}; use one of {', '.join(kind.targets)} or custom.<name>"
            )
        out[header.strip()] = target
        out[normalise_header(header)] = target
    return out


def columns_of(kind: RecordKind, header: list[str], mapping: dict[str, str]) -> dict[int, tuple[str, str]]:
    """Column index -> (header, field) for the columns read; a field is taken once (first column)."""
    out: dict[int, tuple[str, str]] = {}
    taken: set[str] = set()
    for i, raw in enumerate(header):
        title = raw.replace("\ufeff", "").strip()
        if not title:
            continue
        key = normalise_header(title)
        target = mapping.get(title) or mapping.get(key)
        if target is None:
            if title.lower().startswith("custom."):
                target = "custom." + title[len("custom.") :]
            else:
                target = kind.index.get(key)
        if target is None or target == IGNORE or target in taken:
            continue
        taken.add(target)
        out[i] = (title, target)
    missing = [f for f in kind.required if f not in taken]
    if missing:
        raise ImportFailed(
            f"no column for {', '.join(missing)}: name it in the header or map a column to it "
            f"(headers: {', '.join(h for h in header if h.strip())})"
        )
    return out


_DATE_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y")


def parse_moment(text: str, zone: Any, end_of_day: bool = False) -> datetime:
    """``2026-03-02T10:00:00+03:00``, ``2026-03-02 10:00``, ``02.03.2026 10:00``, ``02.03.2026``;
    a time without a zone is in ``zone``; a date alone is 09:00 (a deadline: 18:00)."""
    value: datetime | None = None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                value = datetime.strptime(text, fmt)
                if "%H" not in fmt:
                    value = datetime.combine(value.date(), dtime(18 if end_of_day else 9))
                break
            except ValueError:
                continue
    if value is None:
        raise ValueError(f"{text!r} is not a date (2026-03-02 10:00 or 02.03.2026 10:00)")
    # A date alone, also as an XLSX date cell reads (``2026-03-02T00:00:00``, a datetime at midnight).
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}(T00:00:00)?", text):
        value = datetime.combine(date.fromisoformat(text[:10]), dtime(18 if end_of_day else 9))
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


@dataclass
class _Parsed:
    line: int
    values: dict[str, Any]
    raw: dict[str, str]
    links: dict[str, str]
    errors: list[FieldError]


def _parse(
    kind: RecordKind,
    columns: dict[int, tuple[str, str]],
    line: int,
    cells: list[str],
    zone: Any,
    users: dict[str, int],
    schema: dict[str, Any],
) -> _Parsed:
    values: dict[str, Any] = {}
    links: dict[str, str] = {}
    errors: list[FieldError] = []
    raw = {header: (cells[i] if i < len(cells) else "") for i, (header, _) in columns.items()}
    for i, (header, target) in columns.items():
        text = cells[i].strip() if i < len(cells) else ""
        if not text:
            continue
        problem = f"column {header!r}: {text!r}"
        if target in LINKS:
            links[target] = text
        elif target in kind.users:
            user_id = users.get(text.lower())
            if user_id is None:
                errors.append(
                    FieldError(kind.users[target], f"{problem} is not the e-mail of an active user")
                )
            else:
                values[kind.users[target]] = user_id
        elif target in kind.moments:
            try:
                values[target] = parse_moment(text, zone, end_of_day=target == "deadline")
            except ValueError as exc:
                errors.append(FieldError(target, f"column {header!r}: {exc}"))
        elif target in kind.words:
            word = normalise_header(text)
            known = kind.words[target]
            value = known.get(word) or (text if text in known.values() else None)
            if value is None:
                allowed = ", ".join(sorted(set(known.values())))
                errors.append(FieldError(target, f"{problem} is not one of {allowed}"))
            else:
                values[target] = value
        elif target == "duration_minutes":
            digits = text.replace(" ", "")
            if not digits.isdigit():
                errors.append(FieldError(target, f"{problem} is not a whole number of minutes"))
            else:
                values[target] = int(digits)
        elif target.startswith("custom."):
            name = target[len("custom.") :]
            prop = schema.get("properties", {}).get(name)
            values.setdefault("custom", {})[name] = _coerce_custom(text, prop)
        else:
            values[target] = text
    if not errors:
        try:
            msgspec.convert(values, kind.struct)
        except msgspec.ValidationError as exc:
            message = str(exc)
            found = re.search(r"at `\$\.(\w+)", message) or re.search(r"field `(\w+)`", message)
            errors.append(FieldError(found.group(1) if found else "", message))
    return _Parsed(line, values, raw, links, errors)


async def _party_links(rows: list[_Parsed], system: str) -> dict[str, int]:
    """Key -> party id for every link the chunk's rows name, in two queries."""
    found: dict[str, int] = {}
    external = sorted({r.links["party_external_id"] for r in rows if "party_external_id" in r.links})
    if external:
        for ref in await ExternalRef.select(ExternalRef.entity_id, ExternalRef.external_id).where(
            ExternalRef.system == system,
            ExternalRef.entity == "party",
            ExternalRef.external_id.is_in(external),
        ):
            found["ext:" + ref["external_id"]] = int(ref["entity_id"])
    wanted: set[str] = set()
    for r in rows:
        wanted.update(k for k in _keys(r, with_external=False) if k)
    found.update(await _existing_keys(wanted))
    return found


def _keys(row: _Parsed, with_external: bool = True) -> list[str]:
    """The lookup keys of a row's links, in the order of ``LINKS`` ("" for a value that cannot
    be a key: a malformed e-mail or phone, reported by ``_link``)."""
    out: list[str] = []
    for link in LINKS:
        text = row.links.get(link)
        if text is None:
            continue
        if link == "party_external_id":
            if with_external:
                out.append("ext:" + text)
        elif link == "party_tax_id":
            out.append("tax:" + normalise_tax_id(text))
        elif link == "party_email":
            try:
                out.append("email:" + normalise_email(text))
            except ValueError:
                out.append("")
        else:
            try:
                out.append("phone:" + normalise_phone(text).lstrip("+"))
            except ValueError:
                out.append("")
    return out


def _link(row: _Parsed, found: dict[str, int]) -> None:
    """Set the row's ``party_id`` from its links, or add an error naming the link column."""
    if not row.links:
        return
    for key in _keys(row):
        if key and key in found:
            row.values["party_id"] = found[key]
            return
    named = ", ".join(f"{k} {row.links[k]!r}" for k in LINKS if k in row.links)
    row.errors.append(FieldError(next(k for k in LINKS if k in row.links), f"no party with {named}"))


def _rejected(row: _Parsed) -> dict[str, Any]:
    return {"line": row.line, "errors": [e.as_dict() for e in row.errors], "values": row.raw}


class _RollBack(Exception):
    """Leaves a dry run's transaction without committing."""


@dataclass
class RecordImport:
    kind: RecordKind
    principal: Principal
    columns: dict[int, tuple[str, str]]
    zone: Any
    system: str
    users: dict[str, int]
    schema: dict[str, Any]

    async def chunk(
        self,
        data: list[tuple[int, list[str]]],
        state: dict[str, Any],
        dry_run: bool,
        before_commit: Callable[[], Any] | None = None,
    ) -> None:
        """Check and create one chunk's rows in one transaction (rolled back for a dry run),
        adding what happened to ``state``."""
        rows = [
            _parse(self.kind, self.columns, line, cells, self.zone, self.users, self.schema)
            for line, cells in data
        ]
        created: list[int] = []
        try:
            async with events.unit_of_work():
                found = await _party_links([r for r in rows if not r.errors], self.system)
                for row in rows:
                    if not row.errors:
                        _link(row, found)
                    if row.errors:
                        continue
                    # As the API's create route hands the body over (``set_fields``).
                    values = set_fields(msgspec.convert(row.values, self.kind.struct))
                    try:
                        record = await service.create(self.kind.spec, self.principal, values)
                    except DomainError as exc:
                        row.errors.extend(exc.errors or [FieldError("", exc.detail)])
                        continue
                    created.append(int(record["id"]))
                _count(state, rows, created)
                if before_commit is not None:
                    await before_commit()
                if dry_run:
                    raise _RollBack
        except _RollBack:
            pass


def _count(state: dict[str, Any], rows: list[_Parsed], created: list[int]) -> None:
    state["imported"] = state.get("imported", 0) + len(created)
    bad = [r for r in rows if r.errors]
    state["rejected_count"] = state.get("rejected_count", 0) + len(bad)
    shown = state.setdefault("rejected", [])
    for r in bad[: max(0, REJECTED_SHOWN - len(shown))]:
        shown.append(_rejected(r))
    ids = state.setdefault("first_ids", [])
    ids.extend(created[: max(0, 20 - len(ids))])


def zone_of(name: str | None) -> Any:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


async def _active_users() -> dict[str, int]:
    rows = await CrmUser.select(CrmUser.id, CrmUser.email).where(CrmUser.is_active.eq(True))
    return {r["email"].lower(): int(r["id"]) for r in rows}


async def _job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    kind = RECORD_KINDS[payload["kind"]]
    if ctx.created_by is None:
        raise jobs.PermanentFailure("an API import needs the user who started it")
    try:
        principal = await build_principal(ctx.created_by)
    except Exception as exc:
        raise jobs.PermanentFailure(f"the user who started the import cannot act any more: {exc}") from exc
    path = Path(payload["path"])
    if not path.is_file():  # noqa: ASYNC240 - one stat of a local file
        raise jobs.PermanentFailure(f"the uploaded file {path.name} is gone")
    started = time.perf_counter()
    try:
        header, data = _rows(path, payload.get("encoding"))
        columns = columns_of(kind, header, payload.get("mapping") or {})
        zone = zone_of(payload.get("timezone"))
    except (ImportFailed, UnicodeDecodeError, ValueError) as exc:
        raise jobs.PermanentFailure(str(exc)) from exc
    importer = RecordImport(
        kind,
        principal,
        columns,
        zone,
        payload.get("external_system") or "accounting",
        await _active_users(),
        await customfields.effective_schema(service.plugin_manager(), kind.spec.name),
    )
    total = len(data)
    filename = payload.get("filename") or path.name
    base = {
        "file": filename,
        "rows_read": total,
        "columns": {header: target for header, target in columns.values()},
    }
    chunks = [data[i : i + CHUNK_ROWS] for i in range(0, total, CHUNK_ROWS)]
    dry_run = bool(payload.get("dry_run"))
    if dry_run or not payload.get("skip_invalid", True):
        # The whole file checked (and rolled back): a dry run's report, or all-or-nothing's verdict.
        checked: dict[str, Any] = {**base, "dry_run": dry_run}
        for index, chunk in enumerate(chunks):
            await importer.chunk(chunk, checked, dry_run=True)
            await ctx.progress(min((index + 1) * CHUNK_ROWS, total), total, "checked")
        if dry_run or checked.get("rejected_count"):
            checked["committed"] = False
            checked["seconds"] = round(time.perf_counter() - started, 3)
            return checked
    row = await BackgroundJob.select(BackgroundJob.progress).where(BackgroundJob.id == ctx.id).first()
    saved = row["progress"] if row else None
    saved = json.loads(saved) if isinstance(saved, str) else (saved or {})
    state: dict[str, Any] = dict(saved.get("state") or {**base, "dry_run": False})
    for index in range(int(saved.get("chunk", 0)), len(chunks)):
        after = json.loads(json.dumps(state))

        async def checkpoint(index: int = index, after: dict[str, Any] = after) -> None:
            progress = {
                "done": min((index + 1) * CHUNK_ROWS, total),
                "total": total,
                "message": f"chunk {index + 1} of {len(chunks)}",
                "chunk": index + 1,
                "state": after,
            }
            await BackgroundJob.update({BackgroundJob.progress: progress}).where(
                BackgroundJob.id == ctx.id, BackgroundJob.attempts == ctx.attempt
            )

        await importer.chunk(chunks[index], after, dry_run=False, before_commit=checkpoint)
        state = after
    state["committed"] = True
    state["seconds"] = round(time.perf_counter() - started, 3)
    return state


@jobs.kernel_kind(KINDS["activities"], timeout=3600)
async def import_activities_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return await _job(ctx, {**payload, "kind": "activities"})


@jobs.kernel_kind(KINDS["tasks"], timeout=3600)
async def import_tasks_job(ctx: jobs.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return await _job(ctx, {**payload, "kind": "tasks"})
