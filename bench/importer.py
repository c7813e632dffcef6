"""Import benchmark: generate a realistic client list (CSV, Russian headers, cp1251 or UTF-8)
and import it with ``tessera.importer.import_parties`` into a fresh database; prints rows/s
(issue 7 target: >= 20,000 rows/s on SQLite) next to a baseline measured in the same run: bare
``executemany`` of the same rows into a table of the same shape, without validation, audit or
events; then the time of each stage up to the commit (read, check, duplicates, write, commit).

    .venv/bin/python bench/importer.py --rows 100000            # SQLite
    .venv/bin/python bench/importer.py --rows 100000 --pg URL   # PostgreSQL too
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PREFIXES = ["ООО", "АО", "ТОВ", "ПАО", "ЗАО", "ИП", "Ltd", "LLC"]
WORDS = [
    "Альфа", "Вектор", "Гранит", "Дніпро", "Омега", "Северный", "Техно", "Світло", "Acme", "Northwind",
    "Контур", "Меридиан", "Сибирь", "Карпати", "Балтика", "Union", "Polar", "Орион", "Стандарт", "Прайм",
]  # fmt: skip
SUFFIXES = ["Строй", "Трейд", "Логистик", "Агро", "Фарм", "Сервис", "Energy", "Group", "Маркет", "Снаб"]
CITIES = ["Москва", "Санкт-Петербург", "Київ", "Львів", "Новосибирск", "Казань", "Одеса", "Екатеринбург"]
STREETS = ["ул. Ленина", "пр. Мира", "вул. Шевченка", "ул. Садовая", "Хрещатик", "ул. Гагарина"]
STATUSES = ["Потенциальный", "Текущий", "Бывший", "current", "potential"]
HEADERS = ["Наименование", "Тип", "ИНН", "Телефон", "E-mail", "Адрес", "Статус", "Метки", "Сайт"]


def generate(path: Path, rows: int, encoding: str = "utf-8-sig", seed: int = 7) -> None:
    rnd = random.Random(seed)
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(HEADERS)
        for i in range(rows):
            name = f"{rnd.choice(PREFIXES)} «{rnd.choice(WORDS)} {rnd.choice(SUFFIXES)} {i}»"
            person = i % 10 == 0
            w.writerow(
                [
                    name,
                    "Физ. лицо" if person else "Юр. лицо",
                    f"{7700000000 + i}",
                    f"+7 (9{i % 100:02d}) {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}"
                    if i % 3
                    else f"8 9{i % 100:02d} {i // 10000 % 1000:03d} {i // 100 % 100:02d} {i % 100:02d}",
                    f"info{i}@company{i % 5000}.ru",
                    f"{rnd.choice(CITIES)}, {rnd.choice(STREETS)}, д. {rnd.randint(1, 200)}",
                    rnd.choice(STATUSES),
                    rnd.choice(["vip", "опт", "розница", "vip, опт", ""]),
                    f"company{i}.ru" if i % 4 == 0 else "",
                ]
            )


def baseline(path: Path, rows: int) -> float:
    """Bare sqlite3 executemany of the raw cells into a table of the same width."""
    db = path.with_suffix(".baseline.sqlite3")
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, {', '.join(f'c{i} TEXT' for i in range(19))})")
    started = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=";")
        next(reader)
        data = [(*r, *([""] * (19 - len(r)))) for r in reader]
    marks = ", ".join("?" for _ in range(19))
    with con:
        con.executemany(f"INSERT INTO t ({', '.join(f'c{i}' for i in range(19))}) VALUES ({marks})", data)
    elapsed = time.perf_counter() - started
    con.close()
    db.unlink()
    return rows / elapsed


async def run_import(workdir: Path, url: str, csv_path: Path, owner: str) -> Any:
    from tessera import db, importer, migrations
    from tessera.app import boot
    from tessera.config import Settings
    from tessera.demo import ensure_admin
    from tessera.permissions import ensure_default_roles
    from tessera.search import service as search_service

    settings = Settings(data_dir=workdir / "data", database_url=url, plugins=(), autoload_plugins=False)
    boot(settings)
    await db.start()
    try:
        await migrations.migrate()
        await ensure_default_roles()
        await ensure_admin(owner, "Owner", "bench-password-1")
        await search_service.start()
        report = await importer.import_parties(csv_path, owner_email=owner, index=True)
        assert report.committed, report.rejected[:3]
        return report
    finally:
        await db.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", help="PostgreSQL server URL (a scratch database is created and dropped)")
    parser.add_argument("--keep", action="store_true", help="Keep the generated CSV and database")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    workdir = Path(tempfile.mkdtemp(prefix="tessera-import-bench-"))
    csv_path = workdir / "clients.csv"
    t0 = time.perf_counter()
    generate(csv_path, args.rows)
    print(
        f"generated {args.rows} rows ({csv_path.stat().st_size / 1e6:.1f} MB) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    base = baseline(csv_path, args.rows)
    targets = [("sqlite", f"sqlite:///{workdir / 'data' / 'tessera.sqlite3'}")]
    pg_name = None
    if args.pg:
        from tessera.db import database_url_for, execute_on_server

        pg_name = f"tessera_import_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(execute_on_server(args.pg, f'CREATE DATABASE "{pg_name}"'))
        targets.append(("postgres", database_url_for(args.pg, pg_name)))
    try:
        for engine, url in targets:
            report = asyncio.run(run_import(workdir / engine, url, csv_path, "owner@example.com"))
            rate = report.rows_per_second
            print(
                f"{engine:8} import {report.imported} rows in {report.seconds:.2f} s = {rate:,.0f} rows/s "
                f"(bare executemany baseline {base:,.0f} rows/s, ratio {rate / base:.2f}); "
                f"search indexing afterwards {report.index_seconds:.1f} s"
            )
            print("         stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.stages.items()))
    finally:
        if pg_name and args.pg:
            from tessera.db import execute_on_server

            asyncio.run(execute_on_server(args.pg, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


if __name__ == "__main__":
    main()
