"""The embedded backend: a whoosh index in ``<data_dir>/search/whoosh``.

Text is analysed by ``tessera.search.analysis`` before it reaches whoosh; the ``title`` and
``body`` fields receive the terms through ``PreAnalyzedTokenizer`` (positions kept, so phrase
queries work; alternative terms of one word share a position). Queries are built as whoosh
query objects, never through its parser. The caller's visibility is applied while matching (a
condition inside the query, or, for a caller who sees few documents, matching starts from those
documents), so totals, facets and pages only ever contain visible documents.

whoosh is synchronous: every call runs in a worker thread. Writers take whoosh's file lock, so
the server, the worker and ``tessera search reindex`` may write to one index on one node; a
multi-node deployment uses the PostgreSQL backend instead.
"""

from __future__ import annotations

import asyncio
import heapq
import mmap
import os
import shutil
import threading
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from whoosh import index as windex
from whoosh import query as wq
from whoosh.analysis import Token, Tokenizer
from whoosh.codec import whoosh3
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema
from whoosh.filedb.filestore import FileStorage
from whoosh.filedb.structfile import BufferFile, StructFile
from whoosh.matching.wrappers import FilterMatcher
from whoosh.searching import Searcher as WSearcher

from tessera.search import indexer
from tessera.search.analysis import ParsedQuery, QueryPart, QueryWord, analyze, word_terms
from tessera.search.base import COUNT_CAP, Access, Filters, RawHit, RawResult
from tessera.search.documents import SCHEMA_VERSION, Document

WRITE_LOCK_TIMEOUT = 30.0
NONE = -1


def _cached_reader(self: Any, fieldname: str, column: Any) -> Any:
    """``W3PerDocReader._cached_reader`` that also remembers that a column does not exist.
    whoosh asks for the length column of every posting while it writes a segment; for fields
    without lengths (ID, KEYWORD, NUMERIC) the original checks the file system each time,
    which made a third of the indexing time. A segment's files never change once written."""
    try:
        return self._readers[fieldname]
    except KeyError:
        reader = self.column_reader(fieldname, column) if self.has_column(fieldname) else None
        self._readers[fieldname] = reader
        return reader


whoosh3.W3PerDocReader._cached_reader = _cached_reader


class PreAnalyzedTokenizer(Tokenizer):  # type: ignore[misc]
    """Reads ``"a|b c d|e"``: positions separated by spaces, alternatives by ``|``."""

    def __call__(  # type: ignore[override]
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Any:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for pos, group in enumerate(value.split(" ")):
            for term in group.split("|"):
                if not term:
                    continue
                token.text = term
                token.boost = 1.0
                token.stopped = False
                if keeporiginal:
                    token.original = term
                if positions:
                    token.pos = start_pos + pos
                yield token


def encode(positions: list[list[str]]) -> str:
    return " ".join("|".join(alts) for alts in positions)


def make_schema() -> Schema:
    pre = PreAnalyzedTokenizer()
    return Schema(
        key=ID(stored=True, unique=True),
        type=ID(stored=True, sortable=True),
        source=ID(stored=True),
        record_id=STORED(),
        party=ID(stored=True),
        owner=ID(stored=True, sortable=True),
        acl=KEYWORD(lowercase=False, commas=False),
        date=NUMERIC(bits=64, signed=True, stored=True, sortable=True),
        stamp=NUMERIC(numtype=float, bits=64, stored=False),
        title=TEXT(analyzer=pre, phrase=True, field_boost=3.0),
        body=TEXT(analyzer=pre, phrase=True),
        title_text=STORED(),
        body_text=STORED(),
    )


def _epoch(value: datetime | None) -> int:
    if value is None:
        return NONE
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


#: Documents scored per query at most: the newest matches plus as many matching in the title
#: (the PostgreSQL backend ranks the same way).
RANK_CAP = 500
#: The newest documents looked at first; each further window is twice as large.
FIRST_WINDOW = 4096
#: Queries estimated to match at most this many documents are walked once, start to end.
SELECTIVE = 20_000
#: Callers whose access-list terms match at most this many documents (an own-scope user, a small
#: team) are searched from their documents: the word postings are only decoded in the blocks
#: that hold one of them (see ``WhooshSearcher._acl_driven``).
ACL_DRIVEN = 20_000
#: Visible-document sets kept per index generation (one per access list and hidden types).
ALLOWED_CACHE = 256
#: Title words a prefix may stand for at most (a three-letter prefix could expand to thousands).
MAX_PREFIX_EXPANSIONS = 64


def prefix_expansions(reader: Any, word: QueryWord) -> list[str]:
    """Title terms starting with the word that the word's own terms do not already match: «Петрен»
    -> «петренко»; for «договора» none, since «договорами», «договоров» ... share its stem. Keeps
    a common word's query to a couple of posting lists instead of a dozen."""
    out: list[str] = []
    own = set(word.terms)
    for raw in reader.expand_prefix("title", word.word):
        term = raw.decode() if isinstance(raw, bytes) else str(raw)
        if term in own or own & set(word_terms(term)):
            continue
        out.append(term)
        if len(out) >= MAX_PREFIX_EXPANSIONS:
            break
    return out


def _word_query(word: QueryWord, fuzzy: bool, reader: Any = None, title_only: bool = False) -> wq.Query:
    alts: list[wq.Query] = []
    for term in word.terms:
        alts.append(wq.Term("title", term))
        if not title_only:
            alts.append(wq.Term("body", term))
    if word.prefix_ok:
        if reader is None:
            alts.append(wq.Prefix("title", word.word))
        else:
            alts.extend(wq.Term("title", t) for t in prefix_expansions(reader, word))
    if fuzzy and word.fuzzy_ok:
        if reader is None:
            alts.append(wq.FuzzyTerm("title", word.word, maxdist=1, prefixlength=2, boost=0.5))
        else:
            alts.extend(wq.Term("title", t, boost=0.5) for t in fuzzy_expansions(reader, word))
    if not alts:
        return wq.NullQuery
    return wq.Or(alts) if len(alts) > 1 else alts[0]


def fuzzy_expansions(reader: Any, word: QueryWord) -> list[str]:
    """Title words one edit away from the word (same first two letters), found segment by
    segment: each segment answers with a Levenshtein automaton, whereas whoosh's ``FuzzyTerm``
    over an index of several segments (any index that has seen an update) computes the
    distance to every title word in Python — seconds at 200,000 documents."""
    found: dict[str, None] = {}
    for leaf, _offset in reader.leaf_readers():
        for raw in leaf.terms_within("title", word.word, 1, prefix=2):
            found[raw.decode() if isinstance(raw, bytes) else str(raw)] = None
            if len(found) >= MAX_PREFIX_EXPANSIONS:
                return list(found)
    return list(found)


def _phrase_query(part: QueryPart) -> wq.Query:
    per_field = []
    for fieldname in ("title", "body"):
        steps = [wq.Or([wq.Term(fieldname, t) for t in w.terms]) for w in part.words]
        per_field.append(wq.Sequence(steps))
    return wq.Or(per_field)


def build_query(
    parsed: ParsedQuery, fuzzy: bool = True, reader: Any = None, title_only: bool = False
) -> wq.Query:
    """The text query; with ``reader``, name prefixes are expanded against its title terms;
    ``title_only``: words must be in the title (phrases still match anywhere)."""
    parts = [
        _phrase_query(p) if p.is_phrase else _word_query(p.words[0], fuzzy, reader, title_only)
        for p in parsed.parts
    ]
    return wq.And(parts) if len(parts) > 1 else parts[0]


def acl_terms(access: Access) -> tuple[str, ...] | None:
    """The ``acl`` terms of which a document must hold one to be visible; None: sees everything."""
    if access.user_ids is None:
        return None
    return tuple([f"u{u}" for u in sorted(access.user_ids)] + [f"t{t}" for t in sorted(access.team_ids)])


def build_filter(access: Access, filters: Filters, acl: bool = True) -> list[wq.Query]:
    """Conditions ANDed into the query (constant score, so they do not change ranking): whoosh
    then skips through their posting lists instead of materialising a filter set of every
    visible document on each search. ``acl=False`` leaves out the access list (the caller
    restricts to the visible documents itself)."""
    conditions: list[wq.Query] = []
    if filters.types:
        wanted = sorted(set(filters.types) & set(access.types))
        conditions.append(wq.Or([wq.Term("type", t) for t in wanted]) if wanted else wq.NullQuery)
    terms = acl_terms(access)
    if acl and terms is not None:
        conditions.append(wq.Or([wq.Term("acl", t) for t in terms]) if terms else wq.NullQuery)
    if filters.owner_ids:
        conditions.append(wq.Or([wq.Term("owner", str(o)) for o in sorted(filters.owner_ids)]))
    if filters.party_id is not None:
        conditions.append(wq.Term("party", str(filters.party_id)))
    if filters.date_from or filters.date_to:
        start = _epoch(filters.date_from) if filters.date_from else 0
        end = _epoch(filters.date_to) if filters.date_to else None
        conditions.append(wq.NumericRange("date", start, end))
    return [wq.ConstantScoreQuery(c, 0.0) if c is not wq.NullQuery else c for c in conditions]


def document_fields(doc: Document, stamp: float) -> dict[str, Any]:
    """The whoosh fields of a document, analysed (``writer.add_document(**fields)``)."""
    acl = [f"u{u}" for u in sorted(doc.acl_users)] + [f"t{t}" for t in sorted(doc.acl_teams)]
    return {
        "key": doc.key,
        "type": doc.type,
        "source": doc.source,
        "record_id": doc.id,
        "party": str(doc.party_id) if doc.party_id is not None else "",
        "owner": str(doc.owner_id) if doc.owner_id is not None else "",
        "acl": " ".join(acl) or "none",
        "date": _epoch(doc.date),
        "stamp": stamp,
        "title": encode(analyze(doc.title, raw=True)),
        "body": encode(analyze(doc.body)),
        "title_text": doc.title,
        "body_text": doc.body[:20_000],
    }


class Visible(NamedTuple):
    """The documents an access list may see, for the plan driven from them."""

    query: wq.Query  #: the access-list condition, for a query the driven plan does not cover
    ordered: list[int]  #: their docnums, ascending
    docs: frozenset[int]


def _postings_in(
    matcher: Any, ordered: list[int], lo: int, hi: int, base: int, allowed: frozenset[int]
) -> list[tuple[int, float]]:
    """(docnum, weight) of the postings of one segment (``base``: its first docnum) whose
    documents are in ``allowed`` (``ordered[lo:hi]``: those in this segment, ascending). A block
    whose id range holds none of them is skipped by its header; the others are decoded in C."""
    out: list[tuple[int, float]] = []
    if isinstance(matcher, FilterMatcher) and matcher._exclude:
        # The segment's deleted documents, hidden by a Python-level filter: ``allowed`` holds
        # no deleted document, so read the postings themselves.
        matcher = matcher.child
    if not isinstance(matcher, W3LeafMatcher):  # a short (inlined) posting list
        while matcher.is_active():
            docnum = matcher.id() + base
            if docnum in allowed:
                out.append((docnum, matcher.weight()))
            matcher.next()
        return out
    while lo < hi and matcher.is_active():
        top = bisect_right(ordered, matcher.block_max_id() + base, lo, hi)
        if top > lo:
            if matcher._data is None:
                matcher._read_data()
            raw = matcher._data[0]
            ids = [i + base for i in (raw if matcher._byteids else accumulate(raw))]
            hit = allowed.intersection(ids)
            if hit:
                matcher._read_weights()
                weights = matcher._weights
                for docnum in hit:
                    out.append((docnum, weights[bisect_left(ids, docnum)]))
            lo = top
        matcher._next_block()
    return out


class _View:
    """One index generation as the queries see it: the searcher, its column readers, the types
    present and the documents of each set of hidden types."""

    def __init__(self, searcher: WSearcher) -> None:
        self.searcher = searcher
        reader = searcher.reader()
        # An index without segments (nothing indexed yet) has no column readers; nothing will
        # ask them for a document either.
        empty = reader.doc_count_all() == 0
        self.type_column: Any = {} if empty else reader.column_reader("type")
        self.owner_column: Any = {} if empty else reader.column_reader("owner")
        #: Types in the index; those the caller may not see (missing read permission, or a type
        #: no enabled plugin declares any more) are masked out of every search.
        self.types = {t.decode() if isinstance(t, bytes) else str(t) for t in searcher.lexicon("type")}
        self._masked: dict[tuple[str, ...], frozenset[int]] = {}
        self._allowed: dict[tuple[tuple[str, ...], tuple[str, ...]], Visible] = {}
        self._allowed_lock = threading.Lock()

    def acl_size(self, terms: tuple[str, ...]) -> int:
        """Documents holding any of the access-list terms (an upper bound: deletions included)."""
        reader = self.searcher.reader()
        return sum(reader.doc_frequency("acl", t) for t in terms)

    def allowed(self, terms: tuple[str, ...], hidden: tuple[str, ...]) -> Visible:
        """The visible documents of an access list (hidden types and deleted documents out),
        ascending and as a set; computed once per index generation."""
        key = (terms, hidden)
        found = self._allowed.get(key)
        if found is None:
            reader = self.searcher.reader()
            masked = self.masked(hidden)
            docs: set[int] = set()
            for term in terms:
                if ("acl", term) in reader:
                    docs.update(reader.postings("acl", term).all_ids())
            ordered = sorted(d for d in docs if d not in masked and not reader.is_deleted(d))
            acl_query = wq.Or([wq.Term("acl", t) for t in terms])
            found = Visible(wq.ConstantScoreQuery(acl_query, 0.0), ordered, frozenset(ordered))
            with self._allowed_lock:
                if len(self._allowed) >= ALLOWED_CACHE:
                    self._allowed.clear()
                self._allowed[key] = found
        return found

    def masked(self, hidden: tuple[str, ...]) -> frozenset[int]:
        if not hidden:
            return frozenset()
        found = self._masked.get(hidden)
        if found is None:
            q = wq.Or([wq.Term("type", t) for t in hidden])
            found = self._masked[hidden] = frozenset(self.searcher.docs_for_query(q))
        return found


#: Segments an index may hold before a commit merges the small ones (see ``_replace_in``).
MERGE_AFTER_SEGMENTS = 8


def _open_writer(ix: Any, **options: Any) -> Any:
    """A writer that leaves separate segment files (``compound=False``): whoosh reads a
    compound segment's files by copying them into memory, which every writer (one per
    delivery batch) would pay for the whole index."""
    return ix.writer(timeout=WRITE_LOCK_TIMEOUT, compound=False, **options)


def _replace_in(ix: Any, sources: Sequence[str], docs: Sequence[Document], stamp: float) -> None:
    writer = _open_writer(ix)
    try:
        for source in sources:
            writer.delete_by_term("source", source)
        for doc in docs:
            writer.delete_by_term("key", doc.key)
            writer.add_document(**document_fields(doc, stamp))
    except BaseException:
        writer.cancel()
        raise
    # Merging small segments on every commit was most of a small batch's cost; let a few
    # accumulate (a query reads each) and merge them together.
    writer.commit(merge=len(writer.segments) >= MERGE_AFTER_SEGMENTS)


#: Index changes in a separate process (``tessera.search.indexer_child``). Analysing and writing
#: documents is pure Python: in the serving process it held the interpreter lock for half of a
#: create's time while the machine's other cores sat idle (bench/run.py, docs/performance.md).
#: ``TESSERA_INDEX_PROCESS=0`` keeps it in a thread of the process itself.
INDEX_IN_PROCESS = os.environ.get("TESSERA_INDEX_PROCESS", "1") != "0"
_child_indexes: dict[str, Any] = {}


def replace_at(directory: str, sources: Sequence[str], docs: Sequence[Document], stamp: float) -> None:
    """Apply one batch of changes to the index in ``directory`` (the indexing process's task)."""
    ix = _child_indexes.get(directory)
    if ix is None:
        ix = _child_indexes[directory] = _MappedStorage(directory).open_index()
    _replace_in(ix, sources, docs, stamp)


class _MappedFile(BufferFile):
    """A segment file read through a memory map: ``get`` (random access) is a slice, safe for
    the searcher that concurrent queries share, and nothing is copied into memory."""

    def __init__(self, mapped: mmap.mmap, name: str | None = None, onclose: Any = None) -> None:
        self._buf = mapped
        self.file = mapped
        self._name = name
        self.onclose = onclose
        self.is_real = False
        self.is_closed = False


class _MappedStorage(FileStorage):
    """The index directory, its files opened as ``_MappedFile``. (Whoosh's compound segments
    are memory-mapped too, but it copies each file of one into memory when it opens it, which
    every writer would pay for the whole index; writers therefore leave separate files.)"""

    def open_file(self, name: str, **kwargs: Any) -> StructFile:
        with open(self._fpath(name), "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:  # an empty file cannot be mapped
                return super().open_file(name, **kwargs)
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return _MappedFile(mapped, name=name, **kwargs)


class WhooshSearcher:
    name = "whoosh"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ix: Any = None
        self._searcher: WSearcher | None = None
        self._generation = -1
        self._view: _View | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ opening

    @property
    def _version_file(self) -> Path:
        return self.directory / "SCHEMA_VERSION"

    def _open_sync(self) -> bool:
        stale = True
        if self.directory.is_dir() and windex.exists_in(str(self.directory)):
            try:
                version = int(self._version_file.read_text().strip())
            except (OSError, ValueError):
                version = 0
            stale = version < SCHEMA_VERSION
            if not stale:
                self._ix = _MappedStorage(str(self.directory)).open_index()
                return self._version_file.with_suffix(".building").exists()
        if stale:
            if self.directory.exists():
                shutil.rmtree(self.directory)
            self.directory.mkdir(parents=True, exist_ok=True)
            self._ix = _MappedStorage(str(self.directory)).create_index(make_schema())
            # Marks a rebuild in progress: a crash mid-rebuild rebuilds again next start.
            self._version_file.with_suffix(".building").write_text(str(SCHEMA_VERSION))
            self._version_file.write_text(str(SCHEMA_VERSION))
        return True

    async def open(self) -> bool:
        return await asyncio.to_thread(self._open_sync)

    async def mark_built(self) -> None:
        self._version_file.with_suffix(".building").unlink(missing_ok=True)

    def _index(self) -> Any:
        if self._ix is None:
            self._open_sync()
        return self._ix

    # ------------------------------------------------------------------ writing

    def _writer(self, **options: Any) -> Any:
        return _open_writer(self._index(), **options)

    def _replace_sync(self, sources: Sequence[str], docs: Sequence[Document], stamp: float) -> None:
        _replace_in(self._index(), sources, docs, stamp)

    async def replace(self, sources: Sequence[str], docs: Sequence[Document], stamp: float) -> None:
        if not (sources or docs):
            return
        if not INDEX_IN_PROCESS:
            await asyncio.to_thread(self._replace_sync, list(sources), list(docs), stamp)
            return
        if self._ix is None:
            # Creates the index when missing (a first write before start-up, e.g. `tessera demo`
            # loading its data): the indexing process only opens existing ones.
            await asyncio.to_thread(self._index)
        await asyncio.to_thread(
            indexer.call, str(self.directory), list(sources), list(docs), stamp, WRITE_LOCK_TIMEOUT
        )

    def bulk_writer(self, limitmb: int = 256) -> Any:
        """A writer for loading many new documents (benchmark, fresh index): call
        ``add_document(**document_fields(doc, stamp))`` on it, then ``commit()``. Analysis is
        the costly part, so ``document_fields`` may run in other processes."""
        return self._writer(procs=1, limitmb=limitmb)

    def _purge_sync(self, doc_type: str, stamp: float) -> int:
        q = wq.And([wq.Term("type", doc_type), wq.NumericRange("stamp", None, stamp, endexcl=True)])
        if self._get_searcher().search(q, limit=1).is_empty():
            # Nothing stale (a rebuild of a new index, a type with nothing left over): no
            # writer, no commit and no new index generation for every reader to reopen.
            return 0
        writer = self._writer()
        try:
            count: int = writer.delete_by_query(q)
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        return count

    async def purge_older(self, doc_type: str, stamp: float) -> int:
        return await asyncio.to_thread(self._purge_sync, doc_type, stamp)

    # ------------------------------------------------------------------ reading

    def _get_searcher(self) -> WSearcher:
        return self._get_view().searcher

    def _get_view(self) -> _View:
        """A cached searcher with its column readers, reopened only when any process committed
        a new index generation (whoosh's own ``refresh()`` misses commits that only delete).
        Opening a column reader reads the offsets of every document, so it is done once per
        generation, not per query."""
        with self._lock:
            ix = self._index()
            generation = ix.latest_generation()
            if self._view is None or generation != self._generation:
                # The old searcher may still serve a query in another thread: let GC close it.
                self._searcher = ix.searcher()
                self._view = _View(self._searcher)
                self._generation = generation
            return self._view

    def _sources_sync(self, party_ids: Sequence[int]) -> set[str]:
        searcher = self._get_searcher()
        q = wq.Or([wq.Term("party", str(p)) for p in party_ids])
        return {hit["source"] for hit in searcher.search(q, limit=None)}

    async def sources_of_party(self, party_ids: Sequence[int]) -> set[str]:
        if not party_ids:
            return set()
        return await asyncio.to_thread(self._sources_sync, list(party_ids))

    def _search_sync(
        self, parsed: ParsedQuery, access: Access, filters: Filters, limit: int, offset: int
    ) -> RawResult:
        view = self._get_view()
        hidden = tuple(sorted(view.types - set(access.types)))
        terms = acl_terms(access)
        allowed: Visible | None = None
        if terms and view.acl_size(terms) <= ACL_DRIVEN:
            # Few visible documents: match from them (``_acl_driven``) rather than through the words.
            allowed = view.allowed(terms, hidden)
        conditions = build_filter(access, filters, acl=allowed is None)
        result = self._run(view, parsed, False, conditions, hidden, limit, offset, allowed)
        if result.total == 0 and any(not p.is_phrase and p.words[0].fuzzy_ok for p in parsed.parts):
            # Nothing matched exactly: try again allowing one typo in name words.
            result = self._run(view, parsed, True, conditions, hidden, limit, offset, allowed)
        return result

    @staticmethod
    def _acl_driven(
        searcher: WSearcher,
        parts: list[wq.Query],
        allowed: Visible,
        conditions: list[wq.Query],
    ) -> tuple[dict[int, float], set[int]] | None:
        """The visible matches of ``parts`` (each a word: a term or an Or of terms), with their
        scores, and those that match every word in the title; None when a part is not of that
        shape. Driven from the caller's few documents: each term's posting blocks are walked by
        their headers, and only a block whose id range holds a visible document is decoded (in C:
        ``accumulate`` and a set intersection), instead of the matcher unpacking and stepping
        through most of a common word's postings in Python. Scores are whoosh's own: each
        term's scorer (BM25F, global statistics) on the posting's weight, times the term's
        boost, summed over the matching terms like ``Or``/``And`` matchers sum them."""
        words: list[list[wq.Term]] = []
        #: Words of phrases: their documents are candidates, which the phrase then confirms.
        phrase_words: set[int] = set()
        for part in parts:
            if part is wq.NullQuery:
                return {}, set()
            if type(part) is wq.Or and all(type(seq) is wq.Sequence for seq in part.subqueries):
                steps = [seq.subqueries for seq in part.subqueries]  # title, body
                if len({len(s) for s in steps}) != 1:
                    return None
                for at in range(len(steps[0])):
                    leaves = []
                    for field_steps in steps:
                        step = field_steps[at]
                        leaves.extend(step.subqueries if type(step) is wq.Or else [step])
                    phrase_words.add(len(words))
                    words.append(leaves)
                continue
            leaves = part.subqueries if type(part) is wq.Or else [part]
            words.append(leaves)
        if not all(type(leaf) is wq.Term for leaves in words for leaf in leaves):
            return None
        ordered, allowed_set = allowed.ordered, allowed.docs
        weighting = searcher.weighting
        scores: dict[int, float] | None = None
        in_title: set[int] | None = None
        for index, leaves in enumerate(words):
            word_scores: dict[int, float] = {}
            word_title: set[int] = set()
            for leaf in leaves:
                field = searcher.schema[leaf.fieldname]
                text = field.to_bytes(leaf.text)
                for sub, base in searcher.leaf_searchers():
                    reader = sub.reader()
                    if (leaf.fieldname, text) not in reader:
                        continue
                    lo = bisect_left(ordered, base)
                    hi = bisect_left(ordered, base + reader.doc_count_all())
                    if lo == hi:
                        continue
                    scorer = weighting.scorer(sub, leaf.fieldname, text)
                    postings = reader.postings(leaf.fieldname, text)
                    matches = _postings_in(postings, ordered, lo, hi, base, allowed_set)
                    for docnum, weight in matches:
                        score = scorer._score(weight, scorer.dfl(docnum - base)) * leaf.boost
                        word_scores[docnum] = word_scores.get(docnum, 0.0) + score
                        if leaf.fieldname == "title":
                            word_title.add(docnum)
            if index in phrase_words:  # a phrase matches "in the title" wherever it is
                word_title = set(word_scores)
            if scores is None:
                scores, in_title = word_scores, word_title
            else:
                assert in_title is not None
                scores = {d: s + word_scores[d] for d, s in scores.items() if d in word_scores}
                in_title &= word_title
            if not scores:
                return {}, set()
        assert scores is not None and in_title is not None
        if phrase_words:
            # Candidates hold every word; whoosh's matcher checks the positions and scores.
            confirmed: dict[int, float] = {}
            query = wq.And(parts) if len(parts) > 1 else parts[0]
            matcher = query.matcher(searcher, searcher.context())
            for docnum in sorted(scores):
                if not matcher.is_active():
                    break
                matcher.skip_to(docnum)
                if matcher.is_active() and matcher.id() == docnum:
                    confirmed[docnum] = matcher.score()
            scores = confirmed
        if conditions and scores:
            keep: dict[int, float] = {}
            matcher = wq.And(conditions).matcher(searcher, searcher.boolean_context())
            for docnum in sorted(scores):
                if not matcher.is_active():
                    break
                matcher.skip_to(docnum)
                if matcher.is_active() and matcher.id() == docnum:
                    keep[docnum] = scores[docnum]
            scores = keep
        return scores, in_title & scores.keys()

    def _newest(
        self, view: _View, q: wq.Query, masked: frozenset[int], wanted: int, score_up_to: int = 0
    ) -> tuple[list[int], dict[int, float]]:
        """Up to ``wanted`` visible matches of ``q``, newest (highest docnum) first, and, when
        there are at most ``score_up_to`` matches in all, their scores (else an empty dict).

        A selective query (its estimated matches, e.g. an own-scope caller's documents or a rare
        word's postings, are few) is walked once from the start. Otherwise the index is walked in
        windows from its end, each twice the size of the previous one, so a common word stops
        within the first window instead of walking every match."""
        searcher = view.searcher
        reader = searcher.reader()
        context = searcher.boolean_context()
        end = reader.doc_count_all()
        if q.estimate_size(reader) <= SELECTIVE:
            last: deque[int] = deque(maxlen=wanted)
            scores: dict[int, float] = {}
            matcher = q.matcher(searcher, searcher.context() if score_up_to else context)
            seen = 0
            while matcher.is_active():
                docnum = matcher.id()
                if docnum not in masked and not reader.is_deleted(docnum):
                    last.append(docnum)
                    seen += 1
                    if seen <= score_up_to:
                        scores[docnum] = matcher.score()
                matcher.next()
            return list(reversed(last)), scores if seen <= score_up_to else {}
        size = FIRST_WINDOW
        found: list[int] = []
        while end > 0 and len(found) < wanted:
            start = max(0, end - size)
            matcher = q.matcher(searcher, context)
            if start > 0 and matcher.is_active():
                matcher.skip_to(start)
            window: list[int] = []
            while matcher.is_active():
                docnum = matcher.id()
                if docnum >= end:
                    break
                if docnum not in masked and not reader.is_deleted(docnum):
                    window.append(docnum)
                matcher.next()
            found.extend(reversed(window))
            end = start
            size *= 2
        return found[:wanted], {}

    def _run(
        self,
        view: _View,
        parsed: ParsedQuery,
        fuzzy: bool,
        conditions: list[wq.Query],
        hidden: tuple[str, ...],
        limit: int,
        offset: int,
        allowed: Visible | None = None,
    ) -> RawResult:
        """The same bounded plan as the PostgreSQL backend: the newest ``COUNT_CAP + 1`` visible
        matches are counted (totals, facets); the newest ``RANK_CAP`` of them plus the newest
        ``RANK_CAP`` matching in the title are scored (BM25F, titles boosted) and the page is
        taken from those. Scoring and counting every match of a common word is what made a
        query's time grow with the index."""
        searcher = view.searcher
        reader = searcher.reader()
        text_query = build_query(parsed, fuzzy, reader)
        title_query = build_query(parsed, fuzzy, reader, title_only=True)
        q = wq.And([text_query, *conditions]) if conditions else text_query
        tq = wq.And([title_query, *conditions]) if conditions else title_query
        masked = view.masked(hidden)
        pool_size = max(RANK_CAP, offset + limit)
        driven = None
        if allowed is not None:
            parts = list(text_query.subqueries) if type(text_query) is wq.And else [text_query]
            driven = self._acl_driven(searcher, parts, allowed, conditions)
            if driven is None:  # a query the driven plan does not cover: the access list in the query
                conditions = [allowed.query, *conditions]
                q = wq.And([text_query, *conditions])
                tq = wq.And([title_query, *conditions])
        scores: dict[int, float] = {}
        if driven is not None:
            # The caller's documents drove the matching: the same candidates, counts and pool
            # as the plan below, from the (few) visible matches found.
            matched, in_title = driven
            newest = sorted(matched, reverse=True)
            candidates = newest[: COUNT_CAP + 1]
            pool = set(newest[:pool_size])
            if len(matched) > pool_size:
                pool.update(sorted(in_title, reverse=True)[:pool_size])
            scored = [(-matched[docnum], -docnum) for docnum in pool]
        else:
            candidates, scores = self._newest(view, q, masked, COUNT_CAP + 1, pool_size)
        if driven is not None:
            pass  # scored above
        elif scores:  # every match was scored on the way (few matches)
            scored = [(-score, -docnum) for docnum, score in scores.items()]
        else:
            pool = set(candidates[:pool_size])
            if len(candidates) > pool_size:
                pool.update(self._newest(view, tq, masked, pool_size)[0])
            scored = []
            matcher = q.matcher(searcher, searcher.context())
            for docnum in sorted(pool):
                if not matcher.is_active():
                    break
                matcher.skip_to(docnum)
                if matcher.is_active() and matcher.id() == docnum:
                    scored.append((-matcher.score(), -docnum))
        page = heapq.nsmallest(offset + limit, scored)[offset:]
        types = view.type_column
        owners = view.owner_column
        by_type: dict[str, int] = {}
        by_owner: dict[int, int] = {}
        for docnum in candidates[:COUNT_CAP]:
            t = types[docnum]
            by_type[t] = by_type.get(t, 0) + 1
            o = owners[docnum]
            if o:
                by_owner[int(o)] = by_owner.get(int(o), 0) + 1
        hits = []
        for neg_score, neg_docnum in page:
            fields = searcher.stored_fields(-neg_docnum)
            date = fields.get("date", NONE)
            hits.append(
                RawHit(
                    type=fields["type"],
                    id=int(fields["record_id"]),
                    title=fields.get("title_text", ""),
                    body=fields.get("body_text", ""),
                    score=-neg_score,
                    party_id=int(fields["party"]) if fields.get("party") else None,
                    owner_id=int(fields["owner"]) if fields.get("owner") else None,
                    date=datetime.fromtimestamp(date, UTC) if date not in (None, NONE) else None,
                )
            )
        return RawResult(
            hits=hits,
            total=min(len(candidates), COUNT_CAP),
            total_capped=len(candidates) > COUNT_CAP,
            by_type=by_type,
            by_owner=by_owner,
        )

    async def search(
        self, query: ParsedQuery, access: Access, filters: Filters, limit: int, offset: int
    ) -> RawResult:
        return await asyncio.to_thread(self._search_sync, query, access, filters, limit, offset)

    async def count(self) -> int:
        return await asyncio.to_thread(lambda: int(self._get_searcher().doc_count()))

    async def close(self) -> None:
        with self._lock:
            if self._searcher is not None:
                self._searcher.close()
                self._searcher = None
        if self._ix is not None:
            self._ix.close()
            self._ix = None
