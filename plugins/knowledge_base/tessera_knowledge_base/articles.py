"""Articles: the working copy and its versions, review and publication, the readers' view,
votes, views, version diffs, links to other plugins' records (no HTTP here).

Every write goes through ``tessera.entities.service`` with ``ARTICLE`` (audit entry, domain
event, optimistic locking, search refresh in one transaction). Transitions (submit, publish,
send back, withdraw, restore) write the columns a request body may not set through
``service.update`` with the internal marker ``_system``, after checking their own permission.

Who reads what (the same rule in lists, single reads, guides and search):

* editors (``knowledge_base.write`` or ``knowledge_base.publish``) read every article, drafts
  included, and its versions;
* everyone else reads the *published* text of articles whose published audience they may
  read: ``public`` with ``knowledge_base.read`` or ``knowledge_base.public``, ``internal``
  with ``knowledge_base.read``, ``service`` with ``knowledge_base.service``.
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any

from piccolo.columns.combination import WhereRaw
from tessera import audit, clock, events
from tessera.entities import service
from tessera.entities.notes import ATTACHMENT
from tessera.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.permissions import Principal

from tessera_knowledge_base import markdown
from tessera_knowledge_base.tables import Article, ArticleVersion, Category, Link, Vote

READ = "knowledge_base.read"
PUBLIC = "knowledge_base.public"
SERVICE = "knowledge_base.service"
WRITE = "knowledge_base.write"
PUBLISH = "knowledge_base.publish"
RULES = "knowledge_base.rules"

AUDIENCES = ("internal", "service", "public")
AUDIENCE_LABELS = {
    "internal": N_("Staff"),
    "service": N_("Service agents"),
    "public": N_("Public (clients)"),
}
STATUS_LABELS = {"draft": N_("Draft"), "review": N_("In review"), "published": N_("Published")}
LINK_KINDS = ("stage", "ticket_category", "product")
#: The working copy's columns: a change of one is a new version.
CONTENT = ("title", "body", "tags", "audience", "category_id")
#: Columns only the transitions write.
SYSTEM_FIELDS = (
    "status",
    "revision",
    "review_comment",
    "submitted_by",
    "published_revision",
    "published_title",
    "published_body",
    "published_html",
    "published_audience",
    "published_at",
    "published_by",
    "review_due_at",
    "views",
    "last_viewed_at",
    "helpful",
    "not_helpful",
    "author_id",
)
#: Months after publication an article is due for review.
REVIEW_MONTHS = 12


# --------------------------------------------------------------------------- who reads what


def readable_audiences(principal: Principal) -> list[str]:
    """The published audiences ``principal`` reads (editors read everything besides)."""
    out = []
    if principal.can(READ) or principal.can(PUBLIC):
        out.append("public")
    if principal.can(READ):
        out.append("internal")
    if principal.can(SERVICE):
        out.append("service")
    return out


def is_editor(principal: Principal) -> bool:
    return principal.can(WRITE) or principal.can(PUBLISH)


def article_visibility(principal: Principal) -> Any:
    """Editors: every article; readers: published articles of the audiences they read."""
    if is_editor(principal):
        return None
    audiences = readable_audiences(principal)
    if not audiences:
        return WhereRaw("1 = 0")
    return Article.published_revision.is_not_null() & Article.published_audience.is_in(audiences)


def search_permissions(audience: str) -> tuple[str, ...]:
    """Any one of these reads published articles of ``audience`` (search types use them)."""
    return {
        "public": (READ, PUBLIC, WRITE, PUBLISH),
        "internal": (READ, WRITE, PUBLISH),
        "service": (SERVICE, WRITE, PUBLISH),
    }[audience]


# --------------------------------------------------------------------------- the spec


async def _check_links(links: Any) -> list[dict[str, str]]:
    if not isinstance(links, list):
        raise ValidationFailed.field("links", "must be a list of {kind, key}")
    out = []
    for i, link in enumerate(links):
        kind = link.get("kind") if isinstance(link, dict) else None
        key = str(link.get("key") or "").strip() if isinstance(link, dict) else ""
        if kind not in LINK_KINDS:
            raise ValidationFailed.field(f"links[{i}].kind", f"must be one of {', '.join(LINK_KINDS)}")
        if not key or len(key) > 200:
            raise ValidationFailed.field(f"links[{i}].key", "must be 1 to 200 characters")
        if {"kind": kind, "key": key} not in out:
            out.append({"kind": kind, "key": key})
    return out


async def _prepare(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if values.pop("_system", False):
        return values
    if not principal.can(WRITE):
        raise PermissionDenied(f"Permission {WRITE!r} is required", missing_permission=WRITE)
    for key in SYSTEM_FIELDS:
        values.pop(key, None)
    if "audience" in values and values["audience"] not in AUDIENCES:
        raise ValidationFailed.field("audience", f"must be one of {', '.join(AUDIENCES)}")
    if values.get("category_id") is not None and not await Category.exists().where(
        Category.id == values["category_id"]
    ):
        raise ValidationFailed.field("category_id", f"no category {values['category_id']}")
    if "tags" in values:
        tags = values["tags"] or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 60 for t in tags):
            raise ValidationFailed.field("tags", "must be a list of words (1 to 60 characters each)")
        values["tags"] = sorted({t.strip() for t in tags if t.strip()})
    if values.get("attachment_ids"):
        wanted = [int(a) for a in values["attachment_ids"]]
        seen = await service.visible_ids(ATTACHMENT, principal, wanted)
        missing = [a for a in wanted if a not in seen]
        if missing:
            raise ValidationFailed.field(
                "attachment_ids", f"attachment {missing[0]} does not exist or is not visible to you"
            )
        values["attachment_ids"] = sorted(set(wanted))
    if "links" in values:
        values["links"] = await _check_links(values["links"])
    now = clock.now()
    if existing is None:
        values.update(status="draft", revision=1, author_id=principal.user_id or None)
        values.setdefault("audience", "internal")
        values.setdefault("created_at", now)
    elif any(k in values and values[k] != existing[k] for k in CONTENT):
        values.update(revision=existing["revision"] + 1, status="draft")
    return values


async def _after_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    if existing is None or row["revision"] != existing["revision"]:
        await ArticleVersion.insert(
            ArticleVersion(
                article_id=row["id"],
                revision=row["revision"],
                title=row["title"],
                body=row["body"],
                tags=row["tags"],
                audience=row["audience"],
                category_id=row["category_id"],
                note=str(extras.get("note") or "")[:300],
                saved_by=principal.user_id or None,
                saved_at=clock.now(),
            )
        )
    if "links" in extras:
        before = await links_of([row["id"]])
        await Link.delete().where(Link.article_id == row["id"])
        if extras["links"]:
            await Link.insert(
                *[Link(article_id=row["id"], kind=x["kind"], key=x["key"]) for x in extras["links"]]
            )
        if existing is not None and before.get(row["id"], []) != extras["links"]:
            await audit.record(
                "update",
                ARTICLE.name,
                row["id"],
                {"links": [before.get(row["id"], []), extras["links"]]},
            )


ARTICLE = service.EntitySpec(
    name="knowledge_base.article",
    table=Article,
    permission="knowledge_base",
    visibility=article_visibility,
    order_fields=("id", "updated_at", "title", "views"),
    custom_fields=False,
    prepare=_prepare,
    after_write=_after_write,
    # Reading is decided by the visibility rule (audiences, drafts); a write by ``_prepare``
    # (``knowledge_base.write``) or by the transition (``knowledge_base.publish``).
    permission_overrides={"read": None, "write": None, "delete": PUBLISH},
)


# --------------------------------------------------------------------------- reading


async def links_of(article_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    out: dict[int, list[dict[str, str]]] = {i: [] for i in article_ids}
    if not article_ids:
        return out
    for r in (
        await Link.select(Link.article_id, Link.kind, Link.key)
        .where(Link.article_id.is_in(article_ids))
        .order_by(Link.id)
    ):
        out.setdefault(r["article_id"], []).append({"kind": r["kind"], "key": r["key"]})
    return out


async def present(principal: Principal, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the caller reads of each article: an editor the working copy (rendered) beside the
    published text; a reader the published text only (the working copy and review notes of an
    article under edit are not theirs to read)."""
    editor = is_editor(principal)
    links = await links_of([r["id"] for r in rows])
    out = []
    for r in rows:
        r = dict(r)
        r["links"] = links.get(r["id"], [])
        if editor:
            r["html"] = markdown.render(r["body"])
        else:
            r.update(
                title=r["published_title"],
                body=r["published_body"],
                html=r["published_html"],
                audience=r["published_audience"],
                revision=r["published_revision"],
                status="published",
                review_comment="",
                submitted_by=None,
            )
        out.append(r)
    return out


async def get(principal: Principal, article_id: int, *, count_view: bool = False) -> dict[str, Any]:
    row = await service.get(ARTICLE, principal, article_id)
    if count_view:
        now = clock.now()
        # A read, not a change: counted without an audit entry or a new version.
        await Article.update({Article.views: Article.views + 1, Article.last_viewed_at: now}).where(
            Article.id == article_id
        )
        row["views"] += 1
        row["last_viewed_at"] = now
    return (await present(principal, [row]))[0]


# --------------------------------------------------------------------------- transitions


async def _system(
    principal: Principal, article_id: int, changes: dict[str, Any], version: int | None = None
) -> dict[str, Any]:
    return await service.update(ARTICLE, principal, article_id, {**changes, "_system": True}, version)


async def submit(principal: Principal, article_id: int, version: int | None = None) -> dict[str, Any]:
    """Draft -> review: a publisher approves it or sends it back."""
    principal.require(WRITE)
    async with events.unit_of_work():
        row = await service.get_for_write(ARTICLE, principal, article_id)
        if row["status"] != "draft":
            raise Conflict(_("Only a draft can be submitted for review."), current_status=row["status"])
        return await _system(
            principal, article_id, {"status": "review", "submitted_by": principal.user_id or None}, version
        )


async def publish(principal: Principal, article_id: int, version: int | None = None) -> dict[str, Any]:
    """Review -> published: the working copy becomes what readers see (by a publisher)."""
    principal.require(PUBLISH)
    async with events.unit_of_work():
        row = await service.get_for_write(ARTICLE, principal, article_id)
        if row["status"] != "review":
            raise Conflict(
                _("Only an article in review can be published; submit it for review first."),
                current_status=row["status"],
            )
        now = clock.now()
        return await _system(
            principal,
            article_id,
            {
                "status": "published",
                "published_revision": row["revision"],
                "published_title": row["title"],
                "published_body": row["body"],
                "published_html": markdown.render(row["body"]),
                "published_audience": row["audience"],
                "published_at": now,
                "published_by": principal.user_id or None,
                "review_due_at": now + dt.timedelta(days=30 * REVIEW_MONTHS),
                "review_comment": "",
            },
            version,
        )


async def send_back(
    principal: Principal, article_id: int, comment: str, version: int | None = None
) -> dict[str, Any]:
    """Review -> draft with the publisher's comment."""
    principal.require(PUBLISH)
    async with events.unit_of_work():
        row = await service.get_for_write(ARTICLE, principal, article_id)
        if row["status"] != "review":
            raise Conflict(_("Only an article in review can be sent back."), current_status=row["status"])
        return await _system(
            principal, article_id, {"status": "draft", "review_comment": comment[:5000]}, version
        )


async def withdraw(principal: Principal, article_id: int, version: int | None = None) -> dict[str, Any]:
    """Readers no longer see the article (its versions stay; publish again to bring it back)."""
    principal.require(PUBLISH)
    async with events.unit_of_work():
        row = await service.get_for_write(ARTICLE, principal, article_id)
        if row["published_revision"] is None:
            raise Conflict(_("The article is not published."))
        return await _system(
            principal,
            article_id,
            {
                "published_revision": None,
                "status": "draft" if row["status"] == "published" else row["status"],
            },
            version,
        )


async def versions(principal: Principal, article_id: int) -> list[dict[str, Any]]:
    """Every saved version, newest first (editors)."""
    _require_editor(principal)
    await service.get(ARTICLE, principal, article_id)
    return (
        await ArticleVersion.select()
        .where(ArticleVersion.article_id == article_id)
        .order_by(ArticleVersion.revision, ascending=False)
        .output(load_json=True)
    )


def _require_editor(principal: Principal) -> None:
    if not is_editor(principal):
        raise PermissionDenied(f"Permission {WRITE!r} is required", missing_permission=WRITE)


async def _version(article_id: int, revision: int, field: str) -> dict[str, Any]:
    row = (
        await ArticleVersion.select()
        .where(ArticleVersion.article_id == article_id, ArticleVersion.revision == revision)
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise ValidationFailed.field(field, f"the article has no version {revision}")
    return row


async def restore(
    principal: Principal, article_id: int, revision: int, version: int | None = None
) -> dict[str, Any]:
    """Make version ``revision`` the working copy again, as a new version (nothing is lost)."""
    principal.require(WRITE)
    async with events.unit_of_work():
        await service.get_for_write(ARTICLE, principal, article_id)
        old = await _version(article_id, revision, "revision")
        return await service.update(
            ARTICLE,
            principal,
            article_id,
            {
                "title": old["title"],
                "body": old["body"],
                "tags": old["tags"],
                "audience": old["audience"],
                "category_id": old["category_id"],
                "note": _("Restored from version %(revision)s", revision=revision),
            },
            version,
        )


async def diff(principal: Principal, article_id: int, a: int, b: int) -> dict[str, Any]:
    """The changes from version ``a`` to version ``b``: each changed line of the title, tags,
    audience and body with its line number, and the unified diff."""
    _require_editor(principal)
    await service.get(ARTICLE, principal, article_id)
    old = await _version(article_id, a, "from")
    new = await _version(article_id, b, "to")
    changes: list[dict[str, Any]] = []
    for field in ("title", "audience", "tags"):
        if old[field] != new[field]:
            changes.append({"field": field, "from": old[field], "to": new[field]})
    before = old["body"].splitlines()
    after = new["body"].splitlines()
    lines: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        for i in range(i1, i2):
            lines.append({"op": "removed", "line": i + 1, "text": before[i]})
        for j in range(j1, j2):
            lines.append({"op": "added", "line": j + 1, "text": after[j]})
    unified = "\n".join(difflib.unified_diff(before, after, f"version {a}", f"version {b}", lineterm="", n=2))
    return {
        "article_id": article_id,
        "from": a,
        "to": b,
        "fields": changes,
        "lines": lines,
        "unified": unified,
    }


# --------------------------------------------------------------------------- votes


async def vote(principal: Principal, article_id: int, helpful: bool) -> dict[str, Any]:
    """The reader's "helpful / not helpful" (one per reader; a new vote replaces theirs)."""
    if not principal.user_id:
        raise PermissionDenied("Only a signed-in user votes")
    async with events.unit_of_work():
        await service.get(ARTICLE, principal, article_id)
        previous = (
            await Vote.select(Vote.id, Vote.helpful)
            .where(Vote.article_id == article_id, Vote.user_id == principal.user_id)
            .first()
        )
        now = clock.now()
        if previous is None:
            await Vote.insert(Vote(article_id=article_id, user_id=principal.user_id, helpful=helpful, at=now))
        elif previous["helpful"] != helpful:
            await Vote.update({Vote.helpful: helpful, Vote.at: now}).where(Vote.id == previous["id"])
        counts = {
            True: await Vote.count().where(Vote.article_id == article_id, Vote.helpful == True),  # noqa: E712
            False: await Vote.count().where(Vote.article_id == article_id, Vote.helpful == False),  # noqa: E712
        }
        await Article.update({Article.helpful: counts[True], Article.not_helpful: counts[False]}).where(
            Article.id == article_id
        )
        await audit.record(
            "vote",
            ARTICLE.name,
            article_id,
            {"helpful": [None if previous is None else previous["helpful"], helpful]},
        )
    return {"article_id": article_id, "helpful": counts[True], "not_helpful": counts[False], "yours": helpful}


# --------------------------------------------------------------------------- guides


async def linked(principal: Principal, kind: str, keys: list[str], limit: int = 20) -> list[dict[str, Any]]:
    """Articles linked to any of ``keys`` of ``kind`` that the caller reads (published ones for
    readers; editors see drafts too, marked by their status)."""
    keys = [k for k in keys if k]
    if not keys:
        return []
    ids = Link.select(Link.article_id).where(Link.kind == kind, Link.key.is_in(keys))
    page = await service.list_page(ARTICLE, principal, [Article.id.is_in(ids)], order="title", limit=limit)
    return await present(principal, page.items)


async def category_or_404(category_id: int) -> dict[str, Any]:
    row = await Category.select().where(Category.id == category_id).first()
    if row is None:
        raise NotFound(f"no category {category_id}")
    return row
