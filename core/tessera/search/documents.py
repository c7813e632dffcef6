"""Search documents: the types that exist, how kernel records become documents, and the access
list (ACL) stored with each document so visibility is applied inside the search query.

A document's ACL mirrors the entity's visibility rule in ``tessera.permissions`` and the entity
modules: the user ids and team ids that grant read access. A principal sees a document when it
sees every record (``user_ids is None``) or when ``acl_users ∩ principal.user_ids`` or
``acl_teams ∩ principal.team_ids`` is not empty, and it holds the type's read permission.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from piccolo.table import Table

from tessera.entities.tables import Activity, Contact, Note, Party, Task

#: Bump when the analysis or the stored fields change: indexes built by an older version are
#: rebuilt automatically at start-up.
SCHEMA_VERSION = 2

#: The pseudo user id of "everyone who may see the type": a document whose access list holds it
#: is visible to every caller holding the type's read permission (a published knowledge-base
#: article), whatever their record scope; every search carries it among the caller's users.
EVERYONE = 0


@dataclass(frozen=True)
class SearchType:
    """A document type in search, declared by the kernel or by a plugin's
    ``tessera_search_types`` hook.

    :param name: the document type (``"deal"``), unique across plugins.
    :param label: shown as the group heading in results (``"Deals"``).
    :param permission: permission needed to see hits of this type (``"sales.deal.read"``), or
        a tuple of permissions any one of which is enough; ``None``: any user with
        ``search.use`` (record visibility still applies).
    :param entity: the entity whose domain events (``<entity>.created|updated|deleted``) refresh
        these documents; defaults to ``name``.
    :param table: the Piccolo table holding that entity's records (primary key ``id``), read to
        index a changed record and by ``tessera search reindex``.
    """

    name: str
    label: str
    permission: str | tuple[str, ...] | None = None
    entity: str = ""
    table: type[Table] | None = None

    @property
    def source_entity(self) -> str:
        return self.entity or self.name


@dataclass
class Document:
    """One searchable document, normalised from what a builder or plugin returned."""

    type: str
    id: int
    title: str
    body: str = ""
    #: The record the document was built from, ``"entity:id"``; changes of that record replace
    #: every document it produced.
    source: str = ""
    party_id: int | None = None
    #: The user the hit is "about" (responsible manager, assignee, author): the owner facet.
    owner_id: int | None = None
    acl_users: set[int] = field(default_factory=set)
    acl_teams: set[int] = field(default_factory=set)
    #: The date filters and the date facet use (activity time, task deadline, creation).
    date: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.type}:{self.id}"


KERNEL_TYPES: list[SearchType] = [
    SearchType("party", "Parties", "party.read", table=Party),
    SearchType("contact", "Contacts", "party.read", table=Contact),
    SearchType("activity", "Activities", "activity.read", table=Activity),
    SearchType("task", "Tasks", "task.read", table=Task),
    SearchType("note", "Notes", "note.read", table=Note),
]


def _ids(*values: Any) -> set[int]:
    return {int(v) for v in values if v is not None}


def _join(*parts: Any) -> str:
    return "\n".join(str(p) for p in parts if p not in (None, "", [], {}))


def _channels(record: dict[str, Any]) -> list[str]:
    phones = [p.get("number", "") for p in record.get("phones") or [] if isinstance(p, dict)]
    emails = [e.get("address", "") for e in record.get("emails") or [] if isinstance(e, dict)]
    return [*phones, *emails]


def _custom_text(custom: Any) -> str:
    if not isinstance(custom, dict):
        return ""
    return " ".join(str(v) for v in custom.values() if isinstance(v, str | int | float) and v != "")


def party_document(record: dict[str, Any]) -> Document:
    addresses = [a.get("text", "") for a in record.get("addresses") or [] if isinstance(a, dict)]
    return Document(
        type="party",
        id=record["id"],
        title=record["name"],
        body=_join(
            " ".join(_channels(record)),
            record.get("tax_id"),
            record.get("website"),
            " ".join(record.get("tags") or []),
            "\n".join(addresses),
            _custom_text(record.get("custom")),
        ),
        party_id=record["id"],
        owner_id=record.get("owner_id"),
        acl_users=_ids(record.get("owner_id")),
        acl_teams=_ids(record.get("team_id")),
        date=record.get("created_at"),
    )


def contact_document(record: dict[str, Any], party: dict[str, Any] | None) -> Document:
    party = party or {}
    return Document(
        type="contact",
        id=record["id"],
        title=record["name"],
        body=_join(
            record.get("position"),
            record.get("role"),
            " ".join(_channels(record)),
            party.get("name"),
            _custom_text(record.get("custom")),
        ),
        party_id=record.get("party_id"),
        owner_id=party.get("owner_id"),
        acl_users=_ids(party.get("owner_id")),
        acl_teams=_ids(party.get("team_id")),
        date=record.get("created_at"),
    )


def activity_document(record: dict[str, Any], party: dict[str, Any] | None) -> Document:
    party = party or {}
    return Document(
        type="activity",
        id=record["id"],
        title=record["subject"],
        body=_join(
            record.get("description"),
            record.get("outcome"),
            record.get("agreements"),
            _custom_text(record.get("custom")),
        ),
        party_id=record.get("party_id"),
        owner_id=record.get("owner_id"),
        acl_users=_ids(record.get("owner_id"), party.get("owner_id")),
        acl_teams=_ids(record.get("team_id"), party.get("team_id")),
        date=record.get("starts_at"),
    )


def task_document(record: dict[str, Any], party: dict[str, Any] | None) -> Document:
    party = party or {}
    return Document(
        type="task",
        id=record["id"],
        title=record["title"],
        body=_join(record.get("description"), record.get("result"), _custom_text(record.get("custom"))),
        party_id=record.get("party_id"),
        owner_id=record.get("assignee_id"),
        acl_users=_ids(
            record.get("assignee_id"),
            record.get("author_id"),
            record.get("controller_id"),
            party.get("owner_id"),
        ),
        acl_teams=_ids(record.get("team_id"), party.get("team_id")),
        date=record.get("deadline") or record.get("created_at"),
    )


def note_document(record: dict[str, Any], party: dict[str, Any] | None) -> Document:
    party = party or {}
    body = record.get("body") or ""
    first_line = body.strip().splitlines()[0] if body.strip() else ""
    return Document(
        type="note",
        id=record["id"],
        title=first_line[:200],
        body=body,
        party_id=record.get("party_id"),
        owner_id=record.get("author_id"),
        acl_users=_ids(record.get("author_id"), party.get("owner_id")),
        acl_teams=_ids(party.get("team_id")),
        date=record.get("created_at"),
    )


def kernel_documents(entity: str, record: dict[str, Any], party: dict[str, Any] | None) -> list[Document]:
    if entity == "party":
        return [party_document(record)]
    if entity == "contact":
        return [contact_document(record, party)]
    if entity == "activity":
        return [activity_document(record, party)]
    if entity == "task":
        return [task_document(record, party)]
    if entity == "note":
        return [note_document(record, party)]
    return []


def from_plugin(value: dict[str, Any], party: dict[str, Any] | None) -> Document:
    """Normalise a plugin's document dict (see ``tessera_search_documents``)."""
    try:
        doc_type = str(value["type"])
        doc_id = int(value["id"])
        title = str(value.get("title") or "")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a search document needs 'type', 'id' and 'title': {exc!r}") from exc
    party = party or {}
    owners = _ids(value.get("owner_id"), *(value.get("owner_ids") or []))
    if value.get("everyone"):
        owners.add(EVERYONE)
    teams = _ids(value.get("team_id"), *(value.get("team_ids") or []))
    return Document(
        type=doc_type,
        id=doc_id,
        title=title,
        body=str(value.get("body") or ""),
        party_id=value.get("party_id"),
        owner_id=value.get("owner_id"),
        acl_users=owners | _ids(party.get("owner_id")),
        acl_teams=teams | _ids(party.get("team_id")),
        date=value.get("date"),
    )


def types_by_entity(types: Iterable[SearchType]) -> dict[str, list[SearchType]]:
    out: dict[str, list[SearchType]] = {}
    for t in types:
        out.setdefault(t.source_entity, []).append(t)
    return out
