"""Categories and rule sets: their entity specs (the kernel's audit, events, locking and
versioning), and what the category tree and rule sets need besides (no HTTP)."""

from __future__ import annotations

from typing import Any

from tessera.entities import service
from tessera.errors import ValidationFailed
from tessera.permissions import Principal

from tessera_knowledge_base import rules
from tessera_knowledge_base.articles import RULES, WRITE
from tessera_knowledge_base.tables import Article, Category, RuleSet


async def _prepare_category(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    parent = values.get("parent_id")
    if parent is not None:
        if existing is not None and parent == existing["id"]:
            raise ValidationFailed.field("parent_id", "a category cannot be its own parent")
        seen = set()
        while parent is not None:
            row = await Category.select(Category.id, Category.parent_id).where(Category.id == parent).first()
            if row is None:
                raise ValidationFailed.field("parent_id", f"no category {values['parent_id']}")
            if (existing is not None and row["id"] == existing["id"]) or row["id"] in seen:
                raise ValidationFailed.field("parent_id", "a category cannot be inside its own subtree")
            seen.add(row["id"])
            parent = row["parent_id"]
    return values


async def _before_category_delete(principal: Principal, row: dict[str, Any]) -> None:
    if await Category.exists().where(Category.parent_id == row["id"]):
        raise ValidationFailed.field("id", "the category has subcategories; move or delete them first")
    if await Article.exists().where(Article.category_id == row["id"]):
        raise ValidationFailed.field("id", "the category holds articles; move them first")


CATEGORY = service.EntitySpec(
    name="knowledge_base.category",
    table=Category,
    permission="knowledge_base",
    visibility=lambda principal: None,
    order_fields=("id", "name", "position"),
    custom_fields=False,
    prepare=_prepare_category,
    before_delete=_before_category_delete,
    permission_overrides={"read": None, "write": WRITE, "delete": WRITE},
)


async def _prepare_rule_set(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    target = values.get("target", existing["target"] if existing else None)
    if target not in rules.TARGETS:
        raise ValidationFailed.field("target", f"must be one of {', '.join(rules.TARGETS)}")
    if (
        existing is not None
        and "target" in values
        and values["target"] != existing["target"]
        and "rules" not in values
    ):
        values["rules"] = existing["rules"]
    if "rules" in values:
        values["rules"] = await rules.validate(target, values["rules"])
    return values


async def _after_rule_set_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> list[Any]:
    """A saved set is compiled afresh on the next evaluation (other processes see its new
    version: ``rules.active_rules``)."""
    rules.forget_compiled()
    return []


async def _before_rule_set_delete(principal: Principal, row: dict[str, Any]) -> None:
    rules.forget_compiled()


RULE_SET = service.EntitySpec(
    name="knowledge_base.rule_set",
    table=RuleSet,
    permission="knowledge_base",
    visibility=lambda principal: None,
    order_fields=("id", "name", "priority"),
    custom_fields=False,
    prepare=_prepare_rule_set,
    after_write=_after_rule_set_write,
    before_delete=_before_rule_set_delete,
    permission_overrides={"read": RULES, "write": RULES, "delete": RULES},
)


async def category_tree() -> list[dict[str, Any]]:
    """Every category as a tree (``children``), ordered by position and name, with the number
    of articles in each (not counting hidden ones: the count is of all articles, shown to
    editors; readers get the tree without counts)."""
    rows = list(await Category.select().order_by(Category.position).order_by(Category.name))
    by_parent: dict[int | None, list[dict[str, Any]]] = {}
    for r in rows:
        r["children"] = []
        by_parent.setdefault(r["parent_id"], []).append(r)
    for r in rows:
        r["children"] = by_parent.get(r["id"], [])
    known = {r["id"] for r in rows}
    return [r for r in rows if r["parent_id"] is None or r["parent_id"] not in known]
