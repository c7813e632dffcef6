"""The kernel's most frequent statements as SQL built once per table and shape, not per call.

Building a Piccolo query costs far more Python than the database takes to run it: reading a
task by id compiled ~40 column expressions, an insert first made a ``Table`` instance (every
column's default) and then a nested query string, and a workflow transition ran a dozen of
them (bench/workflow.py). The statements here are the same SQL, written once per table (and
per set of columns for an update) and run with their arguments straight on the connection
(``db.Statement``); values are converted as Piccolo converts them (``convert_to_sql_value``:
JSON to text, enums to their value), defaults are Piccolo's column defaults, and rows come
back as a Piccolo ``select()`` gives them (JSON parsed when asked).

A ``Bound`` statement is a query not run yet: awaited it runs; ``events.emit(..., also=...)``
takes it like a Piccolo query and on PostgreSQL writes it in the event's statement.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from piccolo.columns import Column
from piccolo.columns.defaults.base import Default
from piccolo.querystring import QueryString
from piccolo.table import Table
from piccolo.utils.encoding import load_json
from piccolo.utils.sql_values import convert_to_sql_value

from tessera import db


class Bound:
    """A ``db.Statement`` with its arguments, not run yet."""

    __slots__ = ("args", "statement")

    def __init__(self, statement: db.Statement, args: Sequence[Any]) -> None:
        self.statement = statement
        self.args = args

    async def run(self) -> list[dict[str, Any]]:
        return await self.statement.rows(*self.args)

    def __await__(self) -> Generator[Any, None, list[dict[str, Any]]]:
        return self.run().__await__()

    @property
    def querystrings(self) -> list[QueryString]:
        """As a Piccolo query's, for composing it into a larger statement."""
        return [QueryString(self.statement.sql, *self.args)]


#: Composed statements (``compose``) by their SQL text.
_composed: dict[str, db.Statement] = {}


def compose(template: str, parts: Sequence[Bound]) -> Bound:
    """``template`` with each ``{}`` replaced by one of ``parts``' SQL (``WITH a AS ({}) {}``):
    one statement, its arguments those of the parts in order."""
    pieces = template.split("{}")
    sql = pieces[0] + "".join(p.statement.sql + rest for p, rest in zip(parts, pieces[1:], strict=True))
    statement = _composed.get(sql)
    if statement is None:
        statement = _composed[sql] = db.Statement(sql)
        if len(_composed) > 1000:  # shapes are few; never let odd ones pile up
            _composed.clear()
    return Bound(statement, [a for p in parts for a in p.args])


class TableSQL:
    """The prepared statements of one table (``of(table)``)."""

    def __init__(self, table: type[Table]) -> None:
        self.table = table
        self.name = table._meta.tablename
        pk = table._meta.primary_key
        self.pk = pk._meta.db_column_name
        self.columns: list[Column] = list(table._meta.columns)
        #: Every column but the primary key, in table order (what an insert writes).
        self.writable = [c for c in self.columns if not c._meta.primary_key]
        self.json_names = {c._meta.name for c in table._meta.json_columns}
        self._writable_meta = [
            (
                c._meta.name,
                c,
                c._meta.name in self.json_names,
                self._constant_default(c, c._meta.name in self.json_names),
            )
            for c in self.writable
        ]
        self._by_name = {c._meta.name: c for c in self.columns}
        select_list = ", ".join(
            f'"{self.name}"."{c._meta.db_column_name}" AS "{c._meta.name}"' for c in self.columns
        )
        self.all_columns = select_list
        self.returning_all = "RETURNING " + ", ".join(
            f'"{c._meta.db_column_name}" AS "{c._meta.name}"' for c in self.columns
        )
        where = f'WHERE "{self.name}"."{self.pk}" = {{}}'
        self.by_pk = db.Statement(f'SELECT {select_list} FROM "{self.name}" {where}')
        self.by_pk_locked = db.Statement(f'SELECT {select_list} FROM "{self.name}" {where} FOR UPDATE')
        names = ", ".join(f'"{c._meta.db_column_name}"' for c in self.writable)
        marks = ", ".join("{}" for _ in self.writable)
        returning = {
            "all": f" {self.returning_all}",
            "id": f' RETURNING "{self.pk}" AS "{table._meta.primary_key._meta.name}"',
            "none": "",
        }
        head = f'INSERT INTO "{self.name}" ({names}) VALUES ({marks})'
        self._insert = {k: db.Statement(head + r) for k, r in returning.items()}
        #: With the primary key given (a restore, an import keeping ids): it goes first.
        head = f'INSERT INTO "{self.name}" ("{self.pk}", {names}) VALUES ({{}}, {marks})'
        self._insert_with_pk = {k: db.Statement(head + r) for k, r in returning.items()}
        self._pk_name = table._meta.primary_key._meta.name
        self._updates: dict[tuple[Any, ...], db.Statement] = {}
        self._in: dict[tuple[Any, ...], db.Statement] = {}

    @classmethod
    def _constant_default(cls, column: Column, is_json: bool) -> Any:
        """The value an insert writes for ``column`` when not given, if it is the same every
        time (a plain constant, not a callable or a ``Default`` such as now()); else
        ``_VARIES``."""
        default = getattr(column, "default", None)
        if callable(default) or isinstance(default, Default):
            return _VARIES
        value = column.get_default_value()
        if type(value) not in _PLAIN or (value is None and not column._meta.null):
            return _VARIES
        return cls._sql_value(value, column, is_json)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def loaded(self, row: dict[str, Any]) -> dict[str, Any]:
        """JSON columns parsed, as ``select().output(load_json=True)`` gives them."""
        for name in self.json_names:
            value = row.get(name)
            if isinstance(value, str):
                row[name] = load_json(value)
        return row

    async def get(self, record_id: Any, *, lock: bool = False) -> dict[str, Any] | None:
        """The row with this primary key (JSON parsed), or None. ``lock``: ``FOR UPDATE`` on
        PostgreSQL (SQLite's write transactions are serialised already)."""
        statement = self.by_pk_locked if lock and db.is_postgres() else self.by_pk
        rows = await statement.rows(record_id)
        return self.loaded(rows[0]) if rows else None

    async def with_ids(self, columns: Sequence[str], ids: Sequence[Any]) -> list[dict[str, Any]]:
        """``columns`` of the rows whose primary key is one of ``ids`` (no JSON parsing)."""
        key = (tuple(columns), len(ids))
        statement = self._in.get(key)
        if statement is None:
            names = ", ".join(f'"{self.column(n)._meta.db_column_name}" AS "{n}"' for n in columns)
            marks = ", ".join("{}" for _ in ids)
            statement = self._in[key] = db.Statement(
                f'SELECT {names} FROM "{self.name}" WHERE "{self.pk}" IN ({marks})'
            )
        return await statement.rows(*ids)

    def insert(self, values: dict[str, Any], returning: str = "all") -> Bound:
        """INSERT one row: ``values`` by column name, the others take their column default
        (as ``Table(**values)``), the primary key its sequence unless given; unknown names are
        an error. ``returning``: ``all`` columns, the ``id`` only, or ``none``."""
        unknown = values.keys() - self._by_name.keys()
        if unknown:
            raise ValueError(f"Unrecognized columns - {sorted(unknown)}")
        args = []
        for name, column, is_json, constant in self._writable_meta:
            if name in values:
                value = values[name]
            elif constant is not _VARIES:
                args.append(constant)
                continue
            else:
                value = column.get_default_value()
                if isinstance(value, Default):
                    value = value.python()
                if value is None and not column._meta.null:
                    raise ValueError(f"{name} wasn't provided")
            args.append(self._sql_value(value, column, is_json))
        if values.get(self._pk_name) is not None:
            return Bound(self._insert_with_pk[returning], [values[self._pk_name], *args])
        return Bound(self._insert[returning], args)

    @staticmethod
    def _sql_value(value: Any, column: Column, is_json: bool) -> Any:
        """``convert_to_sql_value``, without its checks for the plain values most are."""
        if type(value) in _PLAIN and not is_json:
            return value
        return convert_to_sql_value(value, column)

    def update(
        self,
        values: dict[str, Any],
        record_id: Any,
        *,
        match: dict[str, Any] | None = None,
        increment: Sequence[str] = (),
        returning_all: bool = False,
    ) -> Bound:
        """UPDATE the row ``record_id`` with plain ``values`` (by column name), only while
        each column of ``match`` holds its value (a compare-and-set: no row comes back
        otherwise); each column of ``increment`` grows by one in SQL. Returns every column
        with ``returning_all``, else the primary key."""
        names = tuple(values)
        matched = tuple(match or ())
        key = (names, matched, tuple(increment), returning_all)
        statement = self._updates.get(key)
        if statement is None:
            sets = [f'"{self.column(n)._meta.db_column_name}" = {{}}' for n in names]
            sets += [
                f'"{self.column(n)._meta.db_column_name}" = "{self.column(n)._meta.db_column_name}" + 1'
                for n in increment
            ]
            conditions = [f'"{self.pk}" = {{}}'] + [
                f'"{self.column(n)._meta.db_column_name}" = {{}}' for n in matched
            ]
            pk_name = self.table._meta.primary_key._meta.name
            returning = self.returning_all if returning_all else f'RETURNING "{self.pk}" AS "{pk_name}"'
            sql = f'UPDATE "{self.name}" SET {", ".join(sets)} WHERE {" AND ".join(conditions)} {returning}'
            statement = self._updates[key] = db.Statement(sql)
        json_names = self.json_names
        args = [self._sql_value(values[n], self._by_name[n], n in json_names) for n in names]
        args.append(record_id)
        args += [convert_to_sql_value(v, self.column(n)) for n, v in (match or {}).items()]
        return Bound(statement, args)


#: Value types the driver takes as they are (``convert_to_sql_value`` would return them).
_PLAIN = frozenset({int, str, float, bool, type(None), datetime, date, Decimal})
#: A column default computed at each insert (``TableSQL._constant_default``).
_VARIES = object()

_tables: dict[type[Table], TableSQL] = {}


def of(table: type[Table]) -> TableSQL:
    """The prepared statements of ``table`` (built at first use)."""
    found = _tables.get(table)
    if found is None:
        found = _tables[table] = TableSQL(table)
    return found
