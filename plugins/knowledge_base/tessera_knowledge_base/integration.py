"""What the knowledge base contributes to the kernel's and other plugins' views: search types
and documents (articles by audience, drafts for editors), guides and decision-tree walks on a
deal's or a ticket's page (``tessera_record_widgets``), walks on the client card's timeline,
"review due" when a ticket that used an article is reopened."""

from __future__ import annotations

from typing import Any

from tessera import clock
from tessera.errors import DomainError
from tessera.i18n import N_
from tessera.i18n import gettext as _

from tessera_knowledge_base import articles, markdown, records
from tessera_knowledge_base.tables import Article, Recommendation, Tree, TreeRun

ENTITY = "knowledge_base.article"
#: search type -> the published audience it holds (``kb_draft``: working copies, for editors)
SEARCH_TYPES = {"kb_public": "public", "kb_internal": "internal", "kb_service": "service"}
DRAFT_TYPE = "kb_draft"


def search_types() -> list[Any]:
    from tessera.search.documents import SearchType

    labels = {
        "kb_public": N_("Knowledge base: public articles"),
        "kb_internal": N_("Knowledge base: staff articles"),
        "kb_service": N_("Knowledge base: service articles"),
    }
    out = [
        SearchType(
            name,
            labels[name],
            permission=articles.search_permissions(audience),
            entity=ENTITY,
            table=Article,
        )
        for name, audience in SEARCH_TYPES.items()
    ]
    out.append(
        SearchType(
            DRAFT_TYPE,
            N_("Knowledge base: drafts"),
            permission=(articles.WRITE, articles.PUBLISH),
            entity=ENTITY,
            table=Article,
        )
    )
    return out


def search_documents(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The published text under its audience's type (readers of that audience see it, whatever
    their record scope: ``everyone``), and the working copy as a draft document for editors
    while it differs from what is published."""
    tags = " ".join(record.get("tags") or [])
    docs = []
    if (
        record.get("published_revision") is not None
        and record.get("published_audience") in articles.AUDIENCES
    ):
        kind = next(k for k, a in SEARCH_TYPES.items() if a == record["published_audience"])
        docs.append(
            {
                "type": kind,
                "id": record["id"],
                "title": record.get("published_title") or "",
                "body": f"{markdown.plain_text(record.get('published_body') or '')}\n{tags}",
                "date": record.get("published_at"),
                "everyone": True,
            }
        )
    if record.get("status") != "published" or record.get("published_revision") is None:
        docs.append(
            {
                "type": DRAFT_TYPE,
                "id": record["id"],
                "title": record.get("title") or "",
                "body": f"{markdown.plain_text(record.get('body') or '')}\n{tags}",
                "date": record.get("updated_at"),
                "owner_id": record.get("author_id"),
                "everyone": True,
            }
        )
    return docs


def record_urls(kind: str, ids: list[int]) -> dict[int, str] | None:
    if kind in (*SEARCH_TYPES, DRAFT_TYPE, ENTITY):
        return {i: f"/knowledge_base/articles/{i}" for i in ids}
    return None


# --------------------------------------------------------------------------- record pages


def _path_text(run: dict[str, Any]) -> str:
    steps = [f"{p['question']} → {p['label']}" for p in run.get("path") or []]
    outcome = run.get("outcome") or {}
    if outcome.get("recommendation"):
        steps.append(f"⇒ {outcome['recommendation']}")
    return "; ".join(steps) or _("not answered yet")


async def _walk_rows(kind: str, record_id: int) -> list[dict[str, Any]]:
    rows = (
        await TreeRun.select()
        .where(TreeRun.kind == kind, TreeRun.record_id == record_id)
        .order_by(TreeRun.id, ascending=False)
        .limit(10)
        .output(load_json=True)
    )
    names = {
        t["id"]: t["name"]
        for t in await Tree.select(Tree.id, Tree.name).where(
            Tree.id.is_in([r["tree_id"] for r in rows] or [-1])
        )
    }
    return [
        {
            "label": names.get(r["tree_id"], ""),
            "value": _path_text(r),
            "href": f"/knowledge_base/runs/{r['id']}",
        }
        for r in rows
    ]


async def record_widgets(kind: str, record_id: int, principal: Any) -> list[dict[str, Any]]:
    """The guide for the deal's stage or the ticket's category (articles the user reads), and
    the decision-tree walks on the record with a link to walk one."""
    if kind not in ("deal", "ticket") or principal is None or not records.enabled(kind):
        return []
    try:
        record = await records.load(principal, kind, record_id)
    except DomainError:
        return []
    if kind == "deal":
        keys = [record.get("stage") or "", f"{record.get('pipeline', '')}:{record.get('stage', '')}"]
        guides = await articles.linked(principal, "stage", keys) if record.get("stage") else []
        title = _("Sales guide for this stage")
    else:
        guides = await articles.linked(principal, "ticket_category", [record.get("category") or ""])
        title = _("Knowledge base for this category")
    out: list[dict[str, Any]] = []
    readable = articles.readable_audiences(principal) or articles.is_editor(principal)
    if readable:
        out.append(
            {
                "title": title,
                "rows": [
                    {
                        "label": a["title"],
                        "value": "" if a["status"] == "published" else _("draft"),
                        "href": f"/knowledge_base/articles/{a['id']}",
                    }
                    for a in guides
                ],
                "empty": _("No articles for it yet."),
            }
        )
        walks = await _walk_rows(kind, record_id)
        walks.append(
            {
                "label": _("Walk a decision tree"),
                "value": "",
                "href": f"/knowledge_base/trees?kind={kind}&record_id={record_id}",
            }
        )
        out.append({"title": _("Decision trees"), "rows": walks})
    advice = await advice_widget(principal, kind, record_id)
    if advice is not None:
        out.append(advice)
    return out


async def card_widgets(party_id: int, principal: Any) -> list[dict[str, Any]]:
    """The client card's block of the expert system's recommendations."""
    if principal is None:
        return []
    advice = await advice_widget(principal, "party", party_id)
    return [advice] if advice is not None else []


async def advice_widget(principal: Any, kind: str, record_id: int) -> dict[str, Any] | None:
    """The expert system's recommendations stored on the record (given on its changes or on
    request), newest first, each with its "why" and, while pending, Accept / Reject buttons
    (``web.recommendation_feedback``); an accepted task recommendation links its task. None for
    a user who gets no advice or cannot read the record."""
    from tessera_knowledge_base import rules

    if not (principal.can(articles.READ) or principal.can(articles.SERVICE)):
        return None
    try:
        await records.load(principal, kind, record_id)
    except DomainError:
        return None
    recs = (
        await Recommendation.select()
        .where(
            Recommendation.kind == kind,
            Recommendation.record_id == record_id,
            Recommendation.status != "overridden",
        )
        .order_by(Recommendation.id, ascending=False)
        .limit(20)
        .output(load_json=True)
    )
    await rules.describe_articles(principal, recs)
    return {
        "title": _("Recommendations"),
        "template": "knowledge_base/_advice.html",
        "context": {"recs": recs, "kind": kind, "record_id": record_id},
    }


async def timeline(party_id: int, principal: Any) -> list[dict[str, Any]]:
    """Decision-tree walks on the client and on its records that the reader may read."""
    rows = (
        await TreeRun.select()
        .where(TreeRun.party_id == party_id)
        .order_by(TreeRun.id, ascending=False)
        .limit(100)
        .output(load_json=True)
    )
    if not rows:
        return []
    names = {
        t["id"]: t["name"]
        for t in await Tree.select(Tree.id, Tree.name).where(Tree.id.is_in([r["tree_id"] for r in rows]))
    }
    visible: dict[str, set[int]] = {}
    if principal is not None:
        from tessera.entities import service

        for kind in {r["kind"] for r in rows}:
            if records.enabled(kind):
                ids = [r["record_id"] for r in rows if r["kind"] == kind]
                visible[kind] = await service.visible_ids(records.spec_of(kind), principal, ids)
    return [
        {
            "kind": "knowledge_base.tree_run",
            "at": r["updated_at"],
            "id": r["id"],
            "user_id": r["started_by"],
            "title": _("Decision tree: %(name)s", name=names.get(r["tree_id"], "")),
            "detail": _path_text(r),
        }
        for r in rows
        if principal is None or r["record_id"] in visible.get(r["kind"], set())
    ]


#: entity of a domain event -> the kind of record rules are written for
EVENT_KINDS = {"party": "party", "sales.deal": "deal", "service.ticket": "ticket"}


async def on_event(event: Any) -> None:
    """A created or changed client, deal or ticket is advised on by the active rule sets (the
    recommendations wait, pending, for whoever opens it); a reopened ticket makes the articles
    used on it due for review now."""
    kind = EVENT_KINDS.get(event.entity)
    if kind and event.name in (f"{event.entity}.created", f"{event.entity}.updated") and event.entity_id:
        await _advise_on_change(kind, int(event.entity_id))
        return
    if event.name != "service.ticket.status_changed":
        return
    payload = event.payload or {}
    if payload.get("to") != "in_progress" or payload.get("from") not in ("resolved", "closed"):
        return
    used = (
        await Recommendation.select(Recommendation.action)
        .where(
            Recommendation.kind == "ticket",
            Recommendation.record_id == event.entity_id,
            Recommendation.status == "accepted",
        )
        .output(load_json=True)
    )
    ids = sorted(
        {r["action"].get("article_id") for r in used if r["action"].get("type") == "article"} - {None}
    )
    outcomes = (
        await TreeRun.select(TreeRun.outcome)
        .where(TreeRun.kind == "ticket", TreeRun.record_id == event.entity_id)
        .output(load_json=True)
    )
    ids = sorted(
        set(ids) | {o["outcome"].get("article_id") for o in outcomes if o["outcome"].get("article_id")}
    )
    if ids:
        await Article.update({Article.review_due_at: clock.now()}).where(
            Article.id.is_in(ids), Article.published_revision.is_not_null()
        )


async def _advise_on_change(kind: str, record_id: int) -> None:
    from tessera.demo import system_principal

    from tessera_knowledge_base import rules
    from tessera_knowledge_base.tables import RuleSet

    if not records.enabled(kind):
        return
    if not await RuleSet.exists().where(RuleSet.target == kind, RuleSet.active == True):  # noqa: E712
        return
    try:
        await rules.advise(system_principal(), kind, record_id)
    except DomainError:
        return  # deleted meanwhile: nothing to advise on
