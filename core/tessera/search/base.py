"""The ``Searcher`` protocol both backends implement, and the values they exchange."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tessera.search.analysis import ParsedQuery
from tessera.search.documents import Document

#: Matches counted (for totals and facets) per query at most; beyond it totals are reported as
#: "at least" (``SearchPage.total_capped``). Keeps a one-word query over a million documents fast.
COUNT_CAP = 2_000


@dataclass(frozen=True)
class Access:
    """The caller's visibility, as the backends filter it inside the query."""

    #: Document types the caller may see (their read permission is granted).
    types: frozenset[str]
    #: ``None``: every record; otherwise documents whose ACL meets these users or teams.
    user_ids: frozenset[int] | None
    team_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Filters:
    types: frozenset[str] = frozenset()
    owner_ids: frozenset[int] = frozenset()
    date_from: datetime | None = None
    date_to: datetime | None = None
    party_id: int | None = None


@dataclass
class RawHit:
    type: str
    id: int
    title: str
    body: str
    score: float
    party_id: int | None
    owner_id: int | None
    date: datetime | None


@dataclass
class RawResult:
    hits: list[RawHit]
    total: int
    total_capped: bool
    by_type: dict[str, int] = field(default_factory=dict)
    by_owner: dict[int, int] = field(default_factory=dict)


class Searcher(Protocol):
    """A full-text index. Every method is safe to call from several tasks and processes; writes
    are idempotent (replaying one yields the same index)."""

    name: str

    async def open(self) -> bool:
        """Open (create when missing) the index; True when it must be rebuilt from the database
        (it was missing or built by an older ``SCHEMA_VERSION``)."""
        ...

    async def mark_built(self) -> None:
        """Record that a full rebuild at the current ``SCHEMA_VERSION`` has finished."""
        ...

    async def replace(self, sources: Sequence[str], docs: Sequence[Document], stamp: float) -> None:
        """Drop every document produced by ``sources`` (``"entity:id"``) and add ``docs``."""
        ...

    async def sources_of_party(self, party_ids: Sequence[int]) -> set[str]:
        """Sources of documents attached to these parties (to refresh their ACLs)."""
        ...

    async def purge_older(self, doc_type: str, stamp: float) -> int:
        """Delete documents of ``doc_type`` written before ``stamp`` (after a full reindex)."""
        ...

    async def search(
        self, query: ParsedQuery, access: Access, filters: Filters, limit: int, offset: int
    ) -> RawResult:
        """Matching documents the caller may see, best first; totals/facets count visible
        documents only (up to ``COUNT_CAP``)."""
        ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...
