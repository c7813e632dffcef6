"""Reports of the knowledge base: which articles and rules are used (views, votes,
recommendations accepted or rejected), which articles are stale or due for review."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera import clock
from tessera.entities import service
from tessera.permissions import Principal

from tessera_knowledge_base import articles
from tessera_knowledge_base.tables import Article, Recommendation


async def _counts(column: Any) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for r in await Recommendation.select(column.as_alias("k"), Recommendation.status):
        c = out.setdefault(r["k"], {"recommended": 0, "accepted": 0, "rejected": 0})
        c["recommended"] += 1
        if r["status"] in ("accepted", "rejected"):
            c[r["status"]] += 1
    return out


async def article_usage(principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """Articles the caller reads, most viewed first, with votes and how often rules
    recommended them and people accepted or rejected that."""
    page = await service.list_page(articles.ARTICLE, principal, [], order="-views", limit=limit)
    rows = await articles.present(principal, page.items)
    recommended: dict[int, dict[str, int]] = {}
    for r in await Recommendation.select(Recommendation.action, Recommendation.status).output(load_json=True):
        article_id = r["action"].get("article_id") if r["action"].get("type") == "article" else None
        if article_id is None:
            continue
        c = recommended.setdefault(article_id, {"recommended": 0, "accepted": 0, "rejected": 0})
        c["recommended"] += 1
        if r["status"] in ("accepted", "rejected"):
            c[r["status"]] += 1
    empty = {"recommended": 0, "accepted": 0, "rejected": 0}
    return [
        {
            "id": r["id"],
            "key": str(r["id"]),
            "title": r["title"],
            "views": r["views"],
            "helpful": r["helpful"],
            "not_helpful": r["not_helpful"],
            **recommended.get(r["id"], empty),
        }
        for r in rows
    ]


async def rule_usage(principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """Rules by the recommendations they gave, most first (``knowledge_base.rules``)."""
    principal.require(articles.RULES)
    counts = await _counts(Recommendation.rule_key)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1]["recommended"], str(kv[0])))[:limit]
    return [
        {"id": None, "key": key, "title": key, "views": 0, "helpful": 0, "not_helpful": 0, **c}
        for key, c in ordered
    ]


async def stale(principal: Principal, months: int = 6) -> list[dict[str, Any]]:
    """Published articles the caller reads that nobody viewed, or nobody updated, in ``months``
    months, or whose review is due."""
    now = clock.now()
    cutoff = now - dt.timedelta(days=30 * months)
    conditions = [
        Article.published_revision.is_not_null(),
        (Article.updated_at <= cutoff)
        | Article.last_viewed_at.is_null()
        | (Article.last_viewed_at <= cutoff)
        | (Article.review_due_at <= now),
    ]
    page = await service.list_page(articles.ARTICLE, principal, conditions, order="updated_at", limit=500)
    out = []
    for r in await articles.present(principal, page.items):
        if r["review_due_at"] is not None and r["review_due_at"] <= now:
            reason = "review_due"
        elif (r["last_viewed_at"] or r["published_at"] or now) <= cutoff:
            reason = "not_viewed"
        elif r["updated_at"] <= cutoff:
            reason = "not_updated"
        else:
            continue
        out.append({**r, "reason": reason})
    return out
