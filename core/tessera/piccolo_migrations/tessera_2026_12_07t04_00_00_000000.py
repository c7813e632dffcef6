"""Party tags and custom fields indexed for set-based filters (issue 18: a segment counted over
a million parties). PostgreSQL only (SQLite keeps its scans):

* ``party_tags``: GIN over ``tags``, used by ``tags @> ARRAY[...]`` / ``tags && ARRAY[...]``;
* ``party_custom_pairs``: GIN over ``tessera_json_pairs(custom)``, the custom fields' top-level
  ``key <US> value`` texts (``<US>`` = chr(31); the value as ``custom->>key`` gives it, JSON
  nulls left out), used by ``tessera_json_pairs(custom) && ARRAY['industry<US>retail', ...]``,
  which is exactly ``custom->>'industry' IN ('retail', ...)``.

Both answer "does the party have this?" without re-reading the row (GIN array containment and
overlap need no recheck), so a count over them, ANDed with the status index in a bitmap, skips
the heap pages the visibility map says are all-visible (see docs/performance.md)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-12-07T04:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "Party tags and custom-field pairs indexed"

#: A document holding an escaped NUL (``\u0000``, which ``json`` stores but no ``text`` can
#: hold) gets no pairs rather than failing the party's write: ``json_each_text`` would raise.
PAIRS_FUNCTION = (
    "CREATE OR REPLACE FUNCTION tessera_json_pairs(doc json) RETURNS text[] "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN json_typeof(doc) = 'object' "
    r"AND doc::text !~ '(^|[^\\])(\\\\)*\\u0000' THEN "
    "ARRAY(SELECT e.key || chr(31) || e.value FROM json_each_text(doc) e WHERE e.value IS NOT NULL) "
    "END $$"
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tessera", description=DESCRIPTION)

    async def create():
        from tessera import db

        if db.is_postgres():
            await db.raw(PAIRS_FUNCTION)
            await db.raw("CREATE INDEX IF NOT EXISTS party_tags ON party USING gin (tags)")
            await db.raw(
                "CREATE INDEX IF NOT EXISTS party_custom_pairs ON party USING gin (tessera_json_pairs(custom))"
            )

    async def drop():
        from tessera import db

        if db.is_postgres():
            await db.raw("DROP INDEX IF EXISTS party_custom_pairs")
            await db.raw("DROP INDEX IF EXISTS party_tags")
            await db.raw("DROP FUNCTION IF EXISTS tessera_json_pairs(json)")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
