"""Query-string filters of each entity, as Litestar dependencies (so they appear in OpenAPI
and are shared by list, count and export)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar.params import Parameter
from piccolo.columns import Column
from piccolo.columns.combination import WhereRaw

from tessera import db
from tessera.entities.activities import ActivityStatus, ActivityType
from tessera.entities.dto import MAX_ID
from tessera.entities.parties import LifecycleStatus, PartyKind, Relation
from tessera.entities.tables import (
    Activity,
    Attachment,
    Contact,
    CrmUser,
    Note,
    Party,
    Role,
    Substitution,
    Task,
    Team,
)
from tessera.entities.tasks import Priority, TaskStatus
from tessera.errors import ValidationFailed

Q = Annotated[str | None, Parameter(description="Part of the name (case-insensitive)", max_length=200)]
#: A record id in a filter: out-of-range ids are a 422 on the parameter, not a database error.
IdQ = Annotated[int | None, Parameter(ge=1, le=MAX_ID)]
#: A time in a filter must say its time zone (a naive time would mean something different on
#: each server and engine): 2026-03-02T09:00:00Z or 2026-03-02T12:00:00+03:00.
When = Annotated[datetime | None, Parameter(description="ISO 8601 with a time zone")]


def _aware(**values: datetime | None) -> None:
    # Litestar drops msgspec's Meta(tz=True) on query parameters, so the check is explicit.
    for name, value in values.items():
        if value is not None and value.tzinfo is None:
            raise ValidationFailed.field(name, "must carry a time zone (e.g. 2026-03-02T09:00:00Z)")


def array_contains(column: Column, value: str) -> Any:
    """Array membership that is exact on both engines (Piccolo's SQLite ``any`` is a substring
    match, so "vip" would also match "vip2")."""
    if db.is_postgres():
        return column.any(value)
    escaped = value.replace('"', '\\"')
    return column.like(f'%"{escaped}"%')


def _contact_needle(raw: str) -> str:
    """The ``contact_index`` token for what a user typed: E.164 digits for a phone in any
    format, the normalised address for an e-mail."""
    from tessera.entities.channels import normalise_email, normalise_phone

    needle = raw.strip().lower()
    if "@" in needle:
        try:
            needle = normalise_email(needle)
        except ValueError:
            pass
    else:
        try:
            needle = normalise_phone(needle).lstrip("+")  # the E.164 digits are always indexed
        except ValueError:
            needle = "".join(ch for ch in needle if ch.isdigit()) or needle
    return needle.replace(" ", "")


def _token_sql(column_sql: str) -> str:
    # Whole-token match in a space-separated index: " a b c " LIKE "% b %" (one placeholder).
    return f"(' ' || {column_sql} || ' ') LIKE {{}} ESCAPE '\\'"


def _token_pattern(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"% {escaped} %"


def contact_index_match(column: Column, raw: str) -> Any:
    """Exact match of one phone (any format) or e-mail against a space-separated
    ``contact_index``: the needle must be a whole token, so 4951234567 does not find
    +1 495 123 4567 (14951234567) and sales@x.example does not find xsales@x.example."""
    needle = _contact_needle(raw)
    if not needle:
        return WhereRaw("1 = 0")
    return WhereRaw(_token_sql(column._meta.get_full_name(with_alias=False)), _token_pattern(needle))


def party_channel_match(raw: str) -> Any:
    """Parties whose own phones/e-mails match, or one of whose contacts' do: an incoming call
    from the accountant's mobile finds the client."""
    needle = _contact_needle(raw)
    if not needle:
        return WhereRaw("1 = 0")
    pattern = _token_pattern(needle)
    own = _token_sql(Party.contact_index._meta.get_full_name(with_alias=False))
    via_contact = _token_sql('"contact"."contact_index"')
    return WhereRaw(
        f'({own} OR "party"."id" IN (SELECT "contact"."party_id" FROM "contact" WHERE {via_contact}))',
        pattern,
        pattern,
    )


def _glob_ignoring_case(text: str) -> str:
    """A GLOB pattern matching ``text`` anywhere in any letter case: "Ром" -> "*[Рр][Оо][Мм]*".

    SQLite's LIKE folds only ASCII letters, so "ромашка" would not find "ООО Ромашка" there;
    GLOB's character classes fold every letter that has a one-letter upper/lower case."""
    parts = []
    for ch in text:
        variants = sorted({v for v in (ch, ch.lower(), ch.upper()) if len(v) == 1})
        if len(variants) > 1:
            parts.append("[" + "".join(variants) + "]")
        elif ch in "*?[":
            parts.append(f"[{ch}]")  # GLOB's own wildcards, matched literally
        else:
            parts.append(ch)
    return "*" + "".join(parts) + "*"


def _contains(column: Column, text: str) -> Any:
    """Case-insensitive substring match, the same on both engines (Cyrillic included)."""
    if db.is_postgres():
        return column.ilike(f"%{text.replace('%', '').replace('_', '')}%")
    return WhereRaw(f"{column._meta.get_full_name(with_alias=False)} GLOB {{}}", _glob_ignoring_case(text))


def party_filters(
    q: Q = None,
    kind: PartyKind | None = None,
    relation: Relation | None = None,
    status: LifecycleStatus | None = None,
    owner_id: IdQ = None,
    team_id: IdQ = None,
    tag: Annotated[str | None, Parameter(max_length=100)] = None,
    phone_or_email: Annotated[
        str | None, Parameter(description="Any phone format or an e-mail; matched exactly", max_length=254)
    ] = None,
    created_after: When = None,
    created_before: When = None,
    updated_after: When = None,
) -> list[Any]:
    _aware(created_after=created_after, created_before=created_before, updated_after=updated_after)
    out: list[Any] = []
    if q:
        out.append(_contains(Party.name, q))
    if kind:
        out.append(Party.kind == kind)
    if relation:
        out.append(array_contains(Party.relations, relation))
    if status:
        out.append(Party.status == status)
    if owner_id is not None:
        out.append(Party.owner_id == owner_id)
    if team_id is not None:
        out.append(Party.team_id == team_id)
    if tag:
        out.append(array_contains(Party.tags, tag))
    if phone_or_email:
        out.append(party_channel_match(phone_or_email))
    if created_after:
        out.append(Party.created_at >= created_after)
    if created_before:
        out.append(Party.created_at < created_before)
    if updated_after:
        out.append(Party.updated_at >= updated_after)
    return out


def contact_filters(
    q: Q = None,
    party_id: IdQ = None,
    phone_or_email: Annotated[
        str | None, Parameter(description="Any phone format or an e-mail; matched exactly", max_length=254)
    ] = None,
) -> list[Any]:
    out: list[Any] = []
    if q:
        out.append(_contains(Contact.name, q))
    if phone_or_email:
        out.append(contact_index_match(Contact.contact_index, phone_or_email))
    if party_id is not None:
        out.append(Contact.party_id == party_id)
    return out


def activity_filters(
    type: ActivityType | None = None,
    status: ActivityStatus | None = None,
    party_id: IdQ = None,
    owner_id: IdQ = None,
    starts_after: When = None,
    starts_before: When = None,
    q: Annotated[str | None, Parameter(description="Part of the subject", max_length=200)] = None,
    team_id: IdQ = None,
    overdue: Annotated[bool | None, Parameter(description="Only planned activities already past")] = None,
) -> list[Any]:
    from tessera import clock

    _aware(starts_after=starts_after, starts_before=starts_before)
    out: list[Any] = []
    if team_id is not None:
        out.append(Activity.team_id == team_id)
    if overdue:
        out.append(Activity.status == "planned")
        out.append(Activity.starts_at < clock.now())
    if type:
        out.append(Activity.type == type)
    if status:
        out.append(Activity.status == status)
    if party_id is not None:
        out.append(Activity.party_id == party_id)
    if owner_id is not None:
        out.append(Activity.owner_id == owner_id)
    if starts_after:
        out.append(Activity.starts_at >= starts_after)
    if starts_before:
        out.append(Activity.starts_at < starts_before)
    if q:
        out.append(_contains(Activity.subject, q))
    return out


def task_filters(
    status: TaskStatus | None = None,
    open: Annotated[bool | None, Parameter(description="Only open / in-progress tasks")] = None,
    assignee_id: IdQ = None,
    author_id: IdQ = None,
    controller_id: IdQ = None,
    party_id: IdQ = None,
    priority: Priority | None = None,
    overdue: Annotated[bool | None, Parameter(description="Only open tasks past their deadline")] = None,
    deadline_before: When = None,
    team_id: IdQ = None,
) -> list[Any]:
    from tessera import clock

    _aware(deadline_before=deadline_before)
    out: list[Any] = []
    if team_id is not None:
        out.append(Task.team_id == team_id)
    if status:
        out.append(Task.status == status)
    if open:
        out.append(Task.status.is_in(["open", "in_progress"]))
    if assignee_id is not None:
        out.append(Task.assignee_id == assignee_id)
    if author_id is not None:
        out.append(Task.author_id == author_id)
    if controller_id is not None:
        out.append(Task.controller_id == controller_id)
    if party_id is not None:
        out.append(Task.party_id == party_id)
    if priority:
        out.append(Task.priority == priority)
    if overdue:
        out.append(Task.status.is_in(["open", "in_progress"]))
        out.append(Task.deadline < clock.now())
    if deadline_before:
        out.append(Task.deadline < deadline_before)
    return out


def note_filters(party_id: IdQ = None, subject_ref: str | None = None) -> list[Any]:
    out: list[Any] = []
    if party_id is not None:
        out.append(Note.party_id == party_id)
    if subject_ref:
        out.append(Note.subject_ref == subject_ref)
    return out


def attachment_filters(party_id: IdQ = None, subject_ref: str | None = None) -> list[Any]:
    out: list[Any] = []
    if party_id is not None:
        out.append(Attachment.party_id == party_id)
    if subject_ref:
        out.append(Attachment.subject_ref == subject_ref)
    return out


def user_filters(q: Q = None, team_id: IdQ = None, is_active: bool | None = None) -> list[Any]:
    out: list[Any] = []
    if q:
        out.append(_contains(CrmUser.name, q) | _contains(CrmUser.email, q))
    if team_id is not None:
        out.append(CrmUser.team_id == team_id)
    if is_active is not None:
        out.append(CrmUser.is_active == is_active)
    return out


def team_filters(q: Q = None) -> list[Any]:
    return [_contains(Team.name, q)] if q else []


def role_filters(q: Q = None) -> list[Any]:
    return [_contains(Role.name, q)] if q else []


def substitution_filters(
    absent_user_id: IdQ = None,
    substitute_id: IdQ = None,
    active_at: Annotated[
        datetime | None, Parameter(description="Only substitutions in force at this time (with a time zone)")
    ] = None,
) -> list[Any]:
    _aware(active_at=active_at)
    out: list[Any] = []
    if absent_user_id is not None:
        out.append(Substitution.absent_user_id == absent_user_id)
    if substitute_id is not None:
        out.append(Substitution.substitute_id == substitute_id)
    if active_at is not None:
        out.append(Substitution.starts_at <= active_at)
        out.append(Substitution.ends_at > active_at)
    return out
