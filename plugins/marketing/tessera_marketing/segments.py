"""Segment rules -> one SQL condition on ``party``.

Rules are a JSON document (docs/marketing.md)::

    {"all": [
        {"field": "status", "op": "eq", "value": "current"},
        {"field": "tag", "op": "has", "value": "vip"},
        {"field": "custom.industry", "op": "in", "value": ["retail", "horeca"]},
        {"field": "activity", "op": "none_within_days", "value": 90, "type": "meeting"},
        {"any": [{"field": "abc_class", "op": "eq", "value": "A"}, {"not": {...}}]}
    ]}

The compiler writes SQL text made only of fixed fragments of its own and ``{}`` placeholders:
every value a user gives is an argument, every custom-field key is checked against the party
custom-field schema first (a key not there is a 422 naming it), so nothing a user typed reaches
the SQL text. The condition goes through the kernel's party list/count (``tessera.entities.
service``), which adds the caller's party visibility in the same query: a segment is counted
in the database, never by looping over parties in Python.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from piccolo.columns.combination import WhereRaw
from tessera import clock, db
from tessera.customfields import effective_schema
from tessera.entities import service
from tessera.errors import ValidationFailed

from tessera_marketing import revenue

MAX_DEPTH = 6
MAX_RULES = 100
MAX_LIST = 500
KEY = re.compile(r"^[A-Za-z0-9_]{1,100}$")

PARTY_KINDS = ("organisation", "person")
STATUSES = ("potential", "current", "former")
RELATIONS = ("client", "partner", "supplier", "competitor")
ACTIVITY_TYPES = ("call", "meeting", "email", "letter", "seminar", "mailing", "claim", "note")
CLASSES = {"abc_class": ("A", "B", "C"), "xyz_class": ("X", "Y", "Z")}

#: field -> the operators it takes (custom fields: see ``CUSTOM_OPS``)
FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("eq", "contains"),
    "kind": ("eq", "ne", "in"),
    "status": ("eq", "ne", "in"),
    "owner_id": ("eq", "in", "empty"),
    "team_id": ("eq", "in", "empty"),
    "created_at": ("before", "after", "within_days", "older_than_days"),
    "updated_at": ("before", "after", "within_days", "older_than_days"),
    "status_changed_at": ("before", "after", "within_days", "older_than_days"),
    "tag": ("has", "has_any", "has_none"),
    "relation": ("has", "has_any", "has_none"),
    "abc_class": ("eq", "ne", "in", "empty"),
    "xyz_class": ("eq", "ne", "in", "empty"),
    "activity": ("some_within_days", "none_within_days"),
    "revenue": ("gte", "gt", "lte", "lt"),
    "segment": ("in", "not_in"),
}
CUSTOM_OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "empty", "not_empty", "contains")
COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _Compiler:
    def __init__(self, custom_schema: dict[str, Any], now: dt.datetime, segment_id: int | None) -> None:
        self.custom = custom_schema
        self.now = now
        self.pg = db.is_postgres()
        self.count = 0
        self.segment_id = segment_id
        self.nested: list[int] = []
        #: The surveys (``surveys.rule_schema``), loaded when the rules name one.
        self.surveys: dict[str, Any] = {}

    # ------------------------------------------------------------------ structure

    def node(self, node: Any, path: str, depth: int) -> tuple[str, list[Any]]:
        if depth > MAX_DEPTH:
            raise ValidationFailed.field(path, f"rules nest deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            raise ValidationFailed.field(path, "must be an object")
        self.count += 1
        if self.count > MAX_RULES:
            raise ValidationFailed.field(path, f"at most {MAX_RULES} rules")
        groups = [k for k in ("all", "any", "not") if k in node]
        if groups:
            if len(node) != 1:
                raise ValidationFailed.field(path, "a group has exactly one key: all, any or not")
            key = groups[0]
            if key == "not":
                sql, args = self.node(node["not"], f"{path}.not", depth + 1)
                false = "FALSE" if self.pg else "0"
                return f"NOT COALESCE(({sql}), {false})", args
            items = node[key]
            if not isinstance(items, list):
                raise ValidationFailed.field(f"{path}.{key}", "must be a list of rules")
            if not items:
                return ("TRUE" if self.pg else "1") if key == "all" else ("FALSE" if self.pg else "0"), []
            parts, args = [], []
            for i, item in enumerate(items):
                sql, a = self.node(item, f"{path}.{key}[{i}]", depth + 1)
                parts.append(f"({sql})")
                args.extend(a)
            return (" AND " if key == "all" else " OR ").join(parts), args
        return self.rule(node, path)

    # ------------------------------------------------------------------ one rule

    def rule(self, rule: dict[str, Any], path: str) -> tuple[str, list[Any]]:
        unknown = set(rule) - {"field", "op", "value", "type", "months"}
        if unknown:
            raise ValidationFailed.field(f"{path}.{sorted(unknown)[0]}", "unknown key in a rule")
        field = rule.get("field")
        op = rule.get("op")
        if not isinstance(field, str) or not field:
            raise ValidationFailed.field(f"{path}.field", "a rule names a field")
        if field in ("custom.abc_class", "custom.xyz_class"):
            field = field[len("custom.") :]  # kept in marketing_party_class, not in party.custom
        if field.startswith("custom.") and (self.custom.get(field[len("custom.") :]) or {}).get("readOnly"):
            raise ValidationFailed.field(f"{path}.field", f"{field} is computed and cannot be a rule")
        if field.startswith("custom."):
            key = field[len("custom.") :]
            if not KEY.match(key) or key not in self.custom:
                raise ValidationFailed.field(f"{path}.field", f"unknown field {field!r}")
            ops: tuple[str, ...] = CUSTOM_OPS
        elif field.startswith("survey."):
            from tessera_marketing.surveys import rule_sql

            return rule_sql(self.surveys, field, op, rule.get("value"), path, self.pg)
        elif field in FIELDS:
            ops = FIELDS[field]
        else:
            raise ValidationFailed.field(f"{path}.field", f"unknown field {field!r}")
        if op not in ops:
            raise ValidationFailed.field(f"{path}.op", f"{field} takes the operators {', '.join(ops)}")
        vpath = f"{path}.value"
        value = rule.get("value")
        if field.startswith("custom."):
            return self.custom_rule(field[len("custom.") :], op, value, vpath)
        return getattr(self, f"r_{field}")(op, value, vpath, rule)

    # ------------------------------------------------------------------ values

    @staticmethod
    def _text(value: Any, path: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value or len(value) > 300:
            raise ValidationFailed.field(path, "must be a non-empty text")
        if choices is not None and value not in choices:
            raise ValidationFailed.field(path, f"must be one of {', '.join(choices)}")
        return value

    def _texts(self, value: Any, path: str, choices: tuple[str, ...] | None = None) -> list[str]:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise ValidationFailed.field(path, f"must be a list of 1 to {MAX_LIST} values")
        return [self._text(v, f"{path}[{i}]", choices) for i, v in enumerate(value)]

    @staticmethod
    def _int(value: Any, path: str, low: int = 1, high: int = 2**31 - 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationFailed.field(path, f"must be a whole number from {low} to {high}")
        return value

    def _ints(self, value: Any, path: str) -> list[int]:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise ValidationFailed.field(path, f"must be a list of 1 to {MAX_LIST} ids")
        return [self._int(v, f"{path}[{i}]") for i, v in enumerate(value)]

    @staticmethod
    def _number(value: Any, path: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationFailed.field(path, "must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValidationFailed.field(path, "must be a number") from None
        if not number.is_finite() or abs(number) >= Decimal(10) ** 15:
            raise ValidationFailed.field(path, "must be a number below 10^15")
        return number

    def _num(self, number: Decimal) -> Any:
        # SQLite compares a bound Decimal (adapted to text) as text: bind a float there.
        return number if self.pg else float(number)

    @staticmethod
    def _marks(n: int) -> str:
        return ", ".join("{}" for _ in range(n))

    # ------------------------------------------------------------------ party columns

    def _choice(self, column: str, op: str, value: Any, path: str, choices: tuple[str, ...]) -> Any:
        if op == "in":
            values = self._texts(value, path, choices)
            return f'"party"."{column}" IN ({self._marks(len(values))})', values
        text = self._text(value, path, choices)
        return f'"party"."{column}" {COMPARE[op]} {{}}', [text]

    def r_name(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        text = self._text(value, path)
        if op == "eq":
            return '"party"."name" = {}', [text]
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if self.pg:
            return '"party"."name" ILIKE {} ESCAPE \'\\\'', [like]
        return 'LOWER("party"."name") LIKE LOWER({}) ESCAPE \'\\\'', [like]

    def r_kind(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._choice("kind", op, value, path, PARTY_KINDS)

    def r_status(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._choice("status", op, value, path, STATUSES)

    def _user_or_team(self, column: str, op: str, value: Any, path: str) -> Any:
        if op == "empty":
            return f'"party"."{column}" IS NULL', []
        if op == "in":
            ids = self._ints(value, path)
            return f'"party"."{column}" IN ({self._marks(len(ids))})', ids
        return f'"party"."{column}" = {{}}', [self._int(value, path)]

    def r_owner_id(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._user_or_team("owner_id", op, value, path)

    def r_team_id(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._user_or_team("team_id", op, value, path)

    def _time(self, column: str, op: str, value: Any, path: str) -> Any:
        if op in ("within_days", "older_than_days"):
            cutoff = self.now - dt.timedelta(days=self._int(value, path, 0, 36600))
            return f'"party"."{column}" {">=" if op == "within_days" else "<"} {{}}', [cutoff]
        if not isinstance(value, str):
            raise ValidationFailed.field(path, "must be an ISO 8601 time with a time zone")
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed.field(path, "must be an ISO 8601 time with a time zone") from None
        if when.tzinfo is None:
            raise ValidationFailed.field(path, "must carry a time zone (e.g. 2026-03-02T09:00:00Z)")
        return f'"party"."{column}" {"<" if op == "before" else ">="} {{}}', [when.astimezone(dt.UTC)]

    def r_created_at(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._time("created_at", op, value, path)

    def r_updated_at(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._time("updated_at", op, value, path)

    def r_status_changed_at(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._time("status_changed_at", op, value, path)

    def _array_has(self, column: str, value: str) -> tuple[str, list[Any]]:
        if self.pg:
            return f'{{}} = ANY("party"."{column}")', [value]
        return f'EXISTS (SELECT 1 FROM json_each("party"."{column}") WHERE json_each.value = {{}})', [value]

    def _array(self, column: str, op: str, value: Any, path: str, choices: tuple[str, ...] | None) -> Any:
        values = [self._text(value, path, choices)] if op == "has" else self._texts(value, path, choices)
        if self.pg:
            # Containment / overlap: what the GIN index ``party_tags`` answers (``{} = ANY(tags)``
            # is the same test, but no index serves it).
            marks = self._marks(len(values))
            test = f'"party"."{column}" {"@>" if op == "has" else "&&"} ARRAY[{marks}]::varchar[]'
            if op == "has_none":
                return f'NOT ({test}) OR "party"."{column}" IS NULL', values
            return test, values
        parts, args = [], []
        for v in values:
            sql, a = self._array_has(column, v)
            parts.append(sql)
            args.extend(a)
        joined = " OR ".join(parts)
        if op == "has_none":
            return f'NOT ({joined}) OR "party"."{column}" IS NULL', args
        return joined, args

    def r_tag(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._array("tags", op, value, path, None)

    def r_relation(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._array("relations", op, value, path, RELATIONS)

    # ------------------------------------------------------------------ custom fields

    def _custom_in(self, key: str, values: list[str]) -> tuple[str, list[Any]]:
        """PostgreSQL: ``custom->>key IN (values)`` as the GIN index ``party_custom_pairs`` answers
        it (kernel migration 2026-12-07T04:00): the same rows, since ``tessera_json_pairs``
        holds ``key <US> custom->>key`` for every key whose value is not a JSON null."""
        pairs = [f"{key}\x1f{v}" for v in values]
        op = "@>" if len(pairs) == 1 else "&&"
        return f'tessera_json_pairs("party"."custom") {op} ARRAY[{self._marks(len(pairs))}]::text[]', pairs

    def _custom_expr(self, key: str, numeric: bool) -> tuple[str, list[Any]]:
        if self.pg:
            expr = '("party"."custom"->>{})'
            return (f"({expr})::numeric" if numeric else expr), [key]
        return 'json_extract("party"."custom", {})', [f'$."{key}"']

    def custom_rule(self, key: str, op: str, value: Any, path: str) -> Any:
        prop = self.custom.get(key) or {}
        kind = prop.get("type")
        numeric = kind in ("number", "integer")
        if op in ("gt", "gte", "lt", "lte") and not numeric and kind != "string":
            raise ValidationFailed.field(path, f"custom.{key} is not a number")
        expr, args = self._custom_expr(key, numeric)
        if op == "empty":
            return f"({expr}) IS NULL OR CAST(({expr}) AS TEXT) = ''", args + args
        if op == "not_empty":
            return f"({expr}) IS NOT NULL AND CAST(({expr}) AS TEXT) <> ''", args + args
        if op == "contains":
            text = self._text(value, path)
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            fn = "ILIKE" if self.pg else "LIKE"
            return f"CAST(({expr}) AS TEXT) {fn} {{}} ESCAPE '\\'", [*args, like]
        values = value if op == "in" else [value]
        if op == "in" and (not isinstance(value, list) or not value or len(value) > MAX_LIST):
            raise ValidationFailed.field(path, f"must be a list of 1 to {MAX_LIST} values")
        converted = [
            self._custom_value(prop, v, f"{path}[{i}]" if op == "in" else path) for i, v in enumerate(values)
        ]
        if self.pg and kind == "string" and op in ("eq", "in"):
            return self._custom_in(key, converted)
        if op == "in":
            return f"({expr}) IN ({self._marks(len(converted))})", [*args, *converted]
        return f"({expr}) {COMPARE[op]} {{}}", [*args, converted[0]]

    def _custom_value(self, prop: dict[str, Any], value: Any, path: str) -> Any:
        kind = prop.get("type")
        if kind in ("number", "integer"):
            return self._num(self._number(value, path))
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValidationFailed.field(path, "must be true or false")
            return ("true" if value else "false") if self.pg else int(value)
        enum = prop.get("enum")
        return self._text(value, path, tuple(enum) if isinstance(enum, list) else None)

    def _class(self, key: str, op: str, value: Any, path: str) -> Any:
        """The client's class, kept by ``classes.recompute`` in ``marketing_party_class`` (one row
        per classified client; none: no class)."""
        choices = CLASSES[key]
        table = '"marketing_party_class" seg_c'
        if op == "empty":
            return f'NOT EXISTS (SELECT 1 FROM {table} WHERE seg_c."party_id" = "party"."id")', []
        if op == "in":
            values = self._texts(value, path, choices)
            condition, args = f'seg_c."{key}" IN ({self._marks(len(values))})', values
        else:
            condition, args = f'seg_c."{key}" {COMPARE[op]} {{}}', [self._text(value, path, choices)]
        return f'"party"."id" IN (SELECT seg_c."party_id" FROM {table} WHERE {condition})', args

    def r_abc_class(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._class("abc_class", op, value, path)

    def r_xyz_class(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        return self._class("xyz_class", op, value, path)

    # ------------------------------------------------------------------ history, figures

    def r_activity(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        days = self._int(value, path, 1, 36600)
        cutoff = self.now - dt.timedelta(days=days)
        sql = (
            'SELECT 1 FROM "activity" seg_a WHERE seg_a."party_id" = "party"."id" '
            'AND seg_a."status" = \'done\' AND seg_a."starts_at" >= {} AND seg_a."starts_at" <= {}'
        )
        args: list[Any] = [cutoff, self.now]
        if rule.get("type") is not None:
            sql += ' AND seg_a."type" = {}'
            args.append(self._text(rule["type"], path.rsplit(".", 1)[0] + ".type", ACTIVITY_TYPES))
        return (f"EXISTS ({sql})" if op == "some_within_days" else f"NOT EXISTS ({sql})"), args

    def r_revenue(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        amount = self._number(value, path)
        months = rule.get("months", 12)
        months = self._int(months, path.rsplit(".", 1)[0] + ".months", 1, 120)
        union = revenue.union_sql()
        if union is None:
            raise ValidationFailed.field(
                path.rsplit(".", 1)[0] + ".field", "no enabled plugin supplies revenue"
            )
        start = _month_shift(self.now.date().replace(day=1), -months)
        month = start.strftime("%Y-%m")
        if op in ("lte", "lt"):
            # "less than X" includes the clients with no revenue at all.
            total = (
                f"SELECT SUM(seg_r.amount) FROM ({union}) seg_r "
                'WHERE seg_r.party_id = "party"."id" AND seg_r.month >= {}'
            )
            return f"COALESCE(({total}), 0) {COMPARE[op]} {{}}", [month, self._num(amount)]
        sub = (
            f"SELECT seg_r.party_id FROM ({union}) seg_r WHERE seg_r.month >= {{}} "
            f"GROUP BY seg_r.party_id HAVING SUM(seg_r.amount) {COMPARE[op]} {{}}"
        )
        return f'"party"."id" IN ({sub})', [month, self._num(amount)]

    def r_segment(self, op: str, value: Any, path: str, rule: dict[str, Any]) -> Any:
        ids = self._ints(value, path)
        # Only static segments can be nested (their members are stored); see segment_where.
        self.nested.extend(ids)
        sql = (
            f'"party"."id" {"IN" if op == "in" else "NOT IN"} (SELECT seg_m."party_id" '
            f'FROM "marketing_segment_member" seg_m WHERE seg_m."segment_id" IN ({self._marks(len(ids))}))'
        )
        return sql, list(ids)


def _month_shift(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


async def party_custom_schema() -> dict[str, Any]:
    schema = await effective_schema(service.plugin_manager(), "party")
    return dict(schema.get("properties") or {})


async def compile_rules(rules: Any, path: str = "rules", segment_id: int | None = None) -> WhereRaw:
    """The SQL condition on ``party`` of a rule document; 422 naming the rule's path on any
    unknown field, operator or bad value."""
    if not isinstance(rules, dict) or not any(k in rules for k in ("all", "any", "not")):
        raise ValidationFailed.field(path, 'must be an object {"all": [...]} or {"any": [...]}')
    compiler = _Compiler(await party_custom_schema(), clock.now(), segment_id)
    from tessera_marketing import surveys

    if surveys.uses_surveys(rules):
        compiler.surveys = await surveys.rule_schema()
    sql, args = compiler.node(rules, path, 0)
    if compiler.nested:
        await _check_nested(compiler.nested, segment_id, path)
    # In parentheses: combined with the caller's visibility by AND, an "any" group's OR must
    # not escape it (``visible AND a OR b`` would count b's parties the caller may not read).
    return WhereRaw(f"({sql})", *args)


async def _check_nested(ids: list[int], segment_id: int | None, path: str) -> None:
    from tessera_marketing.tables import Segment

    rows = await Segment.select(Segment.id, Segment.kind).where(Segment.id.is_in(ids))
    kinds = {r["id"]: r["kind"] for r in rows}
    for sid in ids:
        if sid == segment_id:
            raise ValidationFailed.field(path, "a segment cannot contain itself")
        if sid not in kinds:
            raise ValidationFailed.field(path, f"no segment {sid}")
        if kinds[sid] != "static":
            raise ValidationFailed.field(
                path, f"segment {sid} is dynamic: only static segments can be nested"
            )


def members_where(segment_id: int) -> WhereRaw:
    return WhereRaw(
        '"party"."id" IN (SELECT sm."party_id" FROM "marketing_segment_member" sm WHERE '
        'sm."segment_id" = {})',
        segment_id,
    )


async def segment_where(segment: dict[str, Any]) -> WhereRaw:
    """The condition of a saved segment: its frozen members when static, its rules otherwise."""
    if segment["kind"] == "static":
        return members_where(segment["id"])
    rules = segment["rules"]
    if isinstance(rules, str):
        import json

        rules = json.loads(rules)
    return await compile_rules(rules, segment_id=segment["id"])
