"""Web pages of the knowledge base (mounted by the kernel under ``/knowledge_base/``): the base
with its category tree and search, the article reader (votes) and editor (with a preview),
versions and their diff, review actions, the rule editor with "test on this record", the
decision-tree runner (started from a ticket's, deal's or client's page) and the reports.

They call the same services as the API; every signed-in form carries the session's CSRF token.
No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

import json
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import i18n
from tessera.entities import service
from tessera.entities.tables import CrmUser
from tessera.errors import DomainError, ValidationFailed
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    render,
)

from tessera_knowledge_base import articles, markdown, records, reports, rules, services, trees
from tessera_knowledge_base.tables import Article, Category, RuleSet, Tree

i18n.register_labels("knowledge_base.article.audience", articles.AUDIENCE_LABELS)
i18n.register_labels("knowledge_base.article.status", articles.STATUS_LABELS)
i18n.register_labels(
    "knowledge_base.article.stale",
    {
        "review_due": i18n.N_("Due for review"),
        "not_viewed": i18n.N_("Not viewed"),
        "not_updated": i18n.N_("Not updated"),
    },
)
i18n.register_labels("timeline.kind", {"knowledge_base.tree_run": i18n.N_("Decision tree")})
i18n.register_labels(
    "knowledge_base.rule_set.target",
    {"party": i18n.N_("Clients"), "deal": i18n.N_("Deals"), "ticket": i18n.N_("Tickets")},
)
ARTICLE_FIELDS = frozenset({"title", "body", "audience", "category_id", "tags", "links", "note"})
KIND_URLS = {"ticket": "/service/tickets/{}", "deal": "/sales/deals/{}", "party": "/app/parties/{}"}


def _categories_flat(tree: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    out = []
    for node in tree:
        out.append({"id": node["id"], "name": node["name"], "depth": depth})
        out.extend(_categories_flat(node["children"], depth + 1))
    return out


async def _signed_in(request: Request[Any, Any, Any]) -> Any:
    return await current_principal(request)


@get("/", include_in_schema=False)
async def home(
    request: Request[Any, Any, Any], q: str | None = None, category_id: int | None = None
) -> Response[Any]:
    """The base: category tree, search within it, the articles of a category (or the newest)."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    tree = await services.category_tree()
    hits: list[dict[str, Any]] | None = None
    if q:
        from tessera.search.service import SearchOptions, search

        from tessera_knowledge_base.integration import DRAFT_TYPE, SEARCH_TYPES

        try:
            found = await search(principal, q, SearchOptions(types=[*SEARCH_TYPES, DRAFT_TYPE], limit=50))
            hits = found["hits"]
        except DomainError as exc:
            return error_page(request, principal, exc)
    conditions = [Article.category_id == category_id] if category_id else []
    page = await service.list_page(articles.ARTICLE, principal, conditions, order="-updated_at", limit=100)
    return render(
        request,
        "knowledge_base/home.html",
        principal=principal,
        tree=tree,
        q=q or "",
        hits=hits,
        category_id=category_id,
        items=await articles.present(principal, page.items),
        editor=articles.is_editor(principal),
        rules_admin=principal.can(articles.RULES),
    )


async def _article_view(
    request: Request[Any, Any, Any], principal: Any, article_id: int, *, count: bool = True
) -> Response[Any]:
    try:
        row = await articles.get(principal, article_id, count_view=count)
        history = await articles.versions(principal, article_id) if articles.is_editor(principal) else []
    except DomainError as exc:
        return error_page(request, principal, exc)
    category = await Category.select(Category.name).where(Category.id == row["category_id"]).first()
    return render(
        request,
        "knowledge_base/article.html",
        principal=principal,
        a=row,
        html=row["html"],
        category=category["name"] if category else "",
        history=history,
        editor=articles.is_editor(principal),
        can_write=principal.can(articles.WRITE),
        can_publish=principal.can(articles.PUBLISH),
    )


@get("/articles/{article_id:int}", include_in_schema=False)
async def article_page(request: Request[Any, Any, Any], article_id: int) -> Response[Any]:
    """The reader: the article rendered (sanitised), votes; for editors its state and versions."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    return await _article_view(request, principal, article_id)


def _values(data: dict[str, str]) -> dict[str, Any]:
    """An article form as the API's body: tags comma-separated, links one ``kind:key`` a line."""
    values: dict[str, Any] = {
        "title": (data.get("title") or "").strip(),
        "body": data.get("body") or "",
        "audience": data.get("audience") or "internal",
        "tags": [t.strip() for t in (data.get("tags") or "").split(",") if t.strip()],
        "note": (data.get("note") or "")[:300],
    }
    raw = (data.get("category_id") or "").strip()
    values["category_id"] = int(raw) if raw.isdigit() else None
    links = []
    for i, line in enumerate((data.get("links") or "").splitlines()):
        if not line.strip():
            continue
        kind, _, key = line.partition(":")
        if not key:
            raise ValidationFailed.field("links", f"line {i + 1}: write kind:key (stage:proposal)")
        links.append({"kind": kind.strip(), "key": key.strip()})
    values["links"] = links
    if not values["title"]:
        raise ValidationFailed.field("title", i18n.gettext("An article needs a title."))
    return values


async def _editor_view(
    request: Request[Any, Any, Any],
    principal: Any,
    article: dict[str, Any] | None,
    form: dict[str, str],
    *,
    preview: str | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    return render(
        request,
        "knowledge_base/edit.html",
        status=status,
        principal=principal,
        a=article,
        form=form,
        preview=preview,
        categories=_categories_flat(await services.category_tree()),
        audiences=articles.AUDIENCE_LABELS,
        error=errors.pop("", None),
        errors=errors,
    )


def _form_of(row: dict[str, Any]) -> dict[str, str]:
    return {
        "title": row["title"],
        "body": row["body"],
        "audience": row["audience"],
        "category_id": str(row["category_id"] or ""),
        "tags": ", ".join(row["tags"]),
        "links": "\n".join(f"{x['kind']}:{x['key']}" for x in row["links"]),
        "version": str(row["version"]),
    }


@get("/articles/new", include_in_schema=False)
async def new_article(request: Request[Any, Any, Any]) -> Response[Any]:
    """The editor for a new article."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    return await _editor_view(request, principal, None, {"audience": "internal"})


@get("/articles/{article_id:int}/edit", include_in_schema=False)
async def edit_article(request: Request[Any, Any, Any], article_id: int) -> Response[Any]:
    """The editor: the working copy's text and settings, with a preview."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    try:
        row = await articles.get(principal, article_id)
        principal.require(articles.WRITE)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _editor_view(request, principal, row, _form_of(row))


async def _save(
    request: Request[Any, Any, Any], article_id: int | None, data: dict[str, str]
) -> Response[Any]:
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    existing = None
    try:
        if article_id is not None:
            existing = await articles.get(principal, article_id)
        if data.get("action") == "preview":
            return await _editor_view(
                request, principal, existing, data, preview=markdown.render(data.get("body") or "")
            )
        values = _values(data)
        if article_id is None:
            row = await service.create(articles.ARTICLE, principal, values)
        else:
            version = int(data["version"]) if (data.get("version") or "").isdigit() else None
            row = await service.update(articles.ARTICLE, principal, article_id, values, version)
    except DomainError as exc:
        if exc.status == 404:
            return error_page(request, principal, exc)
        return await _editor_view(
            request, principal, existing, data, errors=field_errors(exc, ARTICLE_FIELDS), status=exc.status
        )
    return Redirect(f"/knowledge_base/articles/{row['id']}", status_code=303)


@post("/articles/new", include_in_schema=False, status_code=303)
async def new_article_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Save a new draft, or show its preview."""
    return await _save(request, None, data)


@post("/articles/{article_id:int}/edit", include_in_schema=False, status_code=303)
async def edit_article_submit(request: Request[Any, Any, Any], article_id: int, data: Form) -> Response[Any]:
    """Save the working copy as a new version, or show its preview."""
    return await _save(request, article_id, data)


@post("/articles/{article_id:int}/act", include_in_schema=False, status_code=303)
async def article_action(request: Request[Any, Any, Any], article_id: int, data: Form) -> Response[Any]:
    """Submit for review, publish, send back, withdraw, restore a version, vote."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    action = data.get("action") or ""
    try:
        if action == "submit":
            await articles.submit(principal, article_id)
        elif action == "publish":
            await articles.publish(principal, article_id)
        elif action == "send_back":
            await articles.send_back(principal, article_id, data.get("comment") or "—")
        elif action == "withdraw":
            await articles.withdraw(principal, article_id)
        elif action == "restore" and (data.get("revision") or "").isdigit():
            await articles.restore(principal, article_id, int(data["revision"]))
        elif action in ("helpful", "not_helpful"):
            await articles.vote(principal, article_id, action == "helpful")
        else:
            raise ValidationFailed.field("action", "unknown action")
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Redirect(f"/knowledge_base/articles/{article_id}", status_code=303)


@get("/articles/{article_id:int}/diff", include_in_schema=False)
async def diff_page(request: Request[Any, Any, Any], article_id: int, a: int, b: int) -> Response[Any]:
    """What changed between two versions, line by line."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    try:
        diff = await articles.diff(principal, article_id, a, b)
        row = await articles.get(principal, article_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return render(request, "knowledge_base/diff.html", principal=principal, a=row, diff=diff)


# --------------------------------------------------------------------------- rules


@get("/rules", include_in_schema=False)
async def rules_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """The rule sets (``knowledge_base.rules``)."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    try:
        page = await service.list_page(services.RULE_SET, principal, [], limit=200)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return render(request, "knowledge_base/rules.html", principal=principal, sets=page.items)


async def _rule_view(
    request: Request[Any, Any, Any],
    principal: Any,
    row: dict[str, Any] | None,
    form: dict[str, str],
    *,
    advice: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    facts = (
        await rules.known_facts(form.get("target") or "party") if form.get("target") in rules.TARGETS else {}
    )
    return render(
        request,
        "knowledge_base/rule_set.html",
        status=status,
        principal=principal,
        rs=row,
        form=form,
        advice=advice,
        facts=sorted(facts),
        targets=rules.TARGETS,
        error=errors.pop("", None),
        errors=errors,
    )


def _rule_form(row: dict[str, Any]) -> dict[str, str]:
    return {
        "name": row["name"],
        "target": row["target"],
        "priority": str(row["priority"]),
        "rules": json.dumps(row["rules"], ensure_ascii=False, indent=2),
        "version": str(row["version"]),
    }


@get("/rules/{rule_set_id:int}", include_in_schema=False)
async def rule_set_page(request: Request[Any, Any, Any], rule_set_id: int) -> Response[Any]:
    """The rule editor: rules as JSON, the facts they may name, "test on this record"."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    try:
        row = await service.get(services.RULE_SET, principal, rule_set_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return await _rule_view(request, principal, row, _rule_form(row))


@get("/rules/new", include_in_schema=False)
async def new_rule_set(request: Request[Any, Any, Any]) -> Response[Any]:
    """A new rule set."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    if not principal.can(articles.RULES):
        from tessera.errors import PermissionDenied

        return error_page(request, principal, PermissionDenied("knowledge_base.rules"))
    return await _rule_view(request, principal, None, {"target": "party", "rules": "[]", "priority": "0"})


@post("/rules/save", include_in_schema=False, status_code=303)
async def rule_set_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Save the rule set (refused with the offending rule's place), or test it on a record."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    raw_id = data.get("id") or ""
    row = None
    try:
        if raw_id.isdigit():
            row = await service.get(services.RULE_SET, principal, int(raw_id))
        try:
            parsed = json.loads(data.get("rules") or "[]")
        except ValueError as exc:
            raise ValidationFailed.field("rules", f"not JSON: {exc}") from exc
        target = data.get("target") or "party"
        if data.get("action") == "test":
            record = (data.get("record_id") or "").strip()
            if not record.isdigit():
                raise ValidationFailed.field("record_id", i18n.gettext("Give the id of a record to test on."))
            trial = {
                "id": row["id"] if row else 0,
                "name": data.get("name") or "",
                "priority": 0,
                "version": -1,
                "rules": await rules.validate(target, parsed),
            }
            advice = await rules.advise(principal, target, int(record), rule_set=trial, store=False)
            return await _rule_view(request, principal, row, data, advice=advice)
        values = {
            "name": (data.get("name") or "").strip() or "—",
            "target": target,
            "rules": parsed,
            "priority": int(data["priority"]) if (data.get("priority") or "").lstrip("-").isdigit() else 0,
        }
        if row is None:
            row = await service.create(services.RULE_SET, principal, values)
        else:
            version = int(data["version"]) if (data.get("version") or "").isdigit() else None
            row = await service.update(services.RULE_SET, principal, row["id"], values, version)
    except DomainError as exc:
        if exc.status == 404:
            return error_page(request, principal, exc)
        errors = {
            e.field if e.field in ("record_id", "target", "name") else "rules": e.message for e in exc.errors
        }
        if exc.errors:
            errors["rules"] = "; ".join(
                f"{e.field}: {e.message}" for e in exc.errors if e.field.startswith("rules")
            )
            errors = {k: v for k, v in errors.items() if v}
        return await _rule_view(
            request, principal, row, data, errors=errors or {"": exc.detail}, status=exc.status
        )
    return Redirect(f"/knowledge_base/rules/{row['id']}", status_code=303)


# --------------------------------------------------------------------------- advice on a record


def _record_url(kind: str, record_id: int) -> str:
    return KIND_URLS[kind].format(record_id) + "#kb-recommendations" if kind in KIND_URLS else "/"


@post("/advise", include_in_schema=False, status_code=303)
async def advise_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """ "Ask for advice" on a record's page: the active rule sets evaluated and their
    recommendations stored (as ``POST /api/knowledge_base/advise``), back to the record."""
    from tessera_knowledge_base.routes import KbAdviseIn

    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(KbAdviseIn, data)
        if not principal.can(articles.SERVICE):
            principal.require(articles.READ)
        await rules.advise(principal, body.kind, body.record_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Redirect(_record_url(body.kind, body.record_id), status_code=303)


@post("/recommendations/{recommendation_id:int}/feedback", include_in_schema=False, status_code=303)
async def recommendation_feedback(
    request: Request[Any, Any, Any], recommendation_id: int, data: Form
) -> Response[Any]:
    """Accept or reject a recommendation from the record's page (as the API's feedback route:
    accepting a task recommendation creates the task), back to the record."""
    from tessera_knowledge_base.routes import KbFeedbackIn

    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(KbFeedbackIn, data)
        row = await rules.feedback(principal, recommendation_id, body.accepted, body.comment)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Redirect(_record_url(row["kind"], row["record_id"]), status_code=303)


# --------------------------------------------------------------------------- decision trees


@get("/trees", include_in_schema=False)
async def trees_page(
    request: Request[Any, Any, Any], kind: str | None = None, record_id: int | None = None
) -> Response[Any]:
    """The decision trees; from a ticket's, deal's or client's page: start one on that record."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    rows = await Tree.select().where(Tree.active == True).order_by(Tree.name).output(load_json=True)  # noqa: E712
    if kind:
        rows = [t for t in rows if not t["targets"] or kind in t["targets"]]
    walks = []
    if kind and record_id:
        try:
            walks = await trees.runs_on(principal, kind, record_id)
        except DomainError as exc:
            return error_page(request, principal, exc)
    return render(
        request,
        "knowledge_base/trees.html",
        principal=principal,
        trees=rows,
        kind=kind or "",
        record_id=record_id,
        walks=walks,
        back=KIND_URLS[kind].format(record_id) if kind in KIND_URLS and record_id else "",
    )


@post("/trees/{tree_id:int}/start", include_in_schema=False, status_code=303)
async def start_tree(request: Request[Any, Any, Any], tree_id: int, data: Form) -> Response[Any]:
    """Start walking the tree on the record."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        raw = data.get("record_id") or ""
        if not raw.isdigit():
            raise ValidationFailed.field("record_id", "give the record's id")
        run = await trees.start(principal, tree_id, data.get("kind") or "", int(raw))
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Redirect(f"/knowledge_base/runs/{run['id']}", status_code=303)


@get("/runs/{run_id:int}", include_in_schema=False)
async def run_page(request: Request[Any, Any, Any], run_id: int) -> Response[Any]:
    """The runner: the path so far, the current question with its answers, or the outcome."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    try:
        run = await trees._run_view(await trees.get_run(principal, run_id))
    except DomainError as exc:
        return error_page(request, principal, exc)
    article = None
    if run["step"].get("article_id"):
        visible = await service.visible_ids(articles.ARTICLE, principal, [run["step"]["article_id"]])
        if visible:
            article = (await articles.get(principal, run["step"]["article_id"]))["title"]
    back = KIND_URLS.get(run["kind"], "").format(run["record_id"])
    return render(
        request, "knowledge_base/run.html", principal=principal, run=run, article=article, back=back
    )


@post("/runs/{run_id:int}/answer", include_in_schema=False, status_code=303)
async def run_answer(request: Request[Any, Any, Any], run_id: int, data: Form) -> Response[Any]:
    """Answer the current question."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        await trees.answer(principal, run_id, data.get("answer") or "")
    except DomainError as exc:
        return error_page(request, principal, exc)
    return Redirect(f"/knowledge_base/runs/{run_id}", status_code=303)


# --------------------------------------------------------------------------- reports


@get("/reports", include_in_schema=False)
async def reports_page(request: Request[Any, Any, Any], months: int = 6) -> Response[Any]:
    """Most used articles and rules, stale articles and those due for review."""
    principal = await _signed_in(request)
    if principal is None:
        return Redirect("/login")
    months = min(max(months, 1), 120)
    used = await reports.article_usage(principal, 20)
    stale = await reports.stale(principal, months)
    rule_rows = await reports.rule_usage(principal, 20) if principal.can(articles.RULES) else []
    names = {
        u["id"]: u["name"]
        for u in await CrmUser.select(CrmUser.id, CrmUser.name).where(
            CrmUser.id.is_in([r["published_by"] for r in stale if r["published_by"]] or [-1])
        )
    }
    sets = {r["id"]: r["name"] for r in await RuleSet.select(RuleSet.id, RuleSet.name)}
    return render(
        request,
        "knowledge_base/reports.html",
        principal=principal,
        used=used,
        stale=stale,
        rule_rows=rule_rows,
        months=months,
        names=names,
        sets=sets,
        faster_report=records.enabled("ticket") and principal.can(articles.READ),
    )


HANDLERS = [
    home,
    new_article,
    new_article_submit,
    article_page,
    edit_article,
    edit_article_submit,
    article_action,
    diff_page,
    rules_page,
    new_rule_set,
    rule_set_page,
    rule_set_submit,
    advise_submit,
    recommendation_feedback,
    trees_page,
    start_tree,
    run_page,
    run_answer,
    reports_page,
]
