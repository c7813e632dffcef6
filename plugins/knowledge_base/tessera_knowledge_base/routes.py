"""HTTP routes of the knowledge base, mounted by the kernel under ``/api/knowledge_base/``.

Thin: each handler checks the body shape (msgspec), then calls a service function. Articles
have their own handlers (a reader gets the published text, an editor the working copy beside
it); categories, rule sets and decision trees are plain entities on the kernel's router.
No ``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, Router, delete, get, patch, post
from litestar.params import Parameter, QueryParameter
from msgspec import UNSET, Meta, Struct, UnsetType
from tessera import audit, db
from tessera.api.crud import IfMatch, entity_router, parse_if_match
from tessera.entities import service
from tessera.entities.dto import Id, partial, set_fields, to_struct
from tessera.permissions import Principal

from tessera_knowledge_base import articles, markdown, reports, rules, services, trees
from tessera_knowledge_base.tables import Article, Category, Link, RuleSet, Tree

IdQ = Annotated[int | None, Parameter(ge=1, le=2**31 - 1)]
Audience = Literal["internal", "service", "public"]
Kind = Literal["party", "deal", "ticket"]
LinkKind = Literal["stage", "ticket_category", "product"]


# --------------------------------------------------------------------------- articles


class KbLinkIn(Struct, kw_only=True, forbid_unknown_fields=True):
    kind: LinkKind
    key: Annotated[str, Meta(min_length=1, max_length=200, examples=["proposal"])]


class KbArticleIn(Struct, kw_only=True, forbid_unknown_fields=True):
    title: Annotated[str, Meta(min_length=1, max_length=300, examples=["How to qualify a lead"])]
    body: Annotated[str, Meta(max_length=200_000, examples=["## Steps\n\n1. Call the client"])] = ""
    category_id: Id | None = None
    tags: list[Annotated[str, Meta(min_length=1, max_length=60)]] = msgspec.field(default_factory=list)
    audience: Audience = "internal"
    links: list[KbLinkIn] = msgspec.field(default_factory=list)
    attachment_ids: list[Id] = msgspec.field(default_factory=list)
    #: What changed (kept with the version).
    note: Annotated[str, Meta(max_length=300)] = ""


KbArticlePatch = partial(KbArticleIn, "KbArticlePatch")


class KbLinkOut(Struct, kw_only=True):
    kind: str
    key: str


class KbArticleOut(Struct, kw_only=True):
    id: int
    title: str
    body: str
    #: The body rendered and sanitised.
    html: str
    category_id: int | None
    tags: list[str]
    audience: str
    #: draft | review | published (for readers always published: they read the published text)
    status: str
    revision: int | None
    links: list[KbLinkOut]
    attachment_ids: list[int]
    review_comment: str
    published_revision: int | None
    published_at: dt.datetime | None
    published_by: int | None
    review_due_at: dt.datetime | None
    views: int
    last_viewed_at: dt.datetime | None
    helpful: int
    not_helpful: int
    author_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class KbArticlePage(Struct, kw_only=True):
    items: list[KbArticleOut]
    next_cursor: str | None


def _conditions(
    principal: Principal,
    category_id: int | None,
    tag: str | None,
    audience: str | None,
    status: str | None,
    q: str | None,
    link_kind: str | None,
    link_key: str | None,
    review_due: bool | None,
) -> list[Any]:
    editor = articles.is_editor(principal)
    out: list[Any] = []
    if category_id is not None:
        out.append(Article.category_id == category_id)
    if tag:
        out.append(Article.tags.like(f'%"{tag.replace("%", "").replace("_", "")}"%'))
    if audience:
        out.append((Article.audience if editor else Article.published_audience) == audience)
    if status:
        if not editor and status != "published":
            out.append(Article.id == -1)
        elif status == "published":
            out.append(Article.published_revision.is_not_null())
        else:
            out.append(Article.status == status)
    if q:
        pattern = f"%{q.replace('%', '').replace('_', '')}%"
        column = Article.title if editor else Article.published_title
        out.append(column.ilike(pattern) if db.is_postgres() else column.like(pattern))
    if link_kind and link_key:
        out.append(
            Article.id.is_in(Link.select(Link.article_id).where(Link.kind == link_kind, Link.key == link_key))
        )
    if review_due is not None:
        from tessera import clock

        due = Article.review_due_at <= clock.now()
        out.append(
            due if review_due else (Article.review_due_at.is_null() | (Article.review_due_at > clock.now()))
        )
    return out


@get("/articles", operation_id="list_kb_articles")
async def list_articles(
    principal: Principal,
    category_id: IdQ = None,
    tag: Annotated[str | None, Parameter(max_length=60)] = None,
    audience: Audience | None = None,
    status: Literal["draft", "review", "published"] | None = None,
    q: Annotated[str | None, Parameter(max_length=200, description="Part of the title")] = None,
    link_kind: LinkKind | None = None,
    link_key: Annotated[str | None, Parameter(max_length=200)] = None,
    review_due: Annotated[bool | None, Parameter(description="Due for review now")] = None,
    order: Literal["id", "-id", "updated_at", "-updated_at", "title", "-title", "views", "-views"]
    | None = None,
    cursor: Annotated[str | None, Parameter(max_length=500)] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
) -> KbArticlePage:
    """Articles you may read: editors see drafts and the working copy, readers the published
    text of the audiences they read. Filters by category, tag, audience, status, title, link."""
    conditions = _conditions(
        principal, category_id, tag, audience, status, q, link_kind, link_key, review_due
    )
    page = await service.list_page(
        articles.ARTICLE, principal, conditions, order=order, cursor=cursor, limit=limit
    )
    rows = await articles.present(principal, page.items)
    return KbArticlePage(items=[to_struct(r, KbArticleOut) for r in rows], next_cursor=page.next_cursor)


@get("/articles/{article_id:int}", operation_id="get_kb_article")
async def get_article(
    principal: Principal,
    article_id: int,
    view: Annotated[bool, Parameter(description="Count this read as a view")] = False,
) -> Response[KbArticleOut]:
    """One article; 404 when it does not exist or you may not read it (a draft for a reader).
    ETag is its version."""
    row = await articles.get(principal, article_id, count_view=view)
    return Response(to_struct(row, KbArticleOut), headers={"ETag": f'"{row["version"]}"'})


@post("/articles", operation_id="create_kb_article", status_code=201)
async def create_article(principal: Principal, data: KbArticleIn) -> KbArticleOut:
    """Write a new article: a draft (version 1) until a publisher approves it after review."""
    row = await service.create(articles.ARTICLE, principal, set_fields(data))
    return to_struct((await articles.present(principal, [row]))[0], KbArticleOut)


@patch("/articles/{article_id:int}", operation_id="update_kb_article")
async def update_article(
    principal: Principal,
    article_id: int,
    data: KbArticlePatch,  # type: ignore[valid-type]
    if_match: IfMatch = None,
) -> KbArticleOut:
    """Change the working copy: every change of its text, title, tags, audience or category is
    a new version; a published article stays as published until the new text passes review.
    Send ``version`` (or If-Match) to fail on a concurrent change (409)."""
    values = set_fields(data)
    expected = values.pop("version", None)
    header = parse_if_match(if_match)
    row = await service.update(
        articles.ARTICLE, principal, article_id, values, header if header is not None else expected
    )
    return to_struct((await articles.present(principal, [row]))[0], KbArticleOut)


@delete("/articles/{article_id:int}", operation_id="delete_kb_article", status_code=204)
async def delete_article(principal: Principal, article_id: int) -> None:
    """Delete an article and its versions (``knowledge_base.publish``); withdrawing keeps them."""
    await service.delete(articles.ARTICLE, principal, article_id)


class KbVersionIn(Struct, kw_only=True, forbid_unknown_fields=True):
    version: int | None = None


class KbSendBackIn(Struct, kw_only=True, forbid_unknown_fields=True):
    comment: Annotated[str, Meta(min_length=1, max_length=5000, examples=["Add the price list"])]
    version: int | None = None


class KbRestoreIn(Struct, kw_only=True, forbid_unknown_fields=True):
    revision: Annotated[int, Meta(ge=1)]
    version: int | None = None


async def _out(principal: Principal, row: dict[str, Any]) -> KbArticleOut:
    return to_struct((await articles.present(principal, [row]))[0], KbArticleOut)


@post("/articles/{article_id:int}/submit", operation_id="submit_kb_article", status_code=200)
async def submit_article(principal: Principal, article_id: int, data: KbVersionIn) -> KbArticleOut:
    """Send the draft for review (``knowledge_base.write``)."""
    return await _out(principal, await articles.submit(principal, article_id, data.version))


@post("/articles/{article_id:int}/publish", operation_id="publish_kb_article", status_code=200)
async def publish_article(principal: Principal, article_id: int, data: KbVersionIn) -> KbArticleOut:
    """Approve the article in review: its working copy becomes what readers see
    (``knowledge_base.publish``). 409 when it is not in review."""
    return await _out(principal, await articles.publish(principal, article_id, data.version))


@post("/articles/{article_id:int}/send-back", operation_id="send_back_kb_article", status_code=200)
async def send_back_article(principal: Principal, article_id: int, data: KbSendBackIn) -> KbArticleOut:
    """Return the article in review to its authors with a comment (``knowledge_base.publish``)."""
    return await _out(principal, await articles.send_back(principal, article_id, data.comment, data.version))


@post("/articles/{article_id:int}/withdraw", operation_id="withdraw_kb_article", status_code=200)
async def withdraw_article(principal: Principal, article_id: int, data: KbVersionIn) -> KbArticleOut:
    """Hide the published article from readers (its versions stay)."""
    return await _out(principal, await articles.withdraw(principal, article_id, data.version))


@post("/articles/{article_id:int}/restore", operation_id="restore_kb_article", status_code=200)
async def restore_article(principal: Principal, article_id: int, data: KbRestoreIn) -> KbArticleOut:
    """Make an earlier version the working copy again, as a new version (nothing is lost)."""
    return await _out(principal, await articles.restore(principal, article_id, data.revision, data.version))


class KbArticleVersionOut(Struct, kw_only=True):
    id: int
    article_id: int
    revision: int
    title: str
    body: str
    tags: list[str]
    audience: str
    category_id: int | None
    note: str
    saved_by: int | None
    saved_at: dt.datetime


@get("/articles/{article_id:int}/versions", operation_id="list_kb_article_versions")
async def article_versions(principal: Principal, article_id: int) -> list[KbArticleVersionOut]:
    """Every saved version of the article, newest first (editors)."""
    return [to_struct(r, KbArticleVersionOut) for r in await articles.versions(principal, article_id)]


class KbDiffLine(Struct, kw_only=True):
    op: Literal["added", "removed"]
    line: int
    text: str


class KbDiffField(Struct, kw_only=True):
    field: str
    from_: Any = msgspec.field(name="from")
    to: Any


class KbArticleDiff(Struct, kw_only=True):
    article_id: int
    from_: int = msgspec.field(name="from")
    to: int
    fields: list[KbDiffField]
    lines: list[KbDiffLine]
    unified: str


@get("/articles/{article_id:int}/diff", operation_id="diff_kb_article_versions")
async def article_diff(
    principal: Principal,
    article_id: int,
    from_: Annotated[int, QueryParameter(name="from", ge=1, le=2**31 - 1)],
    to: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
) -> KbArticleDiff:
    """What changed between two versions: the changed fields, each removed and added line of
    the body with its number, and the unified diff (editors)."""
    return msgspec.convert(await articles.diff(principal, article_id, from_, to), KbArticleDiff)


class KbVoteIn(Struct, kw_only=True, forbid_unknown_fields=True):
    helpful: bool


class KbVoteOut(Struct, kw_only=True):
    article_id: int
    helpful: int
    not_helpful: int
    yours: bool


@post("/articles/{article_id:int}/vote", operation_id="vote_kb_article", status_code=200)
async def vote_article(principal: Principal, article_id: int, data: KbVoteIn) -> KbVoteOut:
    """Say whether the article helped (one vote per reader; voting again replaces it)."""
    return to_struct(await articles.vote(principal, article_id, data.helpful), KbVoteOut)


class KbPreviewIn(Struct, kw_only=True, forbid_unknown_fields=True):
    body: Annotated[str, Meta(max_length=200_000)]


class KbPreviewOut(Struct, kw_only=True):
    html: str


@post("/preview", operation_id="preview_kb_markdown", status_code=200)
async def preview(principal: Principal, data: KbPreviewIn) -> KbPreviewOut:
    """The body as readers would see it (rendered and sanitised); stores nothing."""
    principal.require(articles.WRITE)
    audit.unchanged()
    return KbPreviewOut(html=markdown.render(data.body))


# --------------------------------------------------------------------------- categories


class KbCategoryIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Sales"])]
    parent_id: Id | None = None
    position: int = 0
    description: Annotated[str, Meta(max_length=5000)] = ""


class KbCategoryOut(Struct, kw_only=True):
    id: int
    name: str
    parent_id: int | None
    position: int
    description: str
    created_at: dt.datetime
    version: int


class KbCategoryNode(Struct, kw_only=True):
    id: int
    name: str
    parent_id: int | None
    position: int
    description: str
    children: list["KbCategoryNode"]


def category_filters(parent_id: IdQ = None) -> list[Any]:
    return [] if parent_id is None else [Category.parent_id == parent_id]


@get("/tree", operation_id="kb_category_tree")
async def category_tree(principal: Principal) -> list[KbCategoryNode]:
    """The categories as a tree (roots first, each with its ``children``)."""
    return [msgspec.convert(n, KbCategoryNode, strict=False) for n in await services.category_tree()]


categories_router = entity_router(
    spec=services.CATEGORY,
    path="/categories",
    tag="knowledge_base",
    out=KbCategoryOut,
    create_body=KbCategoryIn,
    patch_body=partial(KbCategoryIn, "KbCategoryPatch"),
    filters=category_filters,
    extra_handlers=[category_tree],
    name="kb_category",
)


# --------------------------------------------------------------------------- rule sets and advice


class KbRuleSetIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Key accounts"])]
    target: Kind
    description: Annotated[str, Meta(max_length=5000)] = ""
    #: The rules (see docs/knowledge_base.md: conditions over facts, actions).
    rules: list[dict[str, Any]] = msgspec.field(default_factory=list)
    priority: Annotated[int, Meta(ge=-1000, le=1000)] = 0
    active: bool = True


class KbRuleSetOut(Struct, kw_only=True):
    id: int
    name: str
    target: str
    description: str
    rules: list[dict[str, Any]]
    priority: int
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def rule_set_filters(target: Kind | None = None, active: bool | None = None) -> list[Any]:
    out: list[Any] = []
    if target:
        out.append(RuleSet.target == target)
    if active is not None:
        out.append(RuleSet.active == active)
    return out


class KbFactOut(Struct, kw_only=True):
    fact: str
    description: str


@get("/facts", operation_id="kb_rule_facts")
async def facts(principal: Principal, target: Kind) -> list[KbFactOut]:
    """The facts rules on records of ``target`` may name (fields, custom fields, history)."""
    principal.require(articles.RULES)
    return [KbFactOut(fact=k, description=v) for k, v in sorted((await rules.known_facts(target)).items())]


class KbRecordRef(Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Kind
    record_id: Id


class KbAdviseIn(Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Kind
    record_id: Id


class KbTestRulesIn(Struct, kw_only=True, forbid_unknown_fields=True):
    record_id: Id
    #: Rules being edited (not saved) to try instead of the stored ones.
    rules: list[dict[str, Any]] | UnsetType = UNSET


class KbMatchedFact(Struct, kw_only=True):
    fact: str
    op: str
    value: Any = None
    actual: Any = None
    text: str


class KbExplanation(Struct, kw_only=True):
    rule_set_id: int
    rule_set: str
    rule_key: str
    rule: str
    priority: int
    facts: list[KbMatchedFact]


class KbRecommendationOut(Struct, kw_only=True):
    id: int | None
    status: str
    action: dict[str, Any]
    explanation: KbExplanation
    article_title: str | None = None
    article_visible: bool | None = None


class KbOverriddenOut(Struct, kw_only=True):
    action: dict[str, Any]
    explanation: KbExplanation
    overridden_by: str


class KbAdviceOut(Struct, kw_only=True):
    kind: str
    record_id: int
    recommendations: list[KbRecommendationOut]
    overridden: list[KbOverriddenOut]


def _advice(result: dict[str, Any]) -> KbAdviceOut:
    return msgspec.convert(result, KbAdviceOut, strict=False)


@post("/advise", operation_id="kb_advise", status_code=200)
async def advise(principal: Principal, data: KbAdviseIn) -> KbAdviceOut:
    """Recommendations of the active rule sets for a record you may read (a party, a deal, a
    ticket), each with its explanation: the rule that fired and the facts that matched. Each is
    stored (pending) so you can accept or reject it."""
    if not principal.can(articles.SERVICE):
        principal.require(articles.READ)
    result = await rules.advise(principal, data.kind, data.record_id)
    if not result["recommendations"]:
        audit.unchanged()
    return _advice(result)


@post("/{record_id:int}/test", operation_id="kb_test_rule_set", status_code=200)
async def test_rule_set(principal: Principal, record_id: int, data: KbTestRulesIn) -> KbAdviceOut:
    """ "Test on this record": evaluate this rule set (or the unsaved ``rules`` sent) on a record
    of its target; stores nothing."""
    row = await service.get(services.RULE_SET, principal, record_id)
    if data.rules is not UNSET:
        row = {**row, "rules": await rules.validate(row["target"], data.rules), "version": -1}
    audit.unchanged()
    return _advice(await rules.advise(principal, row["target"], data.record_id, rule_set=row, store=False))


rule_sets_router = entity_router(
    spec=services.RULE_SET,
    path="/rule-sets",
    tag="knowledge_base",
    out=KbRuleSetOut,
    create_body=KbRuleSetIn,
    patch_body=partial(KbRuleSetIn, "KbRuleSetPatch"),
    filters=rule_set_filters,
    extra_handlers=[test_rule_set],
    name="kb_rule_set",
)


class KbFeedbackIn(Struct, kw_only=True, forbid_unknown_fields=True):
    accepted: bool
    comment: Annotated[str, Meta(max_length=5000)] = ""


class KbStoredRecommendationOut(Struct, kw_only=True):
    id: int
    rule_set_id: int | None
    rule_key: str
    kind: str
    record_id: int
    action: dict[str, Any]
    explanation: dict[str, Any]
    status: str
    comment: str
    created_by: int | None
    created_at: dt.datetime
    decided_by: int | None
    decided_at: dt.datetime | None
    #: The kernel task created when a "task" recommendation was accepted.
    task_id: int | None = None


@post(
    "/recommendations/{recommendation_id:int}/feedback",
    operation_id="kb_recommendation_feedback",
    status_code=200,
)
async def recommendation_feedback(
    principal: Principal, recommendation_id: int, data: KbFeedbackIn
) -> KbStoredRecommendationOut:
    """Accept or reject a recommendation given on a record you read (the reports count both).
    Accepting a "task" recommendation creates the task (once), given to whoever is responsible
    for the record and linked to its client; its id comes back as ``task_id``."""
    row = await rules.feedback(principal, recommendation_id, data.accepted, data.comment)
    return to_struct(row, KbStoredRecommendationOut)


# --------------------------------------------------------------------------- decision trees


class KbTreeIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Printer does not print"])]
    description: Annotated[str, Meta(max_length=5000)] = ""
    targets: list[Kind] = msgspec.field(default_factory=list)
    #: ``{"start": node, "nodes": {name: {question, answers: [{key, label, next}]}``
    #: ``| {recommendation, article_id?}}}``
    definition: dict[str, Any]
    active: bool = True


class KbTreeOut(Struct, kw_only=True):
    id: int
    name: str
    description: str
    targets: list[str]
    definition: dict[str, Any]
    revision: int
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


def tree_filters(active: bool | None = None) -> list[Any]:
    return [] if active is None else [Tree.active == active]


class KbAnswerChoice(Struct, kw_only=True):
    key: str
    label: str


class KbStepOut(Struct, kw_only=True):
    node: str
    question: str | None = None
    help: str | None = None
    answers: list[KbAnswerChoice] | None = None
    recommendation: str | None = None
    article_id: int | None = None


class KbPathStep(Struct, kw_only=True):
    node: str
    question: str
    answer: str
    label: str


class KbRunOut(Struct, kw_only=True):
    id: int
    tree_id: int
    tree_name: str
    revision: int
    kind: str
    record_id: int
    party_id: int | None
    path: list[KbPathStep]
    current_node: str
    status: str
    step: KbStepOut
    started_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


@post("/{record_id:int}/runs", operation_id="kb_start_tree", status_code=201)
async def start_tree(principal: Principal, record_id: int, data: KbRecordRef) -> KbRunOut:
    """Start walking the tree on a record you read (a ticket, a deal, a party): the first
    question and its answers. The path is stored on the record."""
    return msgspec.convert(
        await trees.start(principal, record_id, data.kind, data.record_id), KbRunOut, strict=False
    )


trees_router = entity_router(
    spec=trees.TREE,
    path="/trees",
    tag="knowledge_base",
    out=KbTreeOut,
    create_body=KbTreeIn,
    patch_body=partial(KbTreeIn, "KbTreePatch"),
    filters=tree_filters,
    extra_handlers=[start_tree],
    name="kb_tree",
)


class KbAnswerIn(Struct, kw_only=True, forbid_unknown_fields=True):
    answer: Annotated[str, Meta(min_length=1, max_length=100, examples=["yes"])]


@post("/runs/{run_id:int}/answer", operation_id="kb_answer_tree", status_code=200)
async def answer_tree(principal: Principal, run_id: int, data: KbAnswerIn) -> KbRunOut:
    """Answer the current question: the next question, or the recommendation the walk ends on."""
    return msgspec.convert(await trees.answer(principal, run_id, data.answer), KbRunOut, strict=False)


@get("/runs/{run_id:int}", operation_id="kb_get_tree_run")
async def get_run(principal: Principal, run_id: int) -> KbRunOut:
    """One walk (404 unless you read its record)."""
    from tessera_knowledge_base.trees import _run_view

    return msgspec.convert(await _run_view(await trees.get_run(principal, run_id)), KbRunOut, strict=False)


@get("/runs", operation_id="kb_list_tree_runs")
async def list_runs(
    principal: Principal, kind: Kind, record_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)]
) -> list[KbRunOut]:
    """The walks on a record you read, newest first."""
    rows = await trees.runs_on(principal, kind, record_id)
    return [msgspec.convert(r, KbRunOut, strict=False) for r in rows]


# --------------------------------------------------------------------------- reports


class KbUsageRow(Struct, kw_only=True):
    id: int | None
    key: str
    title: str
    views: int
    helpful: int
    not_helpful: int
    recommended: int
    accepted: int
    rejected: int


class KbStaleRow(Struct, kw_only=True):
    id: int
    title: str
    updated_at: dt.datetime
    last_viewed_at: dt.datetime | None
    review_due_at: dt.datetime | None
    views: int
    reason: str


@get("/reports/articles", operation_id="kb_report_articles")
async def report_articles(
    principal: Principal, limit: Annotated[int, Parameter(ge=1, le=500)] = 50
) -> list[KbUsageRow]:
    """The most used articles you may read: views, votes, recommendations accepted/rejected."""
    return [to_struct(r, KbUsageRow) for r in await reports.article_usage(principal, limit)]


@get("/reports/rules", operation_id="kb_report_rules")
async def report_rules(
    principal: Principal, limit: Annotated[int, Parameter(ge=1, le=500)] = 50
) -> list[KbUsageRow]:
    """Rules by how often they recommended something and how often that was accepted."""
    return [to_struct(r, KbUsageRow) for r in await reports.rule_usage(principal, limit)]


@get("/reports/stale", operation_id="kb_report_stale")
async def report_stale(
    principal: Principal, months: Annotated[int, Parameter(ge=1, le=120)] = 6
) -> list[KbStaleRow]:
    """Published articles not viewed or not updated in ``months`` months, and those due for
    review (their review date passed, or a ticket that used them was reopened)."""
    return [to_struct(r, KbStaleRow) for r in await reports.stale(principal, months)]


def routers() -> list[Any]:
    return [
        categories_router,
        rule_sets_router,
        trees_router,
        Router(
            path="/",
            route_handlers=[
                list_articles,
                get_article,
                create_article,
                update_article,
                delete_article,
                submit_article,
                publish_article,
                send_back_article,
                withdraw_article,
                restore_article,
                article_versions,
                article_diff,
                vote_article,
                preview,
                facts,
                advise,
                recommendation_feedback,
                answer_tree,
                get_run,
                list_runs,
                report_articles,
                report_rules,
                report_stale,
            ],
            tags=["knowledge_base"],
        ),
    ]
