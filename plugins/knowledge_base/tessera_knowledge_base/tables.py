"""Piccolo tables of the knowledge base plugin (all prefixed ``knowledge_base_``).

An article keeps two texts: the working copy editors change (``title``, ``body``, every save a
new row in ``knowledge_base_article_version``) and the published text readers see
(``published_*``, copied from the working copy when a publisher approves it). So an edit of a
published article is invisible to readers until it passes review, and no saved text is lost.

Links to other plugins' records are plain keys (``knowledge_base_link``: a pipeline stage key,
a ticket category, a product's SKU or id): the plugin imports neither sales nor service.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Category(Table, tablename="knowledge_base_category"):
    """A node of the category tree (``parent_id`` None: a root)."""

    name = Varchar(length=200)
    parent_id = Integer(null=True, default=None, index=True)
    position = Integer(default=0)
    description = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Article(Table, tablename="knowledge_base_article"):
    title = Varchar(length=300)
    body = Text(default="")
    category_id = ForeignKey(Category, null=True, on_delete=OnDelete.set_null, index=True)
    tags = JSON(default=[])
    #: internal (staff) | service (service agents) | public (may be shown to clients)
    audience = Varchar(length=20, default="internal")
    #: The working copy: draft | review (waiting for a publisher) | published (= the live text)
    status = Varchar(length=20, default="draft", index=True)
    #: Number of the latest saved version of the working copy.
    revision = Integer(default=1)
    #: Attachments (kernel ``attachment`` ids) the body may show (images) or offer.
    attachment_ids = JSON(default=[])
    review_comment = Text(default="")
    submitted_by = Integer(null=True, default=None)
    #: What readers see: the version a publisher approved (None: never published / withdrawn).
    published_revision = Integer(null=True, default=None, index=True)
    published_title = Varchar(length=300, default="")
    published_body = Text(default="")
    published_html = Text(default="")
    published_audience = Varchar(length=20, default="", index=True)
    published_at = Timestamptz(null=True, default=None)
    published_by = Integer(null=True, default=None)
    #: When the article is due for review (set at publication; reopened tickets bring it forward).
    review_due_at = Timestamptz(null=True, default=None, index=True)
    views = Integer(default=0)
    last_viewed_at = Timestamptz(null=True, default=None)
    helpful = Integer(default=0)
    not_helpful = Integer(default=0)
    author_id = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow(), index=True)
    version = Integer(default=1)


class ArticleVersion(Table, tablename="knowledge_base_article_version"):
    """Every saved working copy, never changed or deleted with the article alive."""

    article_id = ForeignKey(Article, on_delete=OnDelete.cascade, index=True)
    revision = Integer()
    title = Varchar(length=300)
    body = Text(default="")
    tags = JSON(default=[])
    audience = Varchar(length=20, default="internal")
    category_id = Integer(null=True, default=None)
    note = Varchar(length=300, default="")
    saved_by = Integer(null=True, default=None)
    saved_at = Timestamptz(default=TimestamptzNow())


class Link(Table, tablename="knowledge_base_link"):
    """An article attached to a record kind of another plugin, by key."""

    article_id = ForeignKey(Article, on_delete=OnDelete.cascade, index=True)
    #: stage (a pipeline stage key, or ``pipeline:stage``) | ticket_category | product (SKU or id)
    kind = Varchar(length=30)
    key = Varchar(length=200)


class Vote(Table, tablename="knowledge_base_vote"):
    """One reader's "helpful / not helpful" on an article (changeable, counted once)."""

    article_id = ForeignKey(Article, on_delete=OnDelete.cascade, index=True)
    user_id = Integer(index=True)
    helpful = Boolean()
    at = Timestamptz(default=TimestamptzNow())


class RuleSet(Table, tablename="knowledge_base_rule_set"):
    """Rules of the expert system for one kind of record, as data (``rules``: JSON validated
    against ``rules.RULES_SCHEMA`` and the facts the kind offers)."""

    name = Varchar(length=200)
    #: party | deal | ticket
    target = Varchar(length=20, index=True)
    description = Text(default="")
    rules = JSON(default=[])
    #: Ties between rules of equal priority go to the set with the higher priority.
    priority = Integer(default=0)
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Recommendation(Table, tablename="knowledge_base_recommendation"):
    """A recommendation given on a record, with its explanation and the person's answer."""

    rule_set_id = ForeignKey(RuleSet, null=True, on_delete=OnDelete.set_null, index=True)
    rule_key = Varchar(length=100, index=True)
    #: party | deal | ticket
    kind = Varchar(length=20)
    record_id = Integer()
    action = JSON(default={})
    explanation = JSON(default={})
    #: pending | accepted | rejected | overridden
    status = Varchar(length=20, default="pending", index=True)
    comment = Text(default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    decided_by = Integer(null=True, default=None)
    decided_at = Timestamptz(null=True, default=None)
    #: The kernel task an accepted "task" recommendation created.
    task_id = Integer(null=True, default=None)


class Tree(Table, tablename="knowledge_base_tree"):
    """A decision tree: questions, answers leading to the next question or a recommendation
    (``definition``; every saved definition is a row of ``knowledge_base_tree_version``)."""

    name = Varchar(length=200)
    description = Text(default="")
    #: Kinds of record it is walked on: ticket, deal, party.
    targets = JSON(default=[])
    definition = JSON(default={})
    revision = Integer(default=1)
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class TreeVersion(Table, tablename="knowledge_base_tree_version"):
    tree_id = ForeignKey(Tree, on_delete=OnDelete.cascade, index=True)
    revision = Integer()
    definition = JSON(default={})
    saved_by = Integer(null=True, default=None)
    saved_at = Timestamptz(default=TimestamptzNow())


class TreeRun(Table, tablename="knowledge_base_tree_run"):
    """A walk through a tree on a record (ticket, deal or party): the path taken, answer by
    answer, and where it ended."""

    tree_id = ForeignKey(Tree, on_delete=OnDelete.cascade, index=True)
    revision = Integer()
    kind = Varchar(length=20)
    record_id = Integer()
    #: The record's party (the client card shows the walks on the client's records).
    party_id = Integer(null=True, default=None, index=True)
    #: [{"node", "question", "answer", "label"}]
    path = JSON(default=[])
    current_node = Varchar(length=100, default="")
    #: The recommendation the walk ended on (a leaf of the tree), or {}.
    outcome = JSON(default={})
    #: in_progress | done
    status = Varchar(length=20, default="in_progress")
    started_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


TABLES: list[type[Table]] = [
    Category,
    Article,
    ArticleVersion,
    Link,
    Vote,
    RuleSet,
    Recommendation,
    Tree,
    TreeVersion,
    TreeRun,
]
