"""Decision trees for staff on a call: a question, its answers, each leading to the next
question or to a recommendation (text, optionally an article). Every saved definition is a new
revision kept in ``knowledge_base_tree_version``; a walk follows the revision it started on.

Walking a tree on a record (a ticket, a deal, a party) stores the path — every question and the
answer given — in ``knowledge_base_tree_run``, keyed by the record's kind and id, shown on the
record's page and on its client's card.

Definition::

    {"start": "power",
     "nodes": {
       "power": {"question": "Does the printer turn on?",
                 "answers": [{"key": "yes", "label": "Yes", "next": "paper"},
                             {"key": "no", "label": "No", "next": "cable"}]},
       "cable": {"recommendation": "Check the power cable", "article_id": 12}}}
"""

from __future__ import annotations

from typing import Any

import jsonschema
from tessera import audit, clock, events
from tessera.entities import service
from tessera.errors import Conflict, FieldError, NotFound, PermissionDenied, ValidationFailed
from tessera.i18n import gettext as _
from tessera.permissions import Principal

from tessera_knowledge_base import records
from tessera_knowledge_base.articles import PUBLIC, READ, RULES, SERVICE
from tessera_knowledge_base.tables import Article, Tree, TreeRun, TreeVersion

TREE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["start", "nodes"],
    "additionalProperties": False,
    "properties": {
        "start": {"type": "string", "minLength": 1, "maxLength": 100},
        "nodes": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 500,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,100}$"},
            "additionalProperties": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["question", "answers"],
                        "additionalProperties": False,
                        "properties": {
                            "question": {"type": "string", "minLength": 1, "maxLength": 1000},
                            "help": {"type": "string", "maxLength": 2000},
                            "answers": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 20,
                                "items": {
                                    "type": "object",
                                    "required": ["key", "label", "next"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "key": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"},
                                        "label": {"type": "string", "minLength": 1, "maxLength": 300},
                                        "next": {"type": "string", "minLength": 1, "maxLength": 100},
                                    },
                                },
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["recommendation"],
                        "additionalProperties": False,
                        "properties": {
                            "recommendation": {"type": "string", "minLength": 1, "maxLength": 2000},
                            "article_id": {"type": "integer", "minimum": 1},
                        },
                    },
                ]
            },
        },
    },
}
_validator = jsonschema.Draft202012Validator(TREE_SCHEMA)
TARGETS = ("ticket", "deal", "party")


async def validate(definition: Any) -> dict[str, Any]:
    """The definition if it is a tree: schema, every ``next`` names a node, the start exists,
    no answer leads back to a question already asked (no loops), articles exist."""
    errors = [
        FieldError(
            "definition" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path),
            e.message,
        )
        for e in _validator.iter_errors(definition)
    ]
    if errors:
        raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", errors[:20])
    nodes = definition["nodes"]
    if definition["start"] not in nodes:
        errors.append(FieldError("definition.start", f"no node {definition['start']!r}"))
    for name, node in nodes.items():
        for i, answer in enumerate(node.get("answers", [])):
            if answer["next"] not in nodes:
                errors.append(
                    FieldError(f"definition.nodes.{name}.answers[{i}].next", f"no node {answer['next']!r}")
                )
    if not errors:

        def visit(name: str, seen: tuple[str, ...]) -> None:
            if name in seen:
                errors.append(
                    FieldError(f"definition.nodes.{name}", "the answers lead back to this question")
                )
                return
            for a in nodes[name].get("answers", []):
                visit(a["next"], (*seen, name))

        visit(definition["start"], ())
    wanted = {n["article_id"] for n in nodes.values() if "article_id" in n}
    if wanted:
        found = {r["id"] for r in await Article.select(Article.id).where(Article.id.is_in(sorted(wanted)))}
        for name, node in nodes.items():
            if node.get("article_id") is not None and node["article_id"] not in found:
                errors.append(FieldError(f"definition.nodes.{name}.article_id", "no such article"))
    if errors:
        raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", errors[:20])
    return definition


async def _prepare(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    values.pop("revision", None)
    if "targets" in values:
        bad = [t for t in values["targets"] or [] if t not in TARGETS]
        if bad:
            raise ValidationFailed.field("targets", f"{bad[0]!r} is not one of {', '.join(TARGETS)}")
    if "definition" in values:
        values["definition"] = await validate(values["definition"])
        if existing is None:
            values["revision"] = 1
        elif values["definition"] != existing["definition"]:
            values["revision"] = existing["revision"] + 1
    return values


async def _after_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    if existing is None or row["revision"] != existing["revision"]:
        await TreeVersion.insert(
            TreeVersion(
                tree_id=row["id"],
                revision=row["revision"],
                definition=row["definition"],
                saved_by=principal.user_id or None,
                saved_at=clock.now(),
            )
        )


TREE = service.EntitySpec(
    name="knowledge_base.tree",
    table=Tree,
    permission="knowledge_base",
    visibility=lambda principal: None,
    order_fields=("id", "name"),
    custom_fields=False,
    prepare=_prepare,
    after_write=_after_write,
    permission_overrides={"read": None, "write": RULES, "delete": RULES},
)


def _require_walker(principal: Principal) -> None:
    if not any(principal.can(p) for p in (READ, SERVICE, PUBLIC)):
        raise PermissionDenied(f"Permission {READ!r} is required", missing_permission=READ)


async def _definition(tree_id: int, revision: int) -> dict[str, Any]:
    row = (
        await TreeVersion.select(TreeVersion.definition)
        .where(TreeVersion.tree_id == tree_id, TreeVersion.revision == revision)
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise NotFound(f"tree {tree_id} has no revision {revision}")
    return row["definition"]


def step_view(definition: dict[str, Any], node_name: str) -> dict[str, Any]:
    """What the person on the call sees at ``node_name``: the question and its answers, or the
    recommendation the walk ended on."""
    node = definition["nodes"][node_name]
    if "question" in node:
        return {
            "node": node_name,
            "question": node["question"],
            "help": node.get("help", ""),
            "answers": [{"key": a["key"], "label": a["label"]} for a in node["answers"]],
        }
    return {"node": node_name, "recommendation": node["recommendation"], "article_id": node.get("article_id")}


async def _run_view(run: dict[str, Any]) -> dict[str, Any]:
    definition = await _definition(run["tree_id"], run["revision"])
    tree = await Tree.select(Tree.name).where(Tree.id == run["tree_id"]).first()
    return {
        **run,
        "tree_name": tree["name"] if tree else "",
        "step": step_view(definition, run["current_node"]),
    }


async def start(principal: Principal, tree_id: int, kind: str, record_id: int) -> dict[str, Any]:
    """Begin walking a tree on a record the caller reads (its current revision)."""
    _require_walker(principal)
    tree = await service.get(TREE, principal, tree_id)
    if not tree["active"]:
        raise Conflict(_("This decision tree is switched off."))
    if tree["targets"] and kind not in tree["targets"]:
        raise ValidationFailed.field("kind", f"this tree is walked on: {', '.join(tree['targets'])}")
    record = await records.load(principal, kind, record_id)
    definition = await _definition(tree_id, tree["revision"])
    now = clock.now()
    node = definition["start"]
    leaf = "recommendation" in definition["nodes"][node]
    async with events.unit_of_work():
        rows = await TreeRun.insert(
            TreeRun(
                tree_id=tree_id,
                revision=tree["revision"],
                kind=kind,
                record_id=record_id,
                party_id=records.party_of(kind, record),
                path=[],
                current_node=node,
                outcome=step_view(definition, node) if leaf else {},
                status="done" if leaf else "in_progress",
                started_by=principal.user_id or None,
                created_at=now,
                updated_at=now,
            )
        ).returning(*TreeRun._meta.columns)
        run = _loaded(rows[0])
        await audit.record(
            "create",
            "knowledge_base.tree_run",
            run["id"],
            {"tree_id": [None, tree_id], "record": [None, f"{kind}:{record_id}"]},
        )
    return await _run_view(run)


def _loaded(row: dict[str, Any]) -> dict[str, Any]:
    import json

    for key in ("path", "outcome"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


async def get_run(principal: Principal, run_id: int) -> dict[str, Any]:
    """A walk, when the caller reads its record."""
    row = await TreeRun.select().where(TreeRun.id == run_id).first().output(load_json=True)
    if row is None:
        raise NotFound(f"knowledge_base.tree_run {run_id} not found")
    try:
        await records.load(principal, row["kind"], row["record_id"])
    except ValidationFailed as exc:
        raise NotFound(f"knowledge_base.tree_run {run_id} not found") from exc
    return row


async def answer(principal: Principal, run_id: int, answer_key: str) -> dict[str, Any]:
    """Give the answer to the current question: the walk moves on and the path grows."""
    _require_walker(principal)
    run = await get_run(principal, run_id)
    if run["status"] != "in_progress":
        raise Conflict(_("This walk is finished; start the tree again."))
    definition = await _definition(run["tree_id"], run["revision"])
    node = definition["nodes"][run["current_node"]]
    chosen = next((a for a in node.get("answers", []) if a["key"] == answer_key), None)
    if chosen is None:
        keys = ", ".join(a["key"] for a in node.get("answers", []))
        raise ValidationFailed.field("answer", f"must be one of {keys}")
    path = [
        *run["path"],
        {
            "node": run["current_node"],
            "question": node["question"],
            "answer": chosen["key"],
            "label": chosen["label"],
        },
    ]
    nxt = chosen["next"]
    leaf = "recommendation" in definition["nodes"][nxt]
    changes = {
        TreeRun.path: path,
        TreeRun.current_node: nxt,
        TreeRun.status: "done" if leaf else "in_progress",
        TreeRun.outcome: step_view(definition, nxt) if leaf else {},
        TreeRun.updated_at: clock.now(),
        TreeRun.version: run["version"] + 1,
    }
    async with events.unit_of_work():
        updated = (
            await TreeRun.update(changes)
            .where(TreeRun.id == run_id, TreeRun.version == run["version"])
            .returning(*TreeRun._meta.columns)
        )
        if not updated:
            raise Conflict(_("Someone else answered on this walk meanwhile; reload it."))
        await audit.record(
            "update",
            "knowledge_base.tree_run",
            run_id,
            {"path": [len(run["path"]), len(path)], "answer": [None, chosen["key"]]},
        )
    return await _run_view(_loaded(updated[0]))


async def runs_on(principal: Principal, kind: str, record_id: int) -> list[dict[str, Any]]:
    """The walks on a record the caller reads, newest first."""
    await records.load(principal, kind, record_id)
    rows = (
        await TreeRun.select()
        .where(TreeRun.kind == kind, TreeRun.record_id == record_id)
        .order_by(TreeRun.id, ascending=False)
        .limit(50)
        .output(load_json=True)
    )
    return [await _run_view(r) for r in rows]
