"""Search benchmark: indexing rate and query latency of both backends at full size.

Builds ``--size`` documents (20 % parties with Russian/English company and person names, phones,
e-mails, tags and addresses; 80 % activities with Russian/English meeting notes and agreements,
words drawn with a Zipf distribution so some words are in most documents and most words in
few) through the kernel's own document builders and analyzer, bulk-loads them, and times
1-word, 2-word and phrase queries through the backends' ``search`` (the full product query:
visibility, ranking, totals, facets, page) plus the snippets of the page, as an admin (sees
everything) and as an own-scope manager (sees 0.5 % of the documents; the ACL filter is inside
the query).

Baselines, measured in the same process on the same rows: a bare ``tsv @@ tsquery LIMIT 20``
(no ranking, no ACL, no counting, no snippets) and a plain ``ILIKE '%word%'`` scan, as a CRM
without full-text search would run it.

    flock /tmp/tessera-bench.lock .venv/bin/python bench/search.py          # the full run (~30 min)
    .venv/bin/python bench/search.py --size 50000 --whoosh-size 20000 --queries 50   # a quick run

PostgreSQL comes from ``--postgres`` or ``CRM_TEST_POSTGRES``; the documents go to the database
``--pg-database`` (default ``bench_search``), dropped at the end unless ``--keep``; ``--reuse``
skips building when that database already holds ``--size`` documents. whoosh indexes at most
``--whoosh-size`` documents (default 200,000: whoosh is pure Python, and one index of a million
documents takes the better part of an hour to build on two cores).

Bulk loading analyses documents in ``--jobs`` processes (default: one per CPU) and, on
PostgreSQL, COPYs them with the secondary indexes dropped and rebuilds the indexes afterwards;
the "incremental" rate is the product's own write path (``Searcher.replace`` in batches of 500,
as ``tessera search reindex`` writes) on the full index.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "core"))

from tessera.search import documents as d  # noqa: E402
from tessera.search.analysis import parse_query  # noqa: E402
from tessera.search.base import Access, Filters, Searcher  # noqa: E402
from tessera.search.snippets import snippet  # noqa: E402

RU_WORDS = (
    "договор поставка оплата счёт скидка встреча звонок клиент условия сроки доставка оборудование "
    "склад партия контракт предложение коммерческий цена тариф отгрузка претензия возврат гарантия "
    "сервис ремонт монтаж проект смета согласование директор бухгалтерия юрист подписание продление "
    "объём заказ логистика таможня сертификат качество упаковка маршрут рассрочка аванс график "
    "пересмотр рекламация компенсация тендер конкурс аукцион лицензия обучение семинар выставка "
    "презентация демонстрация пилот внедрение интеграция поддержка обновление миграция резервирование"
).split()
RU_INFLECT = ("", "а", "у", "ом", "е", "ы", "ов", "ами", "ах")
EN_WORDS = (
    "contract delivery payment invoice discount meeting call customer terms deadline shipment "
    "equipment warehouse order proposal commercial price tariff claim refund warranty service repair "
    "installation project estimate approval director accounting lawyer signing renewal volume "
    "logistics customs certificate quality packaging route instalment advance schedule review "
    "compensation tender auction licence training seminar exhibition presentation pilot rollout "
    "integration support upgrade migration backup"
).split()
EN_INFLECT = ("", "s", "ed", "ing")
COMPANY_RU = (
    "Ромашка Вектор Гелиос Квазар Орбита Полюс Меридиан Сириус Альфа Дельта Восток Север Уралтех "
    "Стройресурс Техноком"
).split()
COMPANY_EN = (
    "Acme Globex Initech Umbrella Stark Wayne Wonka Tyrell Cyberdyne Soylent Hooli Vandelay Oscorp".split()
)
FORMS = ("ООО", "АО", "ИП", "Ltd", "LLC", "GmbH", "ТОВ")
SURNAMES = (
    "Иванов Петров Сидоров Смирнов Кузнецов Попов Васильев Петренко Шевченко Коваленко Бондаренко "
    "Smith Johnson Brown Taylor Miller"
).split()
FIRST = "Иван Пётр Анна Мария Олег Ольга Тарас Оксана John Mary James Linda".split()
CHUNK = 10_000
USERS = 200
#: Queries of each kind the baselines run (a bare phrase query rechecks every row holding the
#: words, seconds each at a million documents).
BASELINE_QUERIES = 30
#: The own-scope manager of the benchmark: sees the documents of one of USERS owners.
MANAGER = 17


def vocabulary() -> list[str]:
    rng = random.Random(7)
    words = [w + e for w in RU_WORDS for e in RU_INFLECT] + [w + e for w in EN_WORDS for e in EN_INFLECT]
    # Plus a long tail of rarer tokens (article numbers, product codes, surnames ...).
    words += [f"{rng.choice(RU_WORDS)[:4]}{rng.randint(100, 99999)}" for _ in range(20000)]
    rng.shuffle(words)
    return words


_VOCAB = vocabulary()
_CUM: list[float] = []
for _i in range(len(_VOCAB)):
    _CUM.append((_CUM[-1] if _CUM else 0.0) + 1 / (_i + 1) ** 0.9)


def zipf_picker(rng: random.Random) -> Callable[[], str]:
    total = _CUM[-1]
    return lambda: _VOCAB[bisect.bisect(_CUM, rng.random() * total)]


def generate_chunk(chunk: int, size: int) -> Iterator[d.Document]:
    """Documents ``chunk * CHUNK + 1`` .. (at most ``size``): the same for any process."""
    rng = random.Random(chunk * 1_000_003 + 7)
    pick = zipf_picker(rng)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for i in range(chunk * CHUNK + 1, min(size, (chunk + 1) * CHUNK) + 1):
        owner = rng.randint(1, USERS)
        team = owner % 20 + 1
        if i % 5 == 0:
            name = f"{rng.choice(FORMS)} {rng.choice(COMPANY_RU + COMPANY_EN)} {rng.choice(SURNAMES)}"
            digits = (rng.randint(10, 99), rng.randint(100, 999), rng.randint(10, 99), rng.randint(10, 99))
            phone = "+7 (9{}) {}-{}-{}".format(*digits)
            record = {
                "id": i,
                "name": name,
                "phones": [{"number": phone}],
                "emails": [{"address": f"office{i}@{rng.choice(COMPANY_EN).lower()}.example"}],
                "tags": [pick() for _ in range(2)],
                "addresses": [{"text": f"г. Москва, ул. {rng.choice(SURNAMES)}а, д. {rng.randint(1, 200)}"}],
                "owner_id": owner,
                "team_id": team,
                "created_at": start + timedelta(minutes=i),
            }
            doc = d.party_document(record)
            doc.source = f"party:{i}"
        else:
            body = " ".join(pick() for _ in range(rng.randint(15, 60)))
            record = {
                "id": i,
                "subject": " ".join(pick() for _ in range(rng.randint(2, 6))).capitalize(),
                "description": body,
                "agreements": " ".join(pick() for _ in range(rng.randint(0, 15))),
                "party_id": i - i % 5,
                "owner_id": owner,
                "team_id": team,
                "starts_at": start + timedelta(minutes=i),
            }
            doc = d.activity_document(record, {"owner_id": owner, "team_id": team})
            doc.source = f"activity:{i}"
        yield doc


def chunks(size: int) -> range:
    return range((size + CHUNK - 1) // CHUNK)


def _pg_rows(chunk: int, size: int, stamp: float) -> list[tuple[Any, ...]]:
    from tessera.search.postgres_backend import _row

    return [_row(doc, stamp) for doc in generate_chunk(chunk, size)]


def _whoosh_fields(chunk: int, size: int, stamp: float) -> list[dict[str, Any]]:
    from tessera.search.whoosh_backend import document_fields

    return [document_fields(doc, stamp) for doc in generate_chunk(chunk, size)]


async def produce(func: Callable[..., Any], size: int, jobs: int) -> Any:
    """Yields the analysed chunks in order, computed by ``jobs`` processes a few chunks ahead."""
    loop = asyncio.get_running_loop()
    stamp = time.time()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: list[asyncio.Future[Any]] = []
        todo = iter(chunks(size))
        for c in todo:
            pending.append(loop.run_in_executor(pool, func, c, size, stamp))
            if len(pending) >= jobs * 2:
                break
        while pending:
            result = await pending.pop(0)
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(loop.run_in_executor(pool, func, nxt, size, stamp))
            yield result


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.t0 = label, total, 0, time.perf_counter()
        self.tty = sys.stdout.isatty()
        self.last = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < (0.5 if self.tty else 30) and self.done < self.total:
            return
        self.last = now
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(now - self.t0, 1e-9)
        line = (
            f"  {self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,}"
            f"  {rate:,.0f} docs/s"
        )
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", flush=True)
        if self.tty and self.done >= self.total:
            print()


def queries(sample: list[d.Document], rng: random.Random, n: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"1-word": [], "2-word": [], "phrase": []}
    while len(out["phrase"]) < n:
        doc = rng.choice(sample)
        words = [w for w in (doc.title + " " + doc.body).split() if w.isalpha() and len(w) > 3]
        if len(words) < 4:
            continue
        i = rng.randrange(len(words) - 1)
        out["1-word"].append(rng.choice(words))
        out["2-word"].append(f"{rng.choice(words)} {rng.choice(words)}")
        out["phrase"].append(f'"{words[i]} {words[i + 1]}"')
    return out


def sample_docs(size: int) -> list[d.Document]:
    """Documents to draw query words from: spread over the whole collection."""
    out: list[d.Document] = []
    for c in list(chunks(size))[:: max(1, len(chunks(size)) // 10)]:
        out.extend(list(generate_chunk(c, size))[:500])
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def time_queries(
    searcher: Searcher, qs: dict[str, list[str]], access: Access
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for kind, items in qs.items():
        times: list[float] = []
        for q in items:
            parsed = parse_query(q)
            t0 = time.perf_counter()
            result = await searcher.search(parsed, access, Filters(), 20, 0)
            memo: dict[str, bool] = {}
            for h in result.hits:
                snippet(h.title, h.body, parsed, memo)
            times.append((time.perf_counter() - t0) * 1000)
        out[kind] = times
    return out


def line(label: str, kind: str, times: list[float], extra: str = "") -> str:
    return (
        f"  {label:<30} {kind:<7} p50 {pct(times, 50):7.1f} ms   p95 {pct(times, 95):7.1f} ms"
        f"   max {max(times):7.1f} ms{extra}"
    )


def report(label: str, timings: dict[str, list[float]]) -> None:
    for kind, times in timings.items():
        print(line(label, kind, times))


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


ACCESS_ALL = Access(types=frozenset({"party", "activity"}), user_ids=None)
ACCESS_MANAGER = Access(
    types=frozenset({"party", "activity"}), user_ids=frozenset({MANAGER}), team_ids=frozenset()
)


async def incremental(searcher: Any, size: int, n: int) -> float:
    """Rewrite ``n`` existing documents through ``Searcher.replace`` in batches of 500 (the
    product's path: an edit, ``tessera search reindex``); documents/s."""
    docs = [doc for c in list(chunks(size))[-1 - (n - 1) // CHUNK :] for doc in generate_chunk(c, size)][-n:]
    t0 = time.perf_counter()
    for i in range(0, len(docs), 500):
        batch = docs[i : i + 500]
        await searcher.replace([doc.source for doc in batch], batch, time.time())
    return len(docs) / (time.perf_counter() - t0)


async def bench_whoosh(size: int, qs_n: int, jobs: int, full: int, keep_dir: str) -> None:
    from tessera.search.whoosh_backend import WhooshSearcher

    note = f" (of --size {full:,}: see --whoosh-size)" if size < full else ""
    print(f"whoosh: {size:,} documents{note}")
    directory = Path(keep_dir) if keep_dir else Path(tempfile.mkdtemp(prefix="tessera-bench-whoosh-"))
    try:
        searcher = WhooshSearcher(directory / "ix")
        if keep_dir and not await searcher.open() and await searcher.count() == size:
            print(f"whoosh: reusing the index in {directory}")
            await bench_whoosh_queries(searcher, size, qs_n)
            return
        await searcher.close()
        shutil.rmtree(directory / "ix", ignore_errors=True)
        searcher = WhooshSearcher(directory / "ix")
        await searcher.open()
        t0 = time.perf_counter()
        progress = Progress("whoosh", size)
        writer = searcher.bulk_writer()
        async for fields in produce(_whoosh_fields, size, jobs):
            for f in fields:
                writer.add_document(**f)
            progress.advance(len(fields))
        t1 = time.perf_counter()
        await asyncio.to_thread(writer.commit)
        await searcher.mark_built()
        elapsed = time.perf_counter() - t0
        print(
            f"whoosh: bulk-loaded {size:,} documents in {elapsed:.0f} s = {size / elapsed:,.0f} docs/s"
            f" (analysis in {jobs} processes; commit {time.perf_counter() - t1:.0f} s); {load()}"
        )
        rate = await incremental(searcher, size, 2000)
        print(f"whoosh: incremental replace() of 2,000 documents in batches of 500: {rate:,.0f} docs/s")
        await bench_whoosh_queries(searcher, size, qs_n)
    finally:
        if not keep_dir:
            shutil.rmtree(directory, ignore_errors=True)


async def bench_whoosh_queries(searcher: Any, size: int, qs_n: int) -> None:
    qs = queries(sample_docs(size), random.Random(11), qs_n)
    await time_queries(searcher, {"1-word": qs["1-word"][:20]}, ACCESS_ALL)  # warm up
    report("whoosh, admin (all)", await time_queries(searcher, qs, ACCESS_ALL))
    report("whoosh, manager (own, 0.5 %)", await time_queries(searcher, qs, ACCESS_MANAGER))
    print(f"  {load()}")
    await searcher.close()


async def pg_bulk_load(conn: Any, size: int, jobs: int) -> None:
    """COPY every document into ``search_document`` with its secondary indexes dropped, then
    rebuild them (the way to load a million rows; the product's incremental path is timed
    separately)."""
    from tessera.search.postgres_backend import _STAGE_DDL, COLUMNS

    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'search_document'"
        " AND indexname <> 'search_document_pkey'"
    )
    for ix in indexes:
        constraint = await conn.fetchval(
            "SELECT conname FROM pg_constraint WHERE conname = $1 AND conrelid = 'search_document'::regclass",
            ix["indexname"],
        )
        if constraint:
            await conn.execute(f'ALTER TABLE search_document DROP CONSTRAINT "{constraint}"')
        else:
            await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
    await conn.execute(_STAGE_DDL.replace("ON COMMIT DELETE ROWS", ""))
    insert = (
        f"INSERT INTO search_document ({', '.join(COLUMNS)}) "
        f"SELECT {', '.join(c if c != 'tsv' else 'tsv::tsvector' for c in COLUMNS)} FROM search_stage"
    )
    t0 = time.perf_counter()
    progress = Progress("postgres", size)
    async for rows in produce(_pg_rows, size, jobs):
        await conn.copy_records_to_table("search_stage", records=rows, columns=list(COLUMNS))
        await conn.execute(insert)
        await conn.execute("TRUNCATE search_stage")
        progress.advance(len(rows))
    t1 = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for ix in indexes:
        await conn.execute(ix["indexdef"])
    await conn.execute("VACUUM ANALYZE search_document")
    print(
        f"postgres: COPY {t1 - t0:.0f} s (analysis in {jobs} processes), indexes + VACUUM ANALYZE"
        f" {time.perf_counter() - t1:.0f} s"
    )


async def bench_postgres(
    url: str, size: int, qs_n: int, jobs: int, dbname: str, keep: bool, reuse: bool
) -> None:
    import asyncpg
    from tessera import db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.search.postgres_backend import PostgresSearcher, build_tsquery

    if not dbname.startswith("bench_search"):
        raise SystemExit("--pg-database must start with bench_search")
    admin = await asyncpg.connect(url)
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname)
    bench_url = urlunparse(urlparse(url)._replace(path=f"/{dbname}"))
    built = False
    if exists and reuse:
        probe = await asyncpg.connect(bench_url)
        try:
            built = await probe.fetchval("SELECT count(*) FROM search_document") == size
        except asyncpg.PostgresError:
            built = False
        await probe.close()
    if not built:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{dbname}"')
    data_dir = Path(tempfile.mkdtemp(prefix="tessera-bench-pg-"))
    try:
        boot(Settings(data_dir=data_dir, database_url=bench_url, plugins=(), autoload_plugins=False))
        await db.start()
        engine: Any = db.get_engine()
        searcher = PostgresSearcher()
        if built:
            print(f"postgres: reusing {size:,} documents in database {dbname}")
        else:
            await migrations.migrate()
            t0 = time.perf_counter()
            async with engine.pool.acquire() as conn:
                await pg_bulk_load(conn, size, jobs)
            elapsed = time.perf_counter() - t0
            print(
                f"postgres: bulk-loaded {size:,} documents in {elapsed:.0f} s = {size / elapsed:,.0f} docs/s;"
                f" {load()}"
            )
            await searcher.mark_built()
        async with engine.pool.acquire() as conn:
            mb = await conn.fetchval("SELECT pg_total_relation_size('search_document') / 1048576")
            print(f"postgres: search_document with indexes: {mb:,} MB")
        rate = await incremental(searcher, size, 2000)
        print(f"postgres: incremental replace() of 2,000 documents in batches of 500: {rate:,.0f} docs/s")
        qs = queries(sample_docs(size), random.Random(11), qs_n)
        await time_queries(searcher, {"1-word": qs["1-word"][:20]}, ACCESS_ALL)  # warm up
        fts = await time_queries(searcher, qs, ACCESS_ALL)
        report("postgres, admin (all)", fts)
        report("postgres, manager (own, 0.5 %)", await time_queries(searcher, qs, ACCESS_MANAGER))
        # Baselines on the same rows, same process.
        async with engine.pool.acquire() as conn:
            await conn.execute("SET statement_timeout = '10s'")
            for kind, items in qs.items():
                bare: list[float] = []
                for q in items[:BASELINE_QUERIES]:
                    tsq = build_tsquery(parse_query(q))
                    t1 = time.perf_counter()
                    try:
                        await conn.fetch(
                            "SELECT id, title FROM search_document WHERE tsv @@ $1::tsquery LIMIT 20", tsq
                        )
                    except asyncpg.QueryCanceledError:  # counted as the 10 s it was allowed
                        pass
                    bare.append((time.perf_counter() - t1) * 1000)
                ratio = statistics.median(fts[kind]) / max(statistics.median(bare), 1e-3)
                label = f"baseline: bare tsv @@ ({len(bare)} q.)"
                print(line(label, kind, bare, f"   search/bare p50 {ratio:.2f}x"))
            ilike: list[float] = []
            for q in qs["1-word"][:10]:
                t1 = time.perf_counter()
                try:
                    await conn.fetch(
                        "SELECT id, title FROM search_document"
                        " WHERE title ILIKE $1 OR body ILIKE $1 LIMIT 20",
                        f"%{q}%",
                    )
                except asyncpg.QueryCanceledError:
                    pass
                ilike.append((time.perf_counter() - t1) * 1000)
            print(line("baseline: ILIKE scan (10 q.)", "1-word", ilike))
        print(
            "  (baselines: no ranking, no visibility, no totals/facets, no snippets;"
            " ILIKE: no inflected forms)"
        )
        print(f"  {load()}")
        await db.stop()
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(data_dir, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1_000_000, help="documents for PostgreSQL")
    parser.add_argument(
        "--whoosh-size", type=int, default=200_000, help="documents for whoosh (at most --size)"
    )
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind")
    parser.add_argument("--backends", default="postgres,whoosh")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="analysis processes")
    parser.add_argument("--postgres", default=os.environ.get("CRM_TEST_POSTGRES", ""))
    parser.add_argument("--pg-database", default="bench_search", help="scratch database (bench_search*)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument(
        "--whoosh-dir", default="", help="keep the whoosh index here; reused when it has the size"
    )
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database of --size documents")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), {load()}")
    backends = args.backends.split(",")
    if "postgres" in backends:
        if not args.postgres:
            print("postgres: skipped (give --postgres URL or CRM_TEST_POSTGRES)")
        else:
            await bench_postgres(
                args.postgres, args.size, args.queries, args.jobs, args.pg_database, args.keep, args.reuse
            )
    if "whoosh" in backends:
        await bench_whoosh(
            min(args.size, args.whoosh_size), args.queries, args.jobs, args.size, args.whoosh_dir
        )


if __name__ == "__main__":
    asyncio.run(main())
