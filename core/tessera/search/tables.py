"""Piccolo tables of the kernel's search component (its own Piccolo app, so its migrations
stay separate from the entities').

* ``search_pending``: index work that failed (or is deferred) and is retried; both engines.
* ``search_state``: which backend index was fully built at which schema version.
* ``search_document``: the PostgreSQL backend's documents. On PostgreSQL the migration adds the
  ``tsv tsvector`` column and the GIN indexes; on SQLite the table exists but is never used.
"""

from __future__ import annotations

from piccolo.columns import Array, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class SearchPending(Table, tablename="search_pending"):
    """A record whose documents must be (re)built: its indexing failed or was deferred."""

    entity = Varchar(length=60)
    entity_id = Integer()
    enqueued_at = Timestamptz(default=TimestamptzNow())
    next_attempt_at = Timestamptz(default=TimestamptzNow(), index=True)
    attempts = Integer(default=0)
    last_error = Text(default="")


class SearchState(Table, tablename="search_state"):
    backend = Varchar(length=30, unique=True)
    schema_version = Integer(default=0)
    built_at = Timestamptz(null=True, default=None)


class SearchDocument(Table, tablename="search_document"):
    key = Varchar(length=200, unique=True)
    type = Varchar(length=60)
    source = Varchar(length=100, index=True)
    record_id = Integer()
    title = Text(default="")
    body = Text(default="")
    party_id = Integer(null=True, default=None, index=True)
    owner_id = Integer(null=True, default=None)
    acl_users = Array(base_column=Integer())
    acl_teams = Array(base_column=Integer())
    date = Timestamptz(null=True, default=None)
    indexed_at = Timestamptz(default=TimestamptzNow())


TABLES: list[type[Table]] = [SearchPending, SearchState, SearchDocument]
