"""Search benchmark: indexing rate and query latency of both backends.

Builds ``--size`` documents (20 % parties with Russian/English company and person names, phones
and e-mails; 80 % activities with Russian/English meeting notes and agreements) through the
kernel's own document builders and analyzer, indexes them, and times 1-word, 2-word and phrase
queries as a manager with own-scope visibility would send them (ACL filter inside the query)
and as an admin (no filter). The baseline, measured in the same process on the same rows, is a
plain ``ILIKE '%word%'`` scan on PostgreSQL.

    .venv/bin/python bench/search.py --size 1000000                       # the full run
    .venv/bin/python bench/search.py --size 50000 --whoosh-size 50000     # a quick run

PostgreSQL comes from ``--postgres`` or ``CRM_TEST_POSTGRES``; a scratch database is created
and dropped. whoosh indexes at most ``--whoosh-size`` documents (default 200,000: pure-Python
indexing of a million documents takes the better part of an hour on two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
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


def zipf_picker(words: list[str], rng: random.Random) -> Callable[[], str]:
    weights = [1 / (i + 1) ** 0.9 for i in range(len(words))]
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)

    def pick() -> str:
        import bisect

        return words[bisect.bisect(cum, rng.random() * total)]

    return pick


def vocabulary(rng: random.Random) -> list[str]:
    words = [w + e for w in RU_WORDS for e in RU_INFLECT] + [w + e for w in EN_WORDS for e in EN_INFLECT]
    # Plus a long tail of rarer tokens (article numbers, product codes, surnames ...).
    words += [f"{rng.choice(RU_WORDS)[:4]}{rng.randint(100, 99999)}" for _ in range(20000)]
    rng.shuffle(words)
    return words


def generate(size: int, seed: int = 7) -> Iterator[d.Document]:
    rng = random.Random(seed)
    pick = zipf_picker(vocabulary(rng), rng)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for i in range(1, size + 1):
        owner = rng.randint(1, 200)
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
            yield d.party_document(record)
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
            yield d.activity_document(record, {"owner_id": owner, "team_id": team})


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


def report(label: str, timings: dict[str, list[float]]) -> None:
    for kind, times in timings.items():
        print(f"  {label:<22} {kind:<7} p50 {pct(times, 50):7.1f} ms   p95 {pct(times, 95):7.1f} ms")


ACCESS_ALL = Access(types=frozenset({"party", "activity"}), user_ids=None)
ACCESS_MANAGER = Access(
    types=frozenset({"party", "activity"}), user_ids=frozenset({17}), team_ids=frozenset()
)


async def bench_whoosh(size: int, qs_n: int) -> None:
    from tessera.search.whoosh_backend import WhooshSearcher

    directory = Path(tempfile.mkdtemp(prefix="tessera-bench-whoosh-"))
    try:
        searcher = WhooshSearcher(directory / "ix")
        await searcher.open()
        sample: list[d.Document] = []
        t0 = time.perf_counter()
        batch: list[d.Document] = []
        done = 0
        for doc in generate(size):
            doc.source = f"{doc.type}:{doc.id}"
            batch.append(doc)
            if len(sample) < 5000:
                sample.append(doc)
            if len(batch) == 50_000:
                await asyncio.to_thread(searcher.add_batch_sync, batch, time.time())
                done += len(batch)
                batch = []
                print(
                    f"  whoosh: {done} documents, {done / (time.perf_counter() - t0):,.0f} docs/s", flush=True
                )
        if batch:
            await asyncio.to_thread(searcher.add_batch_sync, batch, time.time())
        elapsed = time.perf_counter() - t0
        print(f"whoosh: indexed {size:,} documents in {elapsed:.0f} s = {size / elapsed:,.0f} docs/s")
        qs = queries(sample, random.Random(11), qs_n)
        await time_queries(searcher, {"1-word": qs["1-word"][:10]}, ACCESS_ALL)  # warm up
        report("whoosh, admin (all)", await time_queries(searcher, qs, ACCESS_ALL))
        report("whoosh, manager (own)", await time_queries(searcher, qs, ACCESS_MANAGER))
        await searcher.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def bench_postgres(url: str, size: int, qs_n: int) -> None:
    import asyncpg
    from tessera import db, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.search.postgres_backend import PostgresSearcher

    parsed = urlparse(url)
    name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    bench_url = urlunparse(parsed._replace(path=f"/{name}"))
    data_dir = Path(tempfile.mkdtemp(prefix="tessera-bench-pg-"))
    try:
        boot(Settings(data_dir=data_dir, database_url=bench_url, plugins=(), autoload_plugins=False))
        await db.start()
        await migrations.migrate()
        searcher = PostgresSearcher()
        engine: Any = db.get_engine()
        sample: list[d.Document] = []
        t0 = time.perf_counter()
        batch: list[d.Document] = []
        plain: list[tuple[str, str]] = []
        done = 0
        for doc in generate(size):
            doc.source = f"{doc.type}:{doc.id}"
            batch.append(doc)
            plain.append((doc.title, doc.body))
            if len(sample) < 5000:
                sample.append(doc)
            if len(batch) == 20_000:
                await searcher.bulk_upsert(batch, time.time())
                done += len(batch)
                batch = []
                if done % 100_000 == 0:
                    print(
                        f"  postgres: {done} documents, {done / (time.perf_counter() - t0):,.0f} docs/s",
                        flush=True,
                    )
        if batch:
            await searcher.bulk_upsert(batch, time.time())
        elapsed = time.perf_counter() - t0
        print(f"postgres: indexed {size:,} documents in {elapsed:.0f} s = {size / elapsed:,.0f} docs/s")
        async with engine.pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE search_document")
            await conn.execute("CREATE TABLE bench_plain (title text, body text)")
            await conn.copy_records_to_table("bench_plain", records=plain, columns=["title", "body"])
            await conn.execute("VACUUM ANALYZE bench_plain")
        plain.clear()
        qs = queries(sample, random.Random(11), qs_n)
        await time_queries(searcher, {"1-word": qs["1-word"][:10]}, ACCESS_ALL)  # warm up
        fts = await time_queries(searcher, qs, ACCESS_ALL)
        report("postgres, admin (all)", fts)
        report("postgres, manager (own)", await time_queries(searcher, qs, ACCESS_MANAGER))
        # Baseline: a plain substring scan, as a CRM without full-text search would run it.
        base: list[float] = []
        async with engine.pool.acquire() as conn:
            for q in qs["1-word"][:10]:
                t1 = time.perf_counter()
                await conn.fetch(
                    "SELECT title FROM bench_plain WHERE title ILIKE $1 OR body ILIKE $1 LIMIT 20", f"%{q}%"
                )
                base.append((time.perf_counter() - t1) * 1000)
        ratio = statistics.median(fts["1-word"]) / statistics.median(base)
        print(
            f"  baseline ILIKE scan     1-word  p50 {pct(base, 50):7.1f} ms   p95 {pct(base, 95):7.1f} ms"
            f"   full-text/ILIKE p50 ratio {ratio:.2f} (ILIKE: first 20 rows, no count, no ranking,"
            " no inflected forms)"
        )
        await db.stop()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
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
    parser.add_argument("--postgres", default=os.environ.get("CRM_TEST_POSTGRES", ""))
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    backends = args.backends.split(",")
    if "postgres" in backends:
        if not args.postgres:
            print("postgres: skipped (give --postgres URL or CRM_TEST_POSTGRES)")
        else:
            await bench_postgres(args.postgres, args.size, args.queries)
    if "whoosh" in backends:
        await bench_whoosh(min(args.size, args.whoosh_size), args.queries)


if __name__ == "__main__":
    asyncio.run(main())
