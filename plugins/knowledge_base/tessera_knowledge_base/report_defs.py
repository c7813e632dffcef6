"""Reports of the knowledge base on the kernel's report framework (``tessera_reports``,
docs/analytics.md): listed with the other reports, run and exported through ``/api/reports``
and shown at ``/app/reports/<key>``.

* ``knowledge_base.faster_tickets`` — which articles close tickets faster: for each article used
  on tickets (a recommendation of it accepted on the ticket, or a decision-tree walk on the
  ticket that ended on it — what the knowledge base records), the average resolution time of the
  resolved tickets that used it against that of the resolved tickets of the same categories
  that did not. Only tickets the caller reads are counted and only articles they read listed;
  the sales guides shown on a ticket's page are not recorded, so they do not count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera import clock
from tessera.entities import service
from tessera.i18n import N_
from tessera.permissions import Principal
from tessera.reports import Report, column
from tessera.reports.framework import Params

from tessera_knowledge_base import articles, records
from tessera_knowledge_base.tables import Article, Recommendation, TreeRun

FASTER_COLUMNS = [
    column("article", N_("Article"), "text", dimension=True),
    column("tickets_with", N_("Tickets that used it")),
    column("hours_with", N_("Average resolution with it"), "float", N_("h")),
    column("tickets_without", N_("Tickets of the same categories without it")),
    column("hours_without", N_("Average resolution without it"), "float", N_("h")),
    column("hours_faster", N_("Faster by"), "float", N_("h")),
]


def _dates(params: Params) -> tuple[dt.datetime, dt.datetime]:
    today = clock.now().date()
    date_from = params.get("date_from") or today - dt.timedelta(days=90)
    date_to = params.get("date_to") or today
    return (
        dt.datetime.combine(date_from, dt.time(0), dt.UTC),
        dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(0), dt.UTC),
    )


async def article_uses(ticket_ids: list[int]) -> dict[int, set[int]]:
    """article id -> the tickets (of ``ticket_ids``) that used it: a recommendation of the
    article accepted on the ticket, or a finished tree walk on the ticket that ended on it."""
    uses: dict[int, set[int]] = {}
    if not ticket_ids:
        return uses
    accepted = (
        await Recommendation.select(Recommendation.record_id, Recommendation.action)
        .where(
            Recommendation.kind == "ticket",
            Recommendation.status == "accepted",
            Recommendation.record_id.is_in(ticket_ids),
        )
        .output(load_json=True)
    )
    for r in accepted:
        if r["action"].get("type") == "article" and r["action"].get("article_id"):
            uses.setdefault(int(r["action"]["article_id"]), set()).add(r["record_id"])
    walks = (
        await TreeRun.select(TreeRun.record_id, TreeRun.outcome)
        .where(TreeRun.kind == "ticket", TreeRun.status == "done", TreeRun.record_id.is_in(ticket_ids))
        .output(load_json=True)
    )
    for w in walks:
        if (w["outcome"] or {}).get("article_id"):
            uses.setdefault(int(w["outcome"]["article_id"]), set()).add(w["record_id"])
    return uses


def _average(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


async def _faster(principal: Principal, params: Params) -> dict[str, Any]:
    if not records.enabled("ticket"):
        return {"columns": FASTER_COLUMNS, "rows": []}
    spec = records.spec_of("ticket")
    table = spec.table
    col = table._meta.get_column_by_name
    start, end = _dates(params)
    conditions = [col("resolved_at").is_not_null(), col("created_at") >= start, col("created_at") < end]
    visibility = spec.visibility(principal)
    if visibility is not None:
        conditions.append(visibility)
    tickets = {
        t["id"]: t
        for t in await table.select(col("id"), col("category"), col("created_at"), col("resolved_at")).where(
            *conditions
        )
    }
    hours = {i: (t["resolved_at"] - t["created_at"]).total_seconds() / 3600 for i, t in tickets.items()}
    uses = await article_uses(sorted(tickets))
    readable = await service.visible_ids(articles.ARTICLE, principal, sorted(uses)) if uses else set()
    titles = {
        a["id"]: a["title"] if articles.is_editor(principal) else a["published_title"]
        for a in await Article.select(Article.id, Article.title, Article.published_title).where(
            Article.id.is_in(sorted(readable) or [-1])
        )
    }
    rows = []
    for article_id, used in uses.items():
        if article_id not in titles:
            continue
        categories = {tickets[i]["category"] for i in used}
        without = [i for i, t in tickets.items() if t["category"] in categories and i not in used]
        with_avg = _average([hours[i] for i in used])
        without_avg = _average([hours[i] for i in without])
        faster = None if with_avg is None or without_avg is None else round(without_avg - with_avg, 2)
        values = {
            "article": article_id,
            "tickets_with": len(used),
            "hours_with": with_avg,
            "tickets_without": len(without),
            "hours_without": without_avg,
            "hours_faster": faster,
        }
        rows.append({"values": values, "labels": {"article": titles[article_id]}})
    rows.sort(key=lambda r: (r["values"]["hours_faster"] is None, -(r["values"]["hours_faster"] or 0)))
    return {"columns": FASTER_COLUMNS, "rows": rows}


FASTER_TICKETS = Report(
    key="knowledge_base.faster_tickets",
    title=N_("Articles that close tickets faster"),
    description=N_(
        "Average resolution of the tickets that used an article (a recommendation accepted, a "
        "decision tree that ended on it) against the tickets of the same categories without it."
    ),
    permission=articles.READ,
    run=_faster,
    columns=FASTER_COLUMNS,
)


def reports() -> list[Report]:
    """The reports this installation can run (ticket reports need the service plugin)."""
    return [FASTER_TICKETS] if records.enabled("ticket") else []
