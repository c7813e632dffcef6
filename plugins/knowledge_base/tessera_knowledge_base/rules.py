"""The expert system: rule sets written as data, validated when saved, evaluated on a record
with an explanation for every recommendation (which rule fired, which facts matched).

A rule set targets one kind of record (party, deal, ticket) and holds a list of rules::

    {"key": "class_a_no_meeting", "name": "...", "priority": 50,
     "when": {"all": [{"fact": "party.custom.abc_class", "op": "eq", "value": "A"},
                      {"fact": "history.last_meeting", "op": "older_than_days", "value": 60}]},
     "then": [{"type": "product", "product": "SUPPORT-PLUS"},
              {"type": "next_step", "text": "Arrange a meeting"}]}

Facts of a record of kind K: ``K.<column>`` and ``K.custom.<field>`` (its custom fields),
``party.<column>`` and ``party.custom.<field>`` of its party (the client's ABC class is
``party.custom.abc_class`` when the marketing plugin provides it), ``history.last_<type>`` (when
the last done activity of that type — call, meeting, e-mail ... — took place with the client,
None when never), ``history.open_tasks`` and ``history.open_deals``/``history.open_tickets``
where those plugins are enabled, and the facts other plugins offer through the knowledge base's
hooks ``tessera_advice_fact_names``/``tessera_advice_facts`` (``hookspecs.py``: survey answers
from marketing, ``survey.<survey>.<question>``). A rule naming a fact the kind does not offer is
refused when it is saved (422 naming the rule's path), never found out when evaluated.

Speed: the active rule sets of a kind are compiled once (closures, sorted by priority) and kept
per process; a one-line query of their ids and versions tells whether they are still current
(a save in any process bumps the version), and a save in this process drops them at once. The
facts of a record take a few queries whatever the number of rules: the record, its party, the
last activity of each type, the open tasks/deals/tickets in one statement, and one call of the
other plugins' fact hook.

Conflicts: rules are applied from the highest ``priority`` down (ties: the set's priority, then
the order in the set). Each action fills a slot — ``priority`` and ``next_step`` hold one value
per record, an article, a product and a task one per article id, product and title — and the
first rule to fill a slot wins; the others are reported as ``overridden`` with the rule that won.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jsonschema
import pluggy
from piccolo.query.functions.aggregate import Max
from tessera import audit, clock, customfields, db, events
from tessera.entities import service, tasks
from tessera.entities.tables import Activity, Party, Task
from tessera.errors import FieldError, NotFound, PermissionDenied, ValidationFailed
from tessera.permissions import Principal
from tessera.plugins import await_me_maybe

from tessera_knowledge_base import hookspecs, records
from tessera_knowledge_base.tables import Article, Recommendation, RuleSet

log = logging.getLogger("tessera_knowledge_base")

TARGETS = ("party", "deal", "ticket")
ACTIVITY_TYPES = ("call", "meeting", "email", "letter", "seminar", "mailing", "claim", "note")
OPS = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists", "missing",
    "older_than_days", "within_days",
)  # fmt: skip
ACTION_TYPES = ("article", "next_step", "product", "priority", "task")
#: Action types with one value per record (the highest-priority rule's).
SINGLE = ("priority", "next_step")

_leaf = {
    "type": "object",
    "required": ["fact", "op"],
    "additionalProperties": False,
    "properties": {
        "fact": {"type": "string", "minLength": 1, "maxLength": 200},
        "op": {"enum": list(OPS)},
        "value": {},
    },
}
RULES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 2000,
    "items": {
        "type": "object",
        "required": ["key", "when", "then"],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"},
            "name": {"type": "string", "maxLength": 300},
            "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
            "when": {"$ref": "#/$defs/condition"},
            "then": {"type": "array", "minItems": 1, "maxItems": 20, "items": {"$ref": "#/$defs/action"}},
        },
    },
    "$defs": {
        "condition": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["all"],
                    "additionalProperties": False,
                    "properties": {
                        "all": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
                    },
                },
                {
                    "type": "object",
                    "required": ["any"],
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
                    },
                },
                {
                    "type": "object",
                    "required": ["not"],
                    "additionalProperties": False,
                    "properties": {"not": {"$ref": "#/$defs/condition"}},
                },
                _leaf,
            ]
        },
        "action": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["type", "article_id"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"const": "article"},
                        "article_id": {"type": "integer", "minimum": 1},
                    },
                },
                {
                    "type": "object",
                    "required": ["type", "text"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"const": "next_step"},
                        "text": {"type": "string", "minLength": 1, "maxLength": 500},
                    },
                },
                {
                    "type": "object",
                    "required": ["type", "product"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"const": "product"},
                        "product": {"type": "string", "minLength": 1, "maxLength": 200},
                        "text": {"type": "string", "maxLength": 500},
                    },
                },
                {
                    "type": "object",
                    "required": ["type", "value"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"const": "priority"},
                        "value": {"enum": ["p1", "p2", "p3", "p4"]},
                    },
                },
                {
                    "type": "object",
                    "required": ["type", "title"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"const": "task"},
                        "title": {"type": "string", "minLength": 1, "maxLength": 500},
                        "due_days": {"type": "integer", "minimum": 0, "maximum": 365},
                    },
                },
            ]
        },
    },
}
_validator = jsonschema.Draft202012Validator(RULES_SCHEMA)


def _path(parts: Any) -> str:
    out = "rules"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


# --------------------------------------------------------------------------- facts


def _columns(spec: service.EntitySpec) -> list[str]:
    return [c._meta.name for c in spec.table._meta.columns if c._meta.name not in spec.hidden]


async def known_facts(kind: str) -> dict[str, str]:
    """Every fact a rule on ``kind`` may name, with what it is."""
    spec = records.spec_of(kind, "target")
    pm = service.plugin_manager()
    out: dict[str, str] = {}
    for prefix, entity_spec, entity in ((kind, spec, spec.name), ("party", records.PARTY, "party")):
        for name in _columns(entity_spec):
            if name != "custom":
                out[f"{prefix}.{name}"] = "column"
        try:
            schema = await customfields.effective_schema(pm, entity)
        except ValidationFailed:
            schema = {}
        for name in (schema.get("properties") or {}) if entity_spec.custom_fields else ():
            out[f"{prefix}.custom.{name}"] = "custom field"
    for t in ACTIVITY_TYPES:
        out[f"history.last_{t}"] = "time of the last done activity of this type with the client"
    out["history.open_tasks"] = "open tasks on the client"
    for other in ("deal", "ticket"):
        if records.enabled(other):
            out[f"history.open_{other}s"] = f"open {other}s of the client"
    for plugin, answer in _call(plugin_manager(), "tessera_advice_fact_names", kind=kind):
        try:
            names = await await_me_maybe(answer)
        except Exception:
            log.exception("plugin %s failed in tessera_advice_fact_names", plugin)
            continue
        if not isinstance(names, dict):
            log.error("plugin %s: tessera_advice_fact_names returned %r, not a dict", plugin, type(names))
            continue
        for name, description in names.items():
            if isinstance(name, str) and name and len(name) <= 200:
                out.setdefault(name, str(description))
    return out


def plugin_manager() -> pluggy.PluginManager:
    """The kernel's plugin manager with the knowledge base's hook specs added (once)."""
    pm = service.plugin_manager()
    caller = getattr(pm.hook, "tessera_advice_facts", None)
    if caller is None or caller.spec is None:
        pm.add_hookspecs(hookspecs)
    return pm


def _call(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """``(plugin, result)`` of every implementation; one that raises is logged and left out
    (advice without its facts beats no advice: its rules then do not match)."""
    out: list[tuple[str, Any]] = []
    caller = getattr(pm.hook, hook_name, None)
    for impl in reversed(caller.get_hookimpls() if caller is not None else []):
        try:
            out.append((impl.plugin_name, impl.function(*[kwargs[arg] for arg in impl.argnames])))
        except Exception:
            log.exception("plugin %s failed in %s", impl.plugin_name, hook_name)
    return out


def _leaves(condition: dict[str, Any], path: list[Any]) -> list[tuple[dict[str, Any], list[Any]]]:
    for key in ("all", "any"):
        if key in condition:
            return [x for i, c in enumerate(condition[key]) for x in _leaves(c, [*path, key, i])]
    if "not" in condition:
        return _leaves(condition["not"], [*path, "not"])
    return [(condition, path)]


async def validate(target: str, rules: Any) -> list[dict[str, Any]]:
    """The rules if they are well-formed and name only facts ``target`` offers and articles that
    exist; 422 naming every offending place (``rules[0].when.all[1].fact``) otherwise."""
    errors = [
        FieldError(_path(e.absolute_path), e.message)
        for e in sorted(_validator.iter_errors(rules), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if errors:
        raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", errors[:20])
    known = await known_facts(target)
    keys: set[str] = set()
    articles: set[int] = set()
    for i, rule in enumerate(rules):
        if rule["key"] in keys:
            errors.append(FieldError(f"rules[{i}].key", f"the key {rule['key']!r} is used twice"))
        keys.add(rule["key"])
        for leaf, path in _leaves(rule["when"], [i, "when"]):
            if leaf["fact"] not in known:
                errors.append(
                    FieldError(_path([*path, "fact"]), f"unknown field {leaf['fact']!r} for {target} rules")
                )
            elif leaf["op"] not in ("exists", "missing") and "value" not in leaf:
                errors.append(FieldError(_path(path), f"the operator {leaf['op']!r} needs a value"))
            elif leaf["op"] in ("older_than_days", "within_days") and not isinstance(leaf.get("value"), int):
                errors.append(FieldError(_path([*path, "value"]), "must be a whole number of days"))
        articles.update(a["article_id"] for a in rule["then"] if a["type"] == "article")
    if articles:
        found = {r["id"] for r in await Article.select(Article.id).where(Article.id.is_in(sorted(articles)))}
        for i, rule in enumerate(rules):
            for j, action in enumerate(rule["then"]):
                if action["type"] == "article" and action["article_id"] not in found:
                    errors.append(FieldError(f"rules[{i}].then[{j}].article_id", "no such article"))
    if errors:
        raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", errors[:20])
    return rules


async def facts_of(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """The facts of a record the caller read: its fields, its party's, the client's history and
    what other plugins know of it (their ``tessera_advice_facts``), in a few queries."""
    facts: dict[str, Any] = {}

    def add(prefix: str, row: dict[str, Any]) -> None:
        for name, value in row.items():
            if name == "custom":
                for field, v in (value or {}).items():
                    facts[f"{prefix}.custom.{field}"] = _number(v)
            else:
                facts[f"{prefix}.{name}"] = _number(value)

    pm = plugin_manager()
    if kind == "party":
        # The party's read-only custom fields (the marketing plugin's ABC class) as facts too.
        record = (await customfields.with_plugin_values(pm, "party", [dict(record)]))[0]
    add(kind, record)
    party_id = records.party_of(kind, record)
    for t in ACTIVITY_TYPES:
        facts[f"history.last_{t}"] = None
    if party_id is not None:
        if kind != "party":
            party = await Party.select().where(Party.id == party_id).first().output(load_json=True)
            if party:
                add("party", (await customfields.with_plugin_values(pm, "party", [party]))[0])
        last = (
            await Activity.select(Activity.type, Max(Activity.starts_at).as_alias("at"))
            .where(Activity.party_id == party_id, Activity.status == "done")
            .group_by(Activity.type)
        )
        for row in last:
            facts[f"history.last_{row['type']}"] = _when(row["at"])
        facts.update(await _open_counts(party_id))
    for plugin, value in _call(pm, "tessera_advice_facts", kind=kind,
                               record={**record, "party_id": party_id}):  # fmt: skip
        try:
            got = await await_me_maybe(value)
        except Exception:
            log.exception("plugin %s failed in tessera_advice_facts", plugin)
            continue
        for name, v in (got or {}).items() if isinstance(got, dict) else ():
            facts.setdefault(name, _number(v))
    return facts


#: history fact -> (kind whose plugin must be enabled, None: the kernel), the open statuses
_OPEN = {
    "history.open_tasks": (None, ("open", "in_progress")),
    "history.open_deals": ("deal", ("open",)),
    "history.open_tickets": ("ticket", ("new", "in_progress", "waiting")),
}


async def _open_counts(party_id: int) -> dict[str, int]:
    """The client's open tasks, deals and tickets (where those plugins are enabled) in one
    statement of scalar sub-selects (table names are the code's, values are bound)."""
    parts: list[str] = []
    args: list[Any] = []
    names: list[str] = []
    for fact, (other, statuses) in _OPEN.items():
        if other is None:
            table = Task._meta.tablename
        elif records.enabled(other):
            table = records.spec_of(other).table._meta.tablename
        else:
            continue
        marks = ", ".join("{}" for _ in statuses)
        parts.append(f"(SELECT COUNT(*) FROM {table} WHERE party_id = {{}} AND status IN ({marks}))")
        args.extend([party_id, *statuses])
        names.append(fact)
    sql = "SELECT " + ", ".join(f"{p} AS c{i}" for i, p in enumerate(parts))
    row = (await Task.raw(sql, *args))[0]
    return {name: int(row[f"c{i}"] or 0) for i, name in enumerate(names)}


# --------------------------------------------------------------------------- evaluation


def _number(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def _when(actual: Any) -> dt.datetime | None:
    if actual is None or isinstance(actual, dt.datetime):
        return actual
    return dt.datetime.fromisoformat(str(actual))


def _predicate(op: str, value: Any) -> Callable[[Any, dt.datetime], bool]:
    """The test of one operator against a constant, built once per rule (the hot path is a
    plain call per fact)."""
    if op == "exists":
        return lambda a, now: a not in (None, "", [], {})
    if op == "missing":
        return lambda a, now: a in (None, "", [], {})
    if op == "eq":
        return lambda a, now: a == value
    if op == "ne":
        return lambda a, now: a != value
    if op in ("in", "not_in"):
        try:
            members: Any = frozenset(value or [])
        except TypeError:
            members = list(value or [])
        if op == "in":
            return lambda a, now: a in members
        return lambda a, now: a not in members
    if op == "contains":
        return lambda a, now: a is not None and value in a
    if op in ("older_than_days", "within_days"):
        delta = dt.timedelta(days=value)
        if op == "older_than_days":  # never counts as older than any number of days
            return lambda a, now: a is None or _when(a) <= now - delta
        return lambda a, now: a is not None and _when(a) > now - delta
    compare = {
        "gt": lambda a: a > value,
        "gte": lambda a: a >= value,
        "lt": lambda a: a < value,
        "lte": lambda a: a <= value,
    }[op]
    return lambda a, now: a is not None and compare(a)


def _test(op: str, actual: Any, value: Any, now: dt.datetime) -> bool:
    """One condition on one fact (the predicate built on the spot)."""
    try:
        return _predicate(op, value)(_number(actual), now)
    except (TypeError, ValueError):
        return False


#: A matched leaf: (fact, op, value, actual, the leaf's text without the actual value).
Match = tuple[str, str, Any, Any, str]
Matched = list[Match]
Compiled = Callable[[dict[str, Any], dt.datetime], "Matched | None"]


def _leaf_text(fact: str, op: str, value: Any) -> str:
    return f"{fact} {op} {value if value is not None else ''}".strip()


def _compile(condition: dict[str, Any]) -> Compiled:
    """A condition as a function of the facts: the matched facts when it holds, else None."""
    if "all" in condition:
        parts = [_compile(c) for c in condition["all"]]
        if len(parts) == 1:
            return parts[0]

        def all_(facts: dict[str, Any], now: dt.datetime) -> Matched | None:
            out: Matched = []
            for p in parts:
                got = p(facts, now)
                if got is None:
                    return None
                out += got
            return out

        return all_
    if "any" in condition:
        parts = [_compile(c) for c in condition["any"]]

        def any_(facts: dict[str, Any], now: dt.datetime) -> Matched | None:
            for p in parts:
                got = p(facts, now)
                if got is not None:
                    return got
            return None

        return any_
    if "not" in condition:
        inner = condition["not"]
        part = _compile(inner)
        leaves = [
            (
                x["fact"],
                "not " + x["op"],
                x.get("value"),
                _leaf_text(x["fact"], "not " + x["op"], x.get("value")),
            )
            for x, _ in _leaves(inner, [])
        ]

        def not_(facts: dict[str, Any], now: dt.datetime) -> Matched | None:
            if part(facts, now) is not None:
                return None
            return [(f, op, v, facts.get(f), text) for f, op, v, text in leaves]

        return not_
    fact, op, value = condition["fact"], condition["op"], condition.get("value")
    test = _predicate(op, value)
    text = _leaf_text(fact, op, value)

    def leaf(facts: dict[str, Any], now: dt.datetime) -> Matched | None:
        actual = facts.get(fact)
        try:
            if not test(actual, now):
                return None
        except (TypeError, ValueError):
            return None
        return [(fact, op, value, actual, text)]

    return leaf


@dataclass
class _Rule:
    set_id: int
    set_name: str
    set_priority: int
    index: int
    key: str
    name: str
    priority: int
    when: Compiled
    then: list[dict[str, Any]]
    #: The actions' conflict slots, worked out once.
    slots: list[tuple[Any, ...]]

    @property
    def order(self) -> tuple[int, int, int, int]:
        """Conflicts: the highest rule priority first, then the set's, then the set, the order."""
        return (-self.priority, -self.set_priority, self.set_id, self.index)


def compile_set(row: dict[str, Any]) -> list[_Rule]:
    """The set's rules ready to run."""
    return [
        _Rule(
            set_id=row["id"],
            set_name=row["name"],
            set_priority=row["priority"],
            index=i,
            key=r["key"],
            name=r.get("name") or r["key"],
            priority=int(r.get("priority", 0)),
            when=_compile(r["when"]),
            then=r["then"],
            slots=[_slot(a) for a in r["then"]],
        )
        for i, r in enumerate(row["rules"])
    ]


def compile_sets(rule_sets: list[dict[str, Any]]) -> list[_Rule]:
    """Every rule of the sets, compiled, in the order conflicts are resolved."""
    return sorted((rule for row in rule_sets for rule in compile_set(row)), key=lambda r: r.order)


def _slot(action: dict[str, Any]) -> tuple[Any, ...]:
    kind = action["type"]
    if kind in SINGLE:
        return (kind,)
    return (kind, action.get("article_id") or action.get("product") or action.get("title"))


def _fact_out(m: Match) -> dict[str, Any]:
    fact, op, value, actual, text = m
    shown = actual.date().isoformat() if isinstance(actual, dt.datetime) else actual
    if shown is None and op.endswith("older_than_days"):
        shown = "never"
    return {"fact": fact, "op": op, "value": value, "actual": actual, "text": f"{text} (is {shown})"}


def evaluate(
    rule_sets: list[dict[str, Any]] | list[_Rule], facts: dict[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """Fire the rules on the facts: recommendations (each with its rule and matched facts) and
    the actions overridden by a rule of higher priority. ``rule_sets``: rule set rows, or
    rules already compiled and ordered (``compile_sets``, ``active_rules``)."""
    compiled: list[_Rule] = (
        rule_sets if not rule_sets or isinstance(rule_sets[0], _Rule) else compile_sets(rule_sets)  # type: ignore[arg-type]
    )
    taken: dict[tuple[Any, ...], _Rule] = {}
    recommendations: list[dict[str, Any]] = []
    overridden: list[dict[str, Any]] = []
    for rule in compiled:  # already in conflict order: the first rule to fill a slot wins
        matched = rule.when(facts, now)
        if matched is None:
            continue
        why = {
            "rule_set_id": rule.set_id,
            "rule_set": rule.set_name,
            "rule_key": rule.key,
            "rule": rule.name,
            "priority": rule.priority,
            "facts": [_fact_out(m) for m in matched],
        }
        for action, slot in zip(rule.then, rule.slots, strict=True):
            winner = taken.get(slot)
            if winner is not None:
                overridden.append({"action": action, "explanation": why, "overridden_by": winner.key})
                continue
            taken[slot] = rule
            recommendations.append({"action": action, "explanation": why})
    return {"recommendations": recommendations, "overridden": overridden}


async def active_sets(target: str) -> list[dict[str, Any]]:
    return list(
        await RuleSet.select()
        .where(RuleSet.target == target, RuleSet.active == True)  # noqa: E712
        .order_by(RuleSet.id)
        .output(load_json=True)
    )


#: target -> (ids and versions of the active sets, their rules compiled and ordered), of the
#: database ``_active_engine`` (one process may serve several: tests, tools; the engine itself
#: is held, not its id, which a later engine could reuse).
_active: dict[str, tuple[tuple[tuple[int, int], ...], list[_Rule]]] = {}
_active_engine: list[object] = [None]


def forget_compiled() -> None:
    """Drop the compiled rules: a rule set was saved in this process."""
    _active.clear()


async def active_rules(target: str) -> list[_Rule]:
    """The active rules on records of ``target``, compiled once and kept while the sets' ids
    and versions stay the same (one small query to check; a save anywhere bumps a version)."""
    engine = db.get_engine()
    if _active_engine[0] is not engine:
        _active.clear()
        _active_engine[0] = engine
    stamp = tuple(
        (r["id"], r["version"])
        for r in await RuleSet.select(RuleSet.id, RuleSet.version)
        .where(RuleSet.target == target, RuleSet.active == True)  # noqa: E712
        .order_by(RuleSet.id)
    )
    hit = _active.get(target)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    compiled: list[_Rule] = []
    if stamp:
        rows = await active_sets(target)
        stamp = tuple((r["id"], r["version"]) for r in rows)
        compiled = compile_sets(rows)
    _active[target] = (stamp, compiled)
    return compiled


async def advise(
    principal: Principal,
    kind: str,
    record_id: int,
    *,
    rule_set: dict[str, Any] | None = None,
    store: bool = True,
) -> dict[str, Any]:
    """Recommendations for a record the caller reads, each with its explanation. Stored (one
    pending recommendation per rule and action on the record) so that the person can accept or
    reject each; ``rule_set`` (not stored: the rule editor's "test on this record") evaluates a
    set being edited instead of the active ones."""
    record = await records.load(principal, kind, record_id)
    facts = await facts_of(kind, record)
    compiled = compile_sets([rule_set]) if rule_set is not None else await active_rules(kind)
    result = evaluate(compiled, facts, clock.now())
    if store and result["recommendations"]:
        async with events.unit_of_work():
            for rec in result["recommendations"]:
                rec["id"] = await _stored(principal, kind, record_id, rec)
            await audit.record(
                "advise",
                "knowledge_base.recommendation",
                None,
                detail=f"{kind} {record_id}: {len(result['recommendations'])} recommendation(s)",
            )
    for rec in result["recommendations"]:
        rec.setdefault("id", None)
        rec.setdefault("status", "pending")
    await describe_articles(principal, result["recommendations"])
    return {"kind": kind, "record_id": record_id, **result}


async def _stored(principal: Principal, kind: str, record_id: int, rec: dict[str, Any]) -> int:
    why = rec["explanation"]
    existing = (
        await Recommendation.select(Recommendation.id, Recommendation.action, Recommendation.status)
        .where(
            Recommendation.kind == kind,
            Recommendation.record_id == record_id,
            Recommendation.rule_key == why["rule_key"],
            Recommendation.status == "pending",
        )
        .output(load_json=True)
    )
    for row in existing:
        if row["action"] == rec["action"]:
            await Recommendation.update({Recommendation.explanation: _jsonable(why)}).where(
                Recommendation.id == row["id"]
            )
            return int(row["id"])
    rows = await Recommendation.insert(
        Recommendation(
            rule_set_id=why["rule_set_id"],
            rule_key=why["rule_key"],
            kind=kind,
            record_id=record_id,
            action=rec["action"],
            explanation=_jsonable(why),
            status="pending",
            created_by=principal.user_id or None,
            created_at=clock.now(),
        )
    ).returning(Recommendation.id)
    return int(rows[0]["id"])


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


async def describe_articles(principal: Principal, recs: list[dict[str, Any]]) -> None:
    """Give article recommendations the article's title when the caller may read it."""
    from tessera_knowledge_base import articles

    ids = [r["action"]["article_id"] for r in recs if r["action"]["type"] == "article"]
    if not ids:
        return
    visible = await service.visible_ids(articles.ARTICLE, principal, ids)
    rows = {
        r["id"]: r
        for r in await Article.select(Article.id, Article.title, Article.published_title).where(
            Article.id.is_in(sorted(visible) or [-1])
        )
    }
    for r in recs:
        if r["action"]["type"] == "article":
            row = rows.get(r["action"]["article_id"])
            title = (
                (row["title"] if articles.is_editor(principal) else row["published_title"]) if row else None
            )
            r["article_title"] = title
            r["article_visible"] = row is not None


async def feedback(
    principal: Principal, recommendation_id: int, accepted: bool, comment: str = ""
) -> dict[str, Any]:
    """The person's answer to a recommendation on a record they read: accepted or rejected.
    Accepting a ``task`` recommendation creates that task (``_task_for``) in the same
    transaction, once: answering again never creates a second one."""
    row = (
        await Recommendation.select()
        .where(Recommendation.id == recommendation_id)
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise NotFound(f"knowledge_base.recommendation {recommendation_id} not found")
    try:
        record = await records.load(principal, row["kind"], row["record_id"])
    except ValidationFailed as exc:
        raise NotFound(f"knowledge_base.recommendation {recommendation_id} not found") from exc
    status = "accepted" if accepted else "rejected"
    now = clock.now()
    wants_task = accepted and row["action"].get("type") == "task" and row.get("task_id") is None
    task_values = await _task_for(principal, row, record) if wants_task else None
    async with events.unit_of_work():
        changes: dict[str, list[Any]] = {"status": [row["status"], status]}
        if task_values is not None:
            task = await service.create(tasks.TASK, principal, task_values)
            row["task_id"] = task["id"]
            changes["task_id"] = [None, task["id"]]
        await Recommendation.update(
            {
                Recommendation.status: status,
                Recommendation.comment: comment[:5000],
                Recommendation.decided_by: principal.user_id or None,
                Recommendation.decided_at: now,
                Recommendation.task_id: row.get("task_id"),
            }
        ).where(Recommendation.id == recommendation_id)
        await audit.record("update", "knowledge_base.recommendation", recommendation_id, changes)
    row.update(status=status, comment=comment[:5000], decided_by=principal.user_id or None, decided_at=now)
    return row


#: kind -> the record's column naming who is responsible for it
RESPONSIBLE = {"party": "owner_id", "deal": "owner_id", "ticket": "assignee_id"}


async def _task_for(principal: Principal, rec: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The kernel task an accepted task recommendation becomes: given to whoever is responsible
    for the record (the client's or the deal's owner, the ticket's assignee; the person who
    accepted when nobody is, or the responsible person is no longer active), on the record's
    client when the person who accepted may change that client (the task then shows on the
    client card), its source naming the record (``knowledge_base:ticket:12``), its description
    the rule's explanation, its deadline ``due_days`` from now."""
    from tessera.entities.parties import PARTY
    from tessera.entities.tables import CrmUser

    action, why = rec["action"], rec["explanation"]
    kind, record_id = rec["kind"], rec["record_id"]
    assignee = record.get(RESPONSIBLE[kind])
    if assignee is None or not await CrmUser.exists().where(
        CrmUser.id == assignee,
        CrmUser.is_active == True,  # noqa: E712
    ):
        assignee = principal.user_id or None
    party_id = records.party_of(kind, record)
    if party_id is not None:
        try:
            await service.require_writable(PARTY, principal, party_id, "party_id")
        except (ValidationFailed, NotFound, PermissionDenied):
            party_id = None
    facts = "; ".join(f.get("text", "") for f in why.get("facts") or [])
    label = {"party": "client", "deal": "deal", "ticket": "ticket"}[kind]
    values: dict[str, Any] = {
        "title": action["title"],
        "description": f"{why.get('rule', why.get('rule_key', ''))} ({label} {record_id}): {facts}"[:5000],
        "assignee_id": assignee,
        "party_id": party_id,
        "source": f"knowledge_base:{kind}:{record_id}",
    }
    if action.get("due_days") is not None:
        values["deadline"] = clock.now() + dt.timedelta(days=int(action["due_days"]))
    return values
