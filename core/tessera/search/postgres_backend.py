"""PostgreSQL full-text backend: documents in ``search_document`` with a ``tsvector`` column and
a GIN index, so every node of a multi-node deployment searches one shared index.

PostgreSQL ships no Ukrainian text-search configuration, and its Russian/English ones differ
from whoosh's analysis. So the backend does not use a configuration at all: the terms are
computed in Python by ``tessera.search.analysis`` (the same analyzer whoosh gets) and stored as a
ready-made tsvector literal (``'договор':3B 'петр':1A``; titles weight A, bodies weight B);
queries are tsquery literals built from the same terms (``('договор') <-> ('поставк' | 'поставка')``,
prefix ``'петро':*A`` on titles). Visibility, type permissions and filters are part of the SQL
``WHERE``; ranking is ``ts_rank_cd``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from tessera import db
from tessera.search.analysis import ParsedQuery, QueryPart, QueryWord, analyze
from tessera.search.base import COUNT_CAP, Access, Filters, RawHit, RawResult
from tessera.search.documents import SCHEMA_VERSION, Document

MAX_POSITION = 16383
MAX_POSITIONS_PER_LEXEME = 255
#: Weights of D, C, B, A for ts_rank_cd: a title hit counts 2.5 times a body hit.
RANK_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"
#: Matches ranked per query at most: the most recently indexed ones plus as many matching in
#: the title (see ``search_sql``). Ranking reads each candidate's tsvector, the one cost that
#: grows with the number of matches.
RANK_CAP = 500

COLUMNS = (
    "key",
    "type",
    "source",
    "record_id",
    "title",
    "body",
    "party_id",
    "owner_id",
    "acl_users",
    "acl_teams",
    "date",
    "indexed_at",
    "tsv",
)


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


#: Marks title lexemes: every title term is stored a second time as ``^term`` (and the folded
#: word as ``^word``), so "in the title" and "a title word starting with" are plain GIN lookups
#: on small posting lists (``'^петро':*``) instead of weight-restricted matches, which GIN
#: cannot answer from the index and must recheck row by row.
TITLE_MARK = "^"


def _markable(term: str) -> bool:
    return not term.isdigit() and "@" not in term


def tsvector_literal(
    title: list[list[str]], body: list[list[str]], title_raw: list[list[str]] | None = None
) -> str:
    """``title``/``body``: positions of alternative terms (``analyze``); ``title_raw``: the title
    analysed with ``raw=True`` (same positions plus the folded words), stored marked."""
    lexemes: dict[str, list[str]] = {}
    pos = 1
    raw = title_raw if title_raw is not None else title
    for weight, positions, marked in (("A", title, raw), ("B", body, None)):
        for i, alts in enumerate(positions):
            p = min(pos, MAX_POSITION)
            terms = list(dict.fromkeys(alts))
            if marked is not None:
                terms += [TITLE_MARK + t for t in dict.fromkeys(marked[i]) if _markable(t)]
            for term in terms:
                where = lexemes.setdefault(term, [])
                if len(where) < MAX_POSITIONS_PER_LEXEME:
                    where.append(f"{p}{weight}")
            pos += 1
        pos += 1  # no phrase across the title/body boundary
    return " ".join(f"{_quote(t)}:{','.join(ps)}" for t, ps in lexemes.items())


def _word_tsquery(word: QueryWord, title_only: bool = False) -> str:
    mark = TITLE_MARK if title_only else ""
    alts = [_quote(mark + t if title_only and _markable(t) else t) for t in word.terms]
    if word.prefix_ok:
        alts.append(f"{_quote(TITLE_MARK + word.word)}:*")
    return "(" + " | ".join(alts) + ")"


def _phrase_tsquery(part: QueryPart) -> str:
    return "(" + " <-> ".join("(" + " | ".join(_quote(t) for t in w.terms) + ")" for w in part.words) + ")"


def build_tsquery(parsed: ParsedQuery) -> str:
    """The whole query: every word (or phrase) anywhere in the document; a word of three
    letters or more also matches the beginning of a title word."""
    return " & ".join(_phrase_tsquery(p) if p.is_phrase else _word_tsquery(p.words[0]) for p in parsed.parts)


def build_title_tsquery(parsed: ParsedQuery) -> str:
    """The query restricted to titles (phrases still match anywhere): its matches are ranked
    even when more than ``RANK_CAP`` documents match, so a record named after the query is
    never lost among many documents that merely mention the words."""
    return " & ".join(
        _phrase_tsquery(p) if p.is_phrase else _word_tsquery(p.words[0], title_only=True)
        for p in parsed.parts
    )


def _row(doc: Document, stamp: float) -> tuple[Any, ...]:
    return (
        doc.key,
        doc.type,
        doc.source,
        doc.id,
        doc.title,
        doc.body[:100_000],
        doc.party_id,
        doc.owner_id,
        sorted(doc.acl_users),
        sorted(doc.acl_teams),
        doc.date,
        datetime.fromtimestamp(stamp, UTC),
        tsvector_literal(analyze(doc.title), analyze(doc.body), analyze(doc.title, raw=True)),
    )


#: Per-connection staging table for COPY (asyncpg has no binary tsvector codec, so the
#: tsvector travels as text and is cast on the way into search_document).
_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS search_stage (
    key text, type text, source text, record_id integer, title text, body text,
    party_id integer, owner_id integer, acl_users integer[], acl_teams integer[],
    date timestamptz, indexed_at timestamptz, tsv text
) ON COMMIT DELETE ROWS
"""

#: A document already indexed under its key is replaced.
_ON_KEY_CONFLICT = f"""ON CONFLICT (key) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "key")}"""

_UPSERT_FROM_STAGE = f"""
INSERT INTO search_document ({", ".join(COLUMNS)})
SELECT {", ".join(c if c != "tsv" else "tsv::tsvector" for c in COLUMNS)} FROM search_stage
{_ON_KEY_CONFLICT}
"""


#: Batches up to this many documents are upserted row by row in one pipelined round trip;
#: larger ones (reindex, imports) go through COPY into the staging table.
SMALL_BATCH = 200
_UPSERT_ROW = f"""
INSERT INTO search_document ({", ".join(COLUMNS)})
VALUES ({", ".join(f"${i}" if c != "tsv" else f"${i}::text::tsvector" for i, c in enumerate(COLUMNS, 1))})
{_ON_KEY_CONFLICT}
"""


#: Settings of every search transaction. Each statement is planned for its own words
#: (``force_custom_plan``: a generic plan cannot know whether a word is in 60 % of the
#: documents or in three). Sequential scans never pay off; JIT compilation and parallel workers
#: cost more than the bounded statements they would speed up.
SESSION_SETTINGS = (
    "plan_cache_mode = force_custom_plan",
    "enable_seqscan = off",
    "work_mem = '32MB'",
    "jit = off",
    "max_parallel_workers_per_gather = 0",
)
#: Estimated matches up to which the newest are found through the GIN index and sorted (reading
#: every match's row is cheap while they are few).
SORT_UP_TO = 10_000
#: Estimated share of the documents from which the newest matches are found by walking the
#: primary key backwards (a common word: a few thousand rows give 2,001 matches) ...
WALK_FROM = 0.04
#: ... looking at most at this many of the newest documents (a misestimate, e.g. a phrase of two
#: common words that are rarely adjacent, falls back to the GIN index instead of a long walk).
WALK_BUDGET = 25_000

#: How ``cand`` finds its candidates, chosen per query from the planner's estimate.
NEWEST_SORTED = "sorted"  # few matches: GIN, then the newest by id
NEWEST_WALK = "walk"  # a common word: the newest documents, backwards, until enough match
STORAGE_ORDER = "storage"  # in between: GIN, the first matches in storage order
VISIBLE_FIRST = "visible"  # a caller who sees few documents: those, newest first, then the words
#: Visible documents up to which a restricted caller's search reads them all and checks the
#: words on each (an own-scope manager's few thousand) rather than reading a common word's
#: whole GIN posting list to intersect it with them.
VISIBLE_UP_TO = 20_000


def _conditions(access: Access, filters: Filters, args: list[Any]) -> tuple[str, str]:
    """(visibility and filters, the visibility part alone) over ``search_document d``."""
    # Function form: a filter, never an index scan (the type index would add a bitmap of most
    # of the table to every search).
    where = ["array_position($3::text[], d.type::text) IS NOT NULL"]
    acl_sql = ""

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if access.user_ids is not None:
        acl = [f"d.acl_users && {arg(sorted(access.user_ids))}::int[]"]
        if access.team_ids:
            acl.append(f"d.acl_teams && {arg(sorted(access.team_ids))}::int[]")
        acl_sql = "(" + " OR ".join(acl) + ")"
        where.append(acl_sql)
    if filters.owner_ids:
        where.append(f"d.owner_id = ANY({arg(sorted(filters.owner_ids))}::int[])")
    if filters.party_id is not None:
        where.append(f"d.party_id = {arg(filters.party_id)}")
    if filters.date_from is not None:
        where.append(f"d.date >= {arg(filters.date_from)}")
    if filters.date_to is not None:
        where.append(f"d.date <= {arg(filters.date_to)}")
    return " AND ".join(where), acl_sql


def search_args(
    query: ParsedQuery, access: Access, filters: Filters, types: list[str]
) -> tuple[list[Any], str, str]:
    """Arguments shared by the estimate and the search statement, the visibility/filter
    conditions over ``search_document d`` (``$1`` the tsquery, ``$2`` its title-only variant)
    and the visibility condition alone (empty: the caller sees every record)."""
    args: list[Any] = [build_tsquery(query), build_title_tsquery(query), types]
    cond, acl = _conditions(access, filters, args)
    return args, cond, acl


def estimate_sql(cond: str, acl: str) -> str:
    """The planner's estimates (planning only, no row is read) of the visible matches and of
    the documents the caller may see. ``$2`` (folded away) only so that every statement takes
    the same arguments."""
    return (
        "EXPLAIN (FORMAT JSON) SELECT"
        " (SELECT count(*) FROM search_document d"
        f"  WHERE d.tsv @@ $1::tsquery AND $2::tsquery IS NOT NULL AND {cond}),"
        f" (SELECT count(*) FROM search_document d WHERE {acl or 'true'})"
    )


def parse_estimates(plan: dict[str, Any]) -> tuple[float, float]:
    """(visible matches, visible documents) from ``estimate_sql``'s plan."""
    rows = [float(sub["Plans"][0]["Plan Rows"]) for sub in plan["Plans"]]
    return rows[0], rows[1]


def search_sql(cond: str, args: list[Any], strategy: str, limit: int, offset: int) -> str:
    """The search statement.

    * ``cand``: up to ``COUNT_CAP + 1`` visible matches (visibility, type permissions and
      filters are in the ``WHERE``) — the newest ones, except for words of middling frequency
      (``STORAGE_ORDER``), where finding the newest would mean reading every match's row;
      totals and facets count them.
    * ``pool``: what gets ranked: the first ``RANK_CAP`` candidates plus ``RANK_CAP`` documents
      matching in the title. Ranking reads each ranked tsvector, the one cost that grows with the
      number of matches, so it is bounded; a document named after the query stays in the pool
      however many documents mention the words in their bodies.
    * ``top``: the requested page of the pool by ``ts_rank_cd`` (titles weigh 2.5 times bodies).
    """
    pool = max(RANK_CAP, offset + limit)
    order = "" if strategy == STORAGE_ORDER else "ORDER BY d.id DESC"
    window = ""
    if strategy == NEWEST_WALK:
        window = f"AND d.id > (SELECT max(id) FROM search_document) - {WALK_BUDGET}"
    # Matching through the GIN index, or (a caller who sees few documents) as a filter on the
    # documents the access-list index yields: the function form is never used as an index.
    match = "ts_match_vq(d.tsv, $1::tsquery)" if strategy == VISIBLE_FIRST else "d.tsv @@ $1::tsquery"
    columns = "d.id, d.type, d.owner_id, d.tsv"
    cap = candidate_limit(strategy, limit, offset)
    candidates = f"""
        SELECT {columns} FROM search_document d WHERE {match} AND {cond} {window}
        {order} LIMIT {cap}"""
    if strategy == NEWEST_SORTED:
        # The newest of at most SORT_UP_TO matches: bounded even when the estimate was low.
        candidates = f"""
        SELECT * FROM (SELECT {columns} FROM search_document d WHERE {match} AND {cond}
                       LIMIT {SORT_UP_TO}) d
        ORDER BY d.id DESC LIMIT {COUNT_CAP + 1}"""
    if strategy == VISIBLE_FIRST:
        # Every visible match is a candidate unless more than COUNT_CAP matched: then, and only
        # then (a one-time filter), the visible documents are read again for title matches.
        full = f"(SELECT count(*) FROM cand) > {COUNT_CAP}"
        title_pool = f"""
        SELECT id, tsv FROM cand WHERE NOT {full} AND ts_match_vq(tsv, $2::tsquery)
        UNION ALL
        SELECT d.id, d.tsv FROM search_document d
        WHERE {full} AND ts_match_vq(d.tsv, $2::tsquery) AND {cond}"""
    else:
        title_pool = f"SELECT d.id, d.tsv FROM search_document d WHERE d.tsv @@ $2::tsquery AND {cond}"
    args.extend([limit, offset])
    n = len(args)
    return f"""
    WITH cand AS MATERIALIZED ({candidates}),
    pool AS (
        (SELECT id, tsv FROM cand LIMIT {pool})
        UNION ALL
        ({title_pool} LIMIT {pool})
    ),
    top AS (
        SELECT DISTINCT id, score FROM
          (SELECT id, ts_rank_cd('{RANK_WEIGHTS}', tsv, $1::tsquery) AS score FROM pool) r
        ORDER BY score DESC, id DESC
        LIMIT ${n - 1} OFFSET ${n}
    )
    SELECT
      (SELECT count(*) FROM cand) AS total,
      (SELECT coalesce(json_object_agg(type, n), '{{}}') FROM
         (SELECT type, count(*) AS n FROM cand GROUP BY type) t) AS by_type,
      (SELECT coalesce(json_object_agg(owner_id, n), '{{}}') FROM
         (SELECT owner_id, count(*) AS n FROM cand WHERE owner_id IS NOT NULL GROUP BY owner_id) o)
         AS by_owner,
      (SELECT coalesce(json_agg(json_build_object(
            'type', d.type, 'id', d.record_id, 'title', d.title, 'body', left(d.body, 20000),
            'score', top.score, 'party_id', d.party_id, 'owner_id', d.owner_id, 'date', d.date)
          ORDER BY top.score DESC, top.id DESC), '[]')
       FROM top JOIN search_document d ON d.id = top.id) AS hits
    """


def candidate_limit(strategy: str, limit: int, offset: int) -> int:
    """Candidates fetched: enough to count exactly up to ``COUNT_CAP`` when the matches are few
    or the caller sees few documents; only the ranking pool when the planner expects more than
    ``SORT_UP_TO`` matches (totals and facets are then estimated, see ``PostgresSearcher.search``)."""
    if strategy in (NEWEST_SORTED, VISIBLE_FIRST):
        return COUNT_CAP + 1
    return max(RANK_CAP, offset + limit)


def choose_strategy(estimated: float, documents: float, visible: float | None = None) -> str:
    """``estimated``: visible matches; ``documents``: the table's size; ``visible``: the documents
    the caller may see, when restricted."""
    if visible is not None and visible <= VISIBLE_UP_TO:
        return VISIBLE_FIRST
    if estimated <= SORT_UP_TO:
        return NEWEST_SORTED
    if documents > 0 and estimated / documents >= WALK_FROM:
        return NEWEST_WALK
    return STORAGE_ORDER


class PostgresSearcher:
    name = "postgres"

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        engine: Any = db.get_engine()
        if engine.pool is not None:
            async with engine.pool.acquire() as conn:
                yield conn
        else:
            conn = await engine.get_new_connection()
            try:
                yield conn
            finally:
                await conn.close()

    async def open(self) -> bool:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT schema_version, built_at FROM search_state WHERE backend = 'postgres'"
            )
        return row is None or row["schema_version"] < SCHEMA_VERSION or row["built_at"] is None

    async def mark_built(self) -> None:
        async with self._connection() as conn:
            await conn.execute(
                """INSERT INTO search_state (backend, schema_version, built_at) VALUES ('postgres', $1, now())
                ON CONFLICT (backend) DO UPDATE SET schema_version = $1, built_at = now()""",
                SCHEMA_VERSION,
            )

    async def replace(self, sources: Sequence[str], docs: Sequence[Document], stamp: float) -> None:
        if not sources and not docs:
            return
        rows = [_row(d, stamp) for d in docs]
        async with self._connection() as conn, conn.transaction():
            keep = [d.key for d in docs]
            await conn.execute(
                "DELETE FROM search_document WHERE source = ANY($1::text[]) AND NOT key = ANY($2::text[])",
                list(sources),
                keep,
            )
            if rows:
                await self._upsert(conn, rows)

    async def _upsert(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        if len(rows) <= SMALL_BATCH:
            # One pipelined round trip (asyncpg sends every row's Bind/Execute, then one Sync)
            # instead of four for the staging table: most batches are a few API writes.
            await conn.executemany(_UPSERT_ROW, rows)
            return
        await conn.execute(_STAGE_DDL)
        await conn.copy_records_to_table("search_stage", records=rows, columns=list(COLUMNS))
        await conn.execute(_UPSERT_FROM_STAGE)
        await conn.execute("DELETE FROM search_stage")

    async def bulk_upsert(self, docs: Sequence[Document], stamp: float) -> None:
        """Add or replace many documents at once (reindex, benchmark): COPY into a staging table,
        then one ``INSERT ... ON CONFLICT``."""
        rows = [_row(d, stamp) for d in docs]
        async with self._connection() as conn, conn.transaction():
            await self._upsert(conn, rows)

    async def sources_of_party(self, party_ids: Sequence[int]) -> set[str]:
        if not party_ids:
            return set()
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT source FROM search_document WHERE party_id = ANY($1::int[])",
                list(party_ids),
            )
        return {r["source"] for r in rows}

    async def purge_older(self, doc_type: str, stamp: float) -> int:
        async with self._connection() as conn:
            status = await conn.execute(
                "DELETE FROM search_document WHERE type = $1 AND indexed_at < $2",
                doc_type,
                datetime.fromtimestamp(stamp, UTC),
            )
        return int(status.split()[-1])

    async def search(
        self, query: ParsedQuery, access: Access, filters: Filters, limit: int, offset: int
    ) -> RawResult:
        types = set(access.types)
        if filters.types:
            types &= set(filters.types)
        if query.empty or not types:
            return RawResult(hits=[], total=0, total_capped=False)
        args, cond, acl = search_args(query, access, filters, sorted(types))
        async with self._connection() as conn, conn.transaction(readonly=True):
            await conn.execute(";".join(f"SET LOCAL {setting}" for setting in SESSION_SETTINGS))
            plan = json.loads(await conn.fetchval(estimate_sql(cond, acl), *args))[0]["Plan"]
            matches, visible = parse_estimates(plan)
            documents = await conn.fetchval(
                "SELECT reltuples FROM pg_class WHERE oid = 'search_document'::regclass"
            )
            strategy = choose_strategy(matches, float(documents or 0), visible if acl else None)
            row = await self._run(conn, cond, args, strategy, limit, offset)
            cap = candidate_limit(strategy, limit, offset)
            if strategy == NEWEST_WALK and int(row["total"]) < cap:
                # Fewer matches among the newest documents than estimated: use the index.
                strategy = STORAGE_ORDER
                row = await self._run(conn, cond, args, strategy, limit, offset)
        found = int(row["total"])
        by_type = {k: int(v) for k, v in json.loads(row["by_type"]).items()}
        by_owner = {int(k): int(v) for k, v in json.loads(row["by_owner"]).items()}
        if found >= cap and cap <= COUNT_CAP:
            # A common word: the planner's estimate is the total (capped as always), and the
            # facets are the shares among the candidates scaled to it — bounded estimates
            # instead of counting thousands of rows.
            total = max(found, min(int(matches), COUNT_CAP + 1))
            scale = min(total, COUNT_CAP) / found
            by_type = {k: max(1, round(v * scale)) for k, v in by_type.items()}
            by_owner = {k: max(1, round(v * scale)) for k, v in by_owner.items()}
        else:
            total = found
        hits = [
            RawHit(
                type=h["type"],
                id=int(h["id"]),
                title=h["title"],
                body=h["body"],
                score=float(h["score"]),
                party_id=h["party_id"],
                owner_id=h["owner_id"],
                date=datetime.fromisoformat(h["date"]) if h["date"] else None,
            )
            for h in json.loads(row["hits"])
        ]
        return RawResult(
            hits=hits,
            total=min(total, COUNT_CAP),
            total_capped=total > COUNT_CAP,
            by_type=by_type,
            by_owner=by_owner,
        )

    async def _run(
        self, conn: Any, cond: str, args: list[Any], strategy: str, limit: int, offset: int
    ) -> Any:
        if strategy in (NEWEST_SORTED, VISIBLE_FIRST):  # never walk an index in order for these
            await conn.execute("SET LOCAL enable_indexscan = off")
        else:
            await conn.execute("SET LOCAL enable_indexscan = on")
        params = list(args)
        return await conn.fetchrow(search_sql(cond, params, strategy, limit, offset), *params)

    async def count(self) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM search_document"))

    async def close(self) -> None:
        return None
