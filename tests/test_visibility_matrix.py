"""Visibility matrix: every list / search / report / export endpoint of the kernel and the sales
and service plugins x roles (admin, head, manager permissions) x scopes (own, team, all).

The endpoints are enumerated from the app's OpenAPI: every GET route must be classified below,
so a new endpoint fails :func:`test_every_get_route_is_classified` until someone decides how
the matrix covers it. Two properties are checked for each (endpoint, caller):

1. **Markers**: records of two teams carry unique marker strings; no marker of a record the
   caller may not read appears in any response body (items, counts, facets, snippets, CSV).
   Single-record routes answer 404 for those records' ids.
2. **Differential**: records are added that the caller may not read (a manager of the other team,
   then a manager of the caller's own team, including deals on the caller's own client with
   large amounts, won deals and plans); every response of every caller who may not read them
   must be byte-for-byte what it was before, so they are not counted in totals, sums, funnels,
   forecasts, plan actuals, facets or pages either. The callers who may read them must see a
   change (so the check is not vacuous).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from tessera.entities.tables import Role

pytestmark = pytest.mark.plugins("sales", "service", "marketing", "knowledge_base", "receivables")

ROLES = {
    "admin": ["*"],
    "head": [
        "party.*",
        "activity.*",
        "task.*",
        "note.*",
        "search.use",
        "workflow.read",
        "audit.read",
        "report.export",
        "sales.*",
        "service.*",
        "marketing.*",
        "receivables.*",
    ],
    "manager": [
        "party.read",
        "party.write",
        "activity.read",
        "activity.write",
        "task.read",
        "task.write",
        "note.read",
        "note.write",
        "search.use",
        "workflow.read",
        "sales.deal.read",
        "sales.deal.write",
        "service.ticket.read",
        "service.ticket.write",
        "receivables.read",
    ],
}
SCOPES = ("own", "team", "all")
PERIOD = {"date_from": "2026-01-01", "date_to": "2026-12-31"}
YEAR = {"period_start": "2026-01-01", "period_end": "2026-12-31"}

#: GET routes that list, count, search, report or export records: checked for every caller.
#: The value is the query string the matrix sends (placeholders filled per caller).
LISTS: dict[str, dict[str, Any]] = {
    "/api/parties": {"limit": 500},
    "/api/parties/count": {},
    "/api/parties/export": {},
    "/api/contacts": {"limit": 500},
    "/api/contacts/count": {},
    "/api/activities": {"limit": 500},
    "/api/activities/count": {},
    "/api/tasks": {"limit": 500},
    "/api/tasks/count": {},
    "/api/notes": {"limit": 500},
    "/api/notes/count": {},
    "/api/attachments": {"limit": 500},
    "/api/attachments/count": {},
    "/api/audit": {"limit": 500},
    "/api/search": {"q": "zebra", "limit": 100},
    "/api/workflow/instances": {"limit": 500},
    "/api/workflow/deviations": {},
    "/api/workflow/handoffs": {},
    "/api/sales/deals": {"limit": 500},
    "/api/sales/deals/count": {},
    "/api/sales/plans": {},
    "/api/sales/reports/funnel": PERIOD,
    "/api/sales/reports/funnel/deals": {**PERIOD, "stage": "{stage}"},
    "/api/sales/reports/stuck": {},
    "/api/sales/reports/loss-reasons": PERIOD,
    "/api/sales/reports/forecast": PERIOD,
    "/api/sales/reports/forecast/accuracy": {},
    "/api/sales/reports/kpi": PERIOD,
    "/api/sales/reports/cadence": {},
    "/api/sales/reports/cadence/overdue": {},
    "/api/sales/reports/contacts": PERIOD,
    "/api/kpis/panel": {"period": "2026-03"},
    "/api/kpis/load": {},
    "/api/service/tickets": {"limit": 500},
    "/api/service/tickets/count": {},
    "/api/service/agreements": {"limit": 500},
    "/api/service/agreements/count": {},
    "/api/service/agreements/expiring": {"days": 366},
    "/api/service/reports/sla": {**PERIOD, "group_by": "priority"},
    "/api/service/reports/sla/export": {**PERIOD, "group_by": "month"},
    "/api/marketing/leads": {"limit": 500},
    "/api/marketing/leads/count": {},
    "/api/marketing/classes/matrix": {},
    "/api/marketing/reports/return": {},
    "/api/marketing/reports/return/channels": {},
    "/api/marketing/reports/return/churn": {},
    "/api/marketing/competitors/matrix": {"limit": 500},
    "/api/marketing/competitor-products": {"limit": 500},
    "/api/marketing/competitor-products/count": {},
    "/api/marketing/competitor-supplies": {"limit": 500},
    "/api/marketing/competitor-supplies/count": {},
    "/api/receivables/invoices": {"limit": 500},
    "/api/receivables/invoices/count": {},
    "/api/receivables/payments": {"limit": 500},
    "/api/receivables/payments/count": {},
    "/api/receivables/ageing": {"group_by": "client"},
    "/api/receivables/ageing/invoices": {},
    "/api/receivables/overdue-clients": {"mine": "false"},
    "/api/receivables/cases": {},
    "/api/receivables/promises": {},
    "/api/receivables/reports/collection": PERIOD,
    "/api/receivables/reports/collection/export": PERIOD,
}
#: Report exports (``tessera.reports``): the export of each report below, with its parameters,
#: is checked like a list (the path ``/api/reports/{key}/export`` is classified by it).
REPORT_EXPORTS: dict[str, dict[str, Any]] = {
    "activities": {"group_by": ["party", "owner"]},
    "tasks.discipline": {"group_by": ["assignee", "period"]},
    "tasks.handoffs": {},
    "parties.dynamics": {"group_by": ["period", "to_status"]},
    "parties.coverage": {"group_by": ["owner"]},
}
#: GET routes about one record the caller can read, that show related records (client card,
#: plan actuals ...): called for the caller's own records; placeholders name which.
RECORD_VIEWS: dict[str, str] = {
    "/api/parties/{party_id}/card": "party",
    "/api/parties/{party_id}/participants": "party",
    "/api/parties/{party_id}/status-history": "party",
    "/api/sales/plans/{plan_id}/actual": "plan",
    "/api/sales/deals/{record_id}/history": "deal",
    "/api/sales/deals/{record_id}/proposals": "deal",
    "/api/sales/deals/{record_id}/documents": "deal",
    "/api/workflow/instances/{instance_id}/card": "instance",
    "/api/service/tickets/{record_id}/messages": "ticket",
    "/api/marketing/segments/{record_id}/members": "segment",
    "/api/marketing/segments/{record_id}/members/count": "segment",
    "/api/marketing/campaigns/{record_id}/return": "campaign",
    "/api/receivables/parties/{party_id}/statement": "party",
}
#: GET routes returning one record by id: must be 404 for ids of records the caller may not read.
SINGLE: dict[str, str] = {
    "/api/parties/{record_id}": "party",
    "/api/contacts/{record_id}": "contact",
    "/api/activities/{record_id}": "activity",
    "/api/tasks/{record_id}": "task",
    "/api/notes/{record_id}": "note",
    "/api/sales/deals/{record_id}": "deal",
    "/api/parties/{party_id}/card": "party",
    "/api/parties/{party_id}/participants": "party",
    "/api/parties/{party_id}/status-history": "party",
    "/api/tasks/{task_id}/handoffs": "task",
    "/api/sales/deals/{record_id}/history": "deal",
    "/api/sales/deals/{record_id}/proposals": "deal",
    "/api/sales/deals/{record_id}/documents": "deal",
    "/api/service/tickets/{record_id}": "ticket",
    "/api/service/tickets/{record_id}/messages": "ticket",
    "/api/service/agreements/{record_id}": "agreement",
    "/api/marketing/leads/{record_id}": "lead",
    "/api/receivables/parties/{party_id}/statement": "party",
    "/api/receivables/invoices/{record_id}": "receivable_invoice",
    "/api/receivables/invoices/{record_id}/allocations": "receivable_invoice",
    "/api/receivables/payments/{record_id}": "receivable_payment",
    "/api/receivables/payments/{record_id}/allocations": "receivable_payment",
}
#: GET routes that hold no CRM records of other users (the caller's own data, the directory,
#: configuration, catalogues), with the reason they are outside the matrix.
NOT_RECORDS: dict[str, str] = {
    "/api/reports": "report declarations (configuration)",
    "/api/kpis": "KPI definitions (configuration)",
    "/api/dashboards": "own and shared dashboards (tile definitions; no record data)",
    "/api/dashboards/{dashboard_id}/tiles": "tiles run in the caller's visibility; test_reports",
    "/api/report-builder/schedules": "the caller's own report schedules (no record data)",
    "/api/report-builder/schedules/{schedule_id}/deliveries": "delivery log of the caller's own schedule",
    "/api/report-builder/entities": "builder entities and fields (configuration)",
    "/api/report-builder/saved": "saved report definitions (own and shared; no record data); test_reports",
    "/api/report-builder/saved/{report_id}": "one saved definition (no record data); test_reports",
    "/api/report-builder/saved/{report_id}/export": "a saved result in the caller's visibility; test_reports",
    "/api/auth/me": "the caller",
    "/api/auth/tokens": "the caller's tokens",
    "/api/saved-views": "own and team's saved list views (filters only); test_lists",
    "/api/notifications": "the caller's inbox",
    "/api/users": "directory (names, teams, roles) every colleague may see",
    "/api/users/count": "directory",
    "/api/users/{record_id}": "directory",
    "/api/teams": "directory",
    "/api/teams/count": "directory",
    "/api/teams/{record_id}": "directory",
    "/api/roles": "configuration",
    "/api/roles/count": "configuration",
    "/api/roles/{record_id}": "configuration",
    "/api/substitutions": "directory of absences (who stands in for whom)",
    "/api/substitutions/count": "directory of absences",
    "/api/substitutions/{record_id}": "directory of absences",
    "/api/attachments/{record_id}": "attachment metadata; visibility tested in test_notes_attachments",
    "/api/attachments/{attachment_id}/content": "file bytes; tested in test_notes_attachments",
    "/api/custom-fields": "configuration",
    "/api/custom-fields/{entity_type}": "configuration",
    "/api/jobs": "configuration (job.manage)",
    "/api/jobs/runs": "job runs (job.manage), no record data",
    "/api/jobs/background": "job.manage or the creator's own; test_background_jobs",
    "/api/jobs/background/{job_id}": "one background job; visibility tested in test_background_jobs",
    "/api/webhooks": "configuration (webhook.manage); test_webhooks",
    "/api/webhooks/{webhook_id}": "configuration (webhook.manage); test_webhooks",
    "/api/webhooks/{webhook_id}/deliveries": "delivery log (webhook.manage); test_webhooks",
    "/api/mail/triage": "messages from senders no party has (mail.triage), no party records; test_mail_in",
    "/api/mail/mailboxes": "configuration and poll state (mail.manage); test_mail_in",
    "/api/mail/quarantine": "messages that failed to import (mail.manage); test_mail_in",
    "/api/accounting/counterparties": "export in SQL through the party spec's visibility; test_accounting",
    "/api/accounting/documents": "plugins read with the caller's principal (sales: deals); test_accounting",
    "/api/telephony/stream": "the caller's own pop-ups, built with their principal; test_telephony",
    "/api/telephony/me": "the caller's own extension",
    "/api/telephony/extensions": "directory of extensions (user.manage)",
    "/api/plugins": "configuration",
    "/api/permissions": "configuration",
    "/api/health": "liveness",
    "/api/workflow/template-schema": "configuration",
    "/api/workflow/templates": "configuration",
    "/api/workflow/templates/{key}": "configuration",
    "/api/workflow/templates/{key}/versions": "configuration",
    "/api/workflow/instances/{instance_id}": "one instance; covered by its card below",
    "/api/sales/proposals/{proposal_id}": "one proposal; visibility tested in plugins/sales/tests",
    "/api/sales/proposals/{proposal_id}/html": "one proposal",
    "/api/sales/proposals/{proposal_id}/pdf": "one proposal",
    "/api/sales/proposal-templates": "configuration",
    "/api/sales/pipelines": "configuration",
    "/api/sales/loss-reasons": "catalogue",
    "/api/sales/products": "catalogue",
    "/api/sales/price-lists/{list_id}": "catalogue",
    "/api/sales/prices": "catalogue",
    "/api/sales/cadence-rules": "configuration",
    "/api/sales/settings": "configuration",
    "/api/sales/rates": "catalogue (currency rates)",
    "/api/sales/sources": "catalogue (deal sources)",
    "/api/service/queues": "configuration (ticket queues)",
    "/api/service/queues/count": "configuration",
    "/api/service/queues/{record_id}": "configuration",
    "/api/service/sla-policies": "configuration (SLA targets)",
    "/api/service/sla-policies/count": "configuration",
    "/api/service/sla-policies/{record_id}": "configuration",
    "/api/marketing/segments": "configuration (rule sets); their members are record views above",
    "/api/marketing/segments/count": "configuration",
    "/api/marketing/segments/{record_id}": "configuration (one rule set)",
    "/api/marketing/campaigns": "campaign definitions (marketing.campaign.read); return: a record view",
    "/api/marketing/campaigns/count": "campaign definitions",
    "/api/marketing/campaigns/{record_id}": "one campaign definition",
    "/api/marketing/campaign-costs": "cost lines of campaigns, no party data",
    "/api/marketing/campaign-costs/count": "cost lines of campaigns",
    "/api/marketing/campaign-costs/{record_id}": "one cost line",
    "/api/marketing/classes/settings": "configuration (ABC/XYZ thresholds)",
    "/api/marketing/web-forms": "configuration (marketing.form.manage)",
    "/api/marketing/web-forms/count": "configuration",
    "/api/marketing/web-forms/{record_id}": "configuration",
    "/api/marketing/mailings": "mailing definitions (templates, segment), no party data",
    "/api/marketing/mailings/count": "mailing definitions",
    "/api/marketing/mailings/{record_id}": "one mailing definition",
    "/api/marketing/mailings/{record_id}/progress": "counts of one mailing's ledger",
    "/api/marketing/mailings/{record_id}/preview": "the message for one party the caller reads",
    "/api/marketing/surveys": "configuration (questionnaires, marketing.survey.read)",
    "/api/marketing/surveys/count": "configuration",
    "/api/marketing/surveys/{record_id}": "configuration (one questionnaire)",
    "/api/marketing/surveys/{record_id}/responses": "responses on parties the caller reads",
    "/api/marketing/surveys/{record_id}/report": "counts over the parties the caller reads",
    "/api/marketing/survey-links/{link_id}": "public signed survey link (no caller); test_marketing_surveys",
    "/api/marketing/product-groups": "catalogue (product groups and their SKUs)",
    "/api/marketing/product-groups/count": "catalogue",
    "/api/marketing/product-groups/{record_id}": "catalogue",
    "/api/marketing/competitor-products/{record_id}": "one product of a competitor party the caller reads",
    "/api/marketing/competitor-supplies/{record_id}": "one supply of a client the caller reads",
    "/api/knowledge_base/articles": "articles: by audience and publication, not by owner; test_kb_articles",
    "/api/knowledge_base/articles/{article_id}": "one article (drafts: editors only); test_kb_articles",
    "/api/knowledge_base/articles/{article_id}/versions": "an article's versions (editors); test_kb_articles",
    "/api/knowledge_base/articles/{article_id}/diff": "two versions of an article (editors)",
    "/api/knowledge_base/categories": "catalogue (knowledge base categories)",
    "/api/knowledge_base/categories/count": "catalogue",
    "/api/knowledge_base/categories/tree": "catalogue",
    "/api/knowledge_base/categories/{record_id}": "catalogue",
    "/api/knowledge_base/rule-sets": "configuration (knowledge_base.rules)",
    "/api/knowledge_base/rule-sets/count": "configuration",
    "/api/knowledge_base/rule-sets/{record_id}": "configuration",
    "/api/knowledge_base/trees": "configuration (decision trees)",
    "/api/knowledge_base/trees/count": "configuration",
    "/api/knowledge_base/trees/{record_id}": "configuration",
    "/api/knowledge_base/facts": "configuration (the facts rules may name)",
    "/api/knowledge_base/runs": "walks on a record the caller reads (422 otherwise); test_kb_advice",
    "/api/knowledge_base/runs/{run_id}": "one walk, 404 unless the caller reads its record; test_kb_advice",
    "/api/knowledge_base/reports/articles": "articles the caller reads (article visibility), usage counters",
    "/api/knowledge_base/reports/rules": "rule keys and counters (knowledge_base.rules), no record data",
    "/api/knowledge_base/reports/stale": "articles the caller reads (article visibility)",
}


async def test_every_get_route_is_classified(crm: Any) -> None:
    """A new GET endpoint must be put in LISTS / RECORD_VIEWS / SINGLE or, with a reason, in
    NOT_RECORDS: otherwise it would escape the matrix."""
    schema = (await crm.get("/schema/openapi.json")).json()
    routes = {path for path, item in schema["paths"].items() if "get" in item and path.startswith("/api/")}
    classified = (
        set(LISTS) | set(RECORD_VIEWS) | set(SINGLE) | set(NOT_RECORDS) | {"/api/reports/{key}/export"}
    )
    assert routes - classified == set(), "unclassified GET routes: add them to the visibility matrix"
    assert classified - routes == set(), "classified routes that no longer exist"


# --------------------------------------------------------------------------- the data


class World:
    """Users, records and markers of one matrix run."""

    def __init__(self, crm: Any) -> None:
        self.crm = crm
        self.admin: dict[str, Any] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.callers: dict[tuple[str, str], dict[str, Any]] = {}
        #: marker -> the (user id, team id) pairs whose visibility opens it
        self.markers: dict[str, list[tuple[int, int]]] = {}
        #: (kind, id) -> the (user id, team id) pairs whose visibility opens it
        self.records: dict[tuple[str, int], list[tuple[int, int]]] = {}
        #: caller key -> {"party": id, "deal": id, "plan": [ids], "instance": id}
        self.own: dict[tuple[str, str], dict[str, Any]] = {}
        self.stage = ""
        self.loss_reason = 0
        self.policy = 0
        self.campaign: dict[str, Any] = {}

    async def setup(self) -> None:
        crm = self.crm
        self.admin = await crm.user("admin")
        self.teams = {"t1": await crm.team("North"), "t2": await crm.team("South")}
        for role, scope in itertools.product(ROLES, SCOPES):
            name = f"matrix-{role}-{scope}"
            await Role.insert(Role(name=name, description=name, permissions=ROLES[role], scope=scope))
            self.callers[(role, scope)] = await crm.user(name, team_id=self.teams["t1"]["id"], name=name)
        pipeline = (await crm.get("/api/sales/pipelines", self.admin)).json()
        b2b = next(p for p in pipeline if p["key"] == "sales.b2b")
        self.stage = b2b["stages"][0]["key"]
        reasons = (await crm.get("/api/sales/loss-reasons", self.admin)).json()
        self.loss_reason = reasons[0]["id"]
        policy = await self.post(
            "/api/service/sla-policies",
            self.admin,
            {"name": "Matrix", "first_response_hours": "4", "resolution_hours": "16", "is_default": True},
        )
        self.policy = policy["id"]
        segment = await self.post(
            "/api/marketing/segments", self.admin, {"name": "Everyone", "rules": {"all": []}}
        )
        self.campaign = await self.post(
            "/api/marketing/campaigns",
            self.admin,
            {"name": "Matrix", "starts_on": "2026-01-01", "status": "active"},
        )
        for key, caller in self.callers.items():
            party = await self.post("/api/parties", caller, {"name": f"Own client of {caller['name']}"})
            deal = await self.post(
                "/api/sales/deals", caller, {"party_id": party["id"], "title": "own deal", "amount": "10.00"}
            )
            ticket = await self.post(
                "/api/service/tickets", caller, {"party_id": party["id"], "subject": "own ticket"}
            )
            self.own[key] = {
                "party": party["id"],
                "deal": deal["id"],
                "plan": [],
                "instance": None,
                "ticket": ticket["id"],
                "segment": segment["id"],
                "campaign": self.campaign["id"],
            }
            if deal.get("instance_id"):
                self.own[key]["instance"] = deal["instance_id"]
            plan = await self.post(
                "/api/sales/plans",
                self.admin,
                {
                    "period_start": "2026-01-01",
                    "period_end": "2026-12-31",
                    "user_id": caller["id"],
                    "amount": "5",
                },
            )
            self.own[key]["plan"].append(plan["plan_id"])
        team_plan = await self.post(
            "/api/sales/plans",
            self.admin,
            {**YEAR, "team_id": self.teams["t1"]["id"]},
        )
        for key in self.own:
            self.own[key]["plan"].append(team_plan["plan_id"])

    async def post(self, url: str, user: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        r = await self.crm.post(url, user, json=body)
        assert r.status_code in (200, 201), (url, r.status_code, r.text)
        return r.json()  # type: ignore[no-any-return]

    async def book(self, label: str, team: str, on_callers_clients: bool = True) -> dict[str, Any]:
        """A manager of ``team`` (not a caller) with a full book of marked records, plus deals
        on every caller's own client, a won and a lost deal, and a plan."""
        team_id = self.teams[team]["id"]
        owner = await self.crm.user("manager", team_id=team_id, name=f"Owner {label}")

        readers = [(owner["id"], team_id)]

        def mark(kind: str, *also: tuple[int, int]) -> str:
            marker = f"mk{label}{kind}"
            self.markers[marker] = [*readers, *also]
            return f"zebra {marker}"

        def remember(kind: str, row: dict[str, Any], *also: tuple[int, int]) -> dict[str, Any]:
            self.records[(kind, row["id"])] = [*readers, *also]
            return row

        party = remember("party", await self.post("/api/parties", owner, {"name": mark("party")}))
        remember(
            "contact",
            await self.post("/api/contacts", owner, {"party_id": party["id"], "name": mark("contact")}),
        )
        remember(
            "activity",
            await self.post(
                "/api/activities",
                owner,
                {
                    "type": "meeting",
                    "subject": mark("activity"),
                    "agreements": mark("agreement"),
                    "starts_at": "2026-03-02T12:00:00Z",
                    "party_id": party["id"],
                },
            ),
        )
        remember(
            "task",
            await self.post(
                "/api/tasks",
                owner,
                {"title": mark("task"), "party_id": party["id"], "deadline": "2026-03-01T10:00:00Z"},
            ),
        )
        remember(
            "note", await self.post("/api/notes", owner, {"party_id": party["id"], "body": mark("note")})
        )
        ticket = remember(
            "ticket",
            await self.post(
                "/api/service/tickets",
                owner,
                {"party_id": party["id"], "subject": mark("ticket"), "description": mark("ticketbody")},
            ),
        )
        await self.post(f"/api/service/tickets/{ticket['id']}/messages", owner, {"body": mark("ticketreply")})
        remember(
            "agreement",
            await self.post(
                "/api/service/agreements",
                self.admin,
                {
                    "party_id": party["id"],
                    "policy_id": self.policy,
                    "name": mark("sla"),
                    "valid_from": "2026-01-01T00:00:00Z",
                    "valid_until": "2026-06-30T00:00:00Z",
                },
            ),
        )
        invoice = remember(
            "receivable_invoice",
            await self.post(
                "/api/receivables/invoices",
                self.admin,
                {
                    "party_id": party["id"],
                    "number": mark("invoice"),
                    "issue_date": "2026-01-01",
                    "due_date": "2026-02-01",
                    "amount": "1234.00",
                    "notes": mark("invoicenote"),
                },
            ),
        )
        remember(
            "receivable_payment",
            await self.post(
                "/api/receivables/payments",
                self.admin,
                {
                    "party_id": party["id"],
                    "reference": mark("payment"),
                    "paid_on": "2026-02-10",
                    "amount": "34.00",
                    "allocations": [{"invoice_id": invoice["id"], "amount": "34.00"}],
                },
            ),
        )
        await self.post(
            "/api/receivables/promises",
            self.admin,
            {"party_id": party["id"], "amount": "600", "promised_on": "2026-03-20", "notes": mark("promise")},
        )
        amounts = iter(range(1, 100))
        deals = []
        for _ in range(3):
            deals.append(
                remember(
                    "deal",
                    await self.post(
                        "/api/sales/deals",
                        owner,
                        {
                            "party_id": party["id"],
                            "title": mark("deal"),
                            "amount": f"{next(amounts) * 1_000_000}.00",
                            "expected_close": "2026-06-30",
                        },
                    ),
                )
            )
        await self.post(
            "/api/activities",
            owner,
            {
                "type": "call",
                "status": "done",
                "subject": mark("call"),
                "starts_at": "2026-03-02T09:30:00Z",
                "party_id": party["id"],
            },
        )
        # A lead of the matrix campaign on the owner's client: the campaign's return counts it.
        remember(
            "lead",
            await self.post(
                "/api/marketing/leads",
                self.admin,
                {
                    "party_id": party["id"],
                    "campaign_id": self.campaign["id"],
                    "assignee_id": owner["id"],
                    "note": mark("lead"),
                },
            ),
        )
        r = await self.crm.post(f"/api/sales/deals/{deals[1]['id']}/close", owner, json={"outcome": "won"})
        assert r.status_code == 200, r.text
        r = await self.crm.post(
            f"/api/sales/deals/{deals[2]['id']}/close",
            owner,
            json={"outcome": "lost", "loss_reason_id": self.loss_reason, "comment": mark("losscomment")},
        )
        assert r.status_code == 200, r.text
        # Deals of this owner on every caller's own client: the client card, the participants
        # list and the deal counts of that client must not show them to callers who cannot read them.
        # (A client's deals are open to the client's responsible manager, as its activities are.)
        for i, (key, caller) in enumerate(self.callers.items() if on_callers_clients else []):
            client_owner = (caller["id"], caller["team_id"])
            remember(
                "deal",
                await self.post(
                    "/api/sales/deals",
                    self.admin,
                    {
                        "party_id": self.own[key]["party"],
                        "owner_id": owner["id"],
                        "title": mark(f"ondeal{i}x", client_owner),
                        "amount": "77777777.00",
                        "expected_close": "2026-06-30",
                    },
                ),
                client_owner,
            )
        await self.post(
            "/api/sales/plans",
            self.admin,
            {
                "period_start": "2026-01-01",
                "period_end": "2026-12-31",
                "user_id": owner["id"],
                "amount": "999",
            },
        )
        return owner

    def may_read(self, key: tuple[str, str], readers: list[tuple[int, int]]) -> bool:
        _role, scope = key
        caller = self.callers[key]
        if scope == "all":
            return True
        if scope == "team":
            return any(team_id == caller["team_id"] for _, team_id in readers)
        return any(user_id == caller["id"] for user_id, _ in readers)

    def urls(self, key: tuple[str, str]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for path, params in LISTS.items():
            out.append((path, {k: (self.stage if v == "{stage}" else v) for k, v in params.items()}))
        for report, report_params in REPORT_EXPORTS.items():
            out.append((f"/api/reports/{report}/export", {"params": json.dumps(report_params)}))
        own = self.own[key]
        for path, kind in RECORD_VIEWS.items():
            ids = own[kind] if isinstance(own[kind], list) else [own[kind]]
            for value in ids:
                if value is None:
                    continue
                name = path[path.index("{") + 1 : path.index("}")]
                out.append((path.replace("{" + name + "}", str(value)), {}))
        return out


async def _snapshot(world: World, key: tuple[str, str]) -> dict[str, tuple[int, str]]:
    caller = world.callers[key]
    out = {}
    for url, params in world.urls(key):
        r = await world.crm.get(url, caller, params=params)
        assert r.status_code < 500, (key, url, r.text)
        out[url] = (r.status_code, r.text)
    return out


def _marker_leaks(world: World, key: tuple[str, str], snapshot: dict[str, tuple[int, str]]) -> list[str]:
    hidden = [m for m, owner in world.markers.items() if not world.may_read(key, owner)]
    return [f"{key}: {url} shows {m}" for url, (_s, body) in snapshot.items() for m in hidden if m in body]


async def _single_leaks(world: World, key: tuple[str, str]) -> list[str]:
    caller = world.callers[key]
    leaks = []
    for (kind, record_id), owner in world.records.items():
        if world.may_read(key, owner):
            continue
        for path, path_kind in SINGLE.items():
            if path_kind != kind:
                continue
            name = path[path.index("{") + 1 : path.index("}")]
            url = path.replace("{" + name + "}", str(record_id))
            r = await world.crm.get(url, caller)
            if r.status_code not in (403, 404):
                leaks.append(f"{key}: {url} answers {r.status_code} for a record it may not read")
    return leaks


#: Responses the differential cannot compare as they are: the audit log records the matrix's
#: own exports (its markers are still checked); search ranks by corpus statistics (BM25), so
#: scores move when any document is added, while the hits, totals and facets must not.
NOT_DIFFERENTIAL = {"/api/audit"}


def _comparable(url: str, body: str) -> str:
    if url != "/api/search":
        return body
    data = json.loads(body)

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "score"}
        if isinstance(value, list):
            return sorted((strip(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return value

    return json.dumps(strip(data), sort_keys=True)


def _differences(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> list[str]:
    changed = []
    for url, (status, body) in before.items():
        if url in NOT_DIFFERENTIAL:
            continue
        other_status, other_body = after[url]
        if status != other_status or _comparable(url, body) != _comparable(url, other_body):
            changed.append(url)
    return changed


async def test_visibility_matrix(crm: Any, frozen_clock: Any) -> None:
    world = World(crm)
    await world.setup()
    await world.book("north", "t1")
    await world.book("south", "t2")
    problems: list[str] = []

    # 1. Markers and single records, for every caller.
    before = {key: await _snapshot(world, key) for key in world.callers}
    for key in world.callers:
        problems += _marker_leaks(world, key, before[key])
        problems += await _single_leaks(world, key)
    # Not vacuous: readable markers do show up.
    for key in world.callers:
        parties = before[key]["/api/parties"][1]
        for marker in ("mknorthparty", "mksouthparty"):
            if world.may_read(key, world.markers[marker]):
                assert marker in parties, (key, marker)

    # 2. Differential: a book the other team's manager owns, then one of the caller's own team.
    for label, team in (("west", "t2"), ("east", "t1")):
        owner = await world.book(label, team, on_callers_clients=False)
        after = {key: await _snapshot(world, key) for key in world.callers}
        for key in world.callers:
            readable = world.may_read(key, [(owner["id"], world.teams[team]["id"])])
            changed = _differences(before[key], after[key])
            if not readable:
                problems += [
                    f"{key}: {url} changed when unreadable records of {label} were added" for url in changed
                ]
            else:
                must_change = {"/api/parties", "/api/sales/deals/count", "/api/sales/reports/forecast"}
                assert must_change <= set(changed), (key, label, must_change - set(changed))
            problems += _marker_leaks(world, key, after[key])
        before = after

    assert not problems, f"{len(problems)} visibility leak(s):\n" + "\n".join(sorted(set(problems)))


# --------------------------------------------------------------------------- write routes
#
# Reading is not writing (docs/security.md): a user who reads a record only through a relation
# to it — a meeting's participant, their substitute, a colleague handed a task on the client
# (and that colleague's head), a process stage's responsible or controller, the client's
# manager for the records others hold on the client — may not change, reassign, detach or
# delete it, nor widen who reads it: every write route answers 403 and the record stays as it was.

#: (method, path, kind of the record the path's id names, bodies that would change it).
#: ``{me}`` is the caller's id, ``{mine}`` a party the caller owns, ``{stage}`` the deal's next stage.
RECORD_WRITES: list[tuple[str, str, str, list[dict[str, Any] | None]]] = [
    ("PATCH", "/api/parties/{id}", "party", [{"name": "Taken over"}, {"owner_id": "{me}"}]),
    ("DELETE", "/api/parties/{id}", "party", [None]),
    ("PATCH", "/api/contacts/{id}", "contact", [{"name": "Renamed"}, {"party_id": "{mine}"}]),
    ("DELETE", "/api/contacts/{id}", "contact", [None]),
    (
        "PATCH",
        "/api/activities/{id}",
        "activity",
        [
            {"subject": "Hijacked"},
            {"party_id": None},
            {"owner_id": "{me}"},
            {"participant_user_ids": ["{me}"]},
        ],
    ),
    ("DELETE", "/api/activities/{id}", "activity", [None]),
    ("PATCH", "/api/tasks/{id}", "task", [{"title": "Mine"}, {"party_id": None}, {"controller_id": "{me}"}]),
    ("DELETE", "/api/tasks/{id}", "task", [None]),
    ("POST", "/api/tasks/{id}/complete", "task", [{"result": "done by someone else"}]),
    ("POST", "/api/tasks/{id}/handoff", "task", [{"to_user_id": "{me}"}]),
    ("POST", "/api/tasks/{id}/accept", "task", [{}]),
    ("PATCH", "/api/notes/{id}", "note", [{"body": "rewritten"}]),
    ("DELETE", "/api/notes/{id}", "note", [None]),
    ("DELETE", "/api/attachments/{id}", "attachment", [None]),
    ("PATCH", "/api/sales/deals/{id}", "deal", [{"title": "Mine"}, {"owner_id": "{me}"}, {"amount": "1.00"}]),
    ("DELETE", "/api/sales/deals/{id}", "deal", [None]),
    ("POST", "/api/sales/deals/{id}/checklist", "deal", [{"item": "anything"}]),
    ("POST", "/api/sales/deals/{id}/close", "deal", [{"outcome": "lost", "loss_reason_id": "{reason}"}]),
    ("POST", "/api/sales/deals/{id}/documents", "deal", [{"kind": "invoice"}]),
    ("POST", "/api/sales/deals/{id}/move", "deal", [{"to": "{stage}"}]),
    ("POST", "/api/sales/deals/{id}/proposals", "deal", [{}]),
    ("PATCH", "/api/workflow/instances/{id}", "instance", [{"title": "Mine"}]),
    ("POST", "/api/workflow/instances/{id}/advance", "instance", [{}]),
    ("POST", "/api/workflow/instances/{id}/checklist", "instance", [{"item": "anything"}]),
    ("POST", "/api/workflow/instances/{id}/reassign", "instance", [{"user_id": "{me}"}]),
    ("POST", "/api/workflow/instances/{id}/resume", "instance", [{}]),
    ("POST", "/api/workflow/instances/{id}/stop", "instance", [{}]),
    ("POST", "/api/workflow/instances/{id}/suspend", "instance", [{}]),
    ("PATCH", "/api/service/tickets/{id}", "ticket", [{"subject": "Mine"}, {"description": "rewritten"}]),
    ("DELETE", "/api/service/tickets/{id}", "ticket", [None]),
    ("POST", "/api/service/tickets/{id}/assign", "ticket", [{"user_id": "{me}"}, {}]),
    ("POST", "/api/service/tickets/{id}/messages", "ticket", [{"body": "a reply in their name"}]),
    ("POST", "/api/service/tickets/{id}/status", "ticket", [{"status": "closed"}]),
]
#: Creates that add to a party: adding a contact changes the client, a task shares it further.
CREATES_ON_PARTY: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/contacts"): {"name": "Planted contact"},
    ("POST", "/api/tasks"): {"title": "Keeps the client open to me"},
}
#: Other write routes, with the reason they are outside this check.
OTHER_WRITES: dict[tuple[str, str], str] = {
    (
        "POST",
        "/api/knowledge_base/articles",
    ): "articles are the knowledge base's, not a user's records (knowledge_base.write)",
    (
        "PATCH",
        "/api/knowledge_base/articles/{article_id}",
    ): "knowledge_base.write; readers get 404/403; test_kb_articles",
    ("DELETE", "/api/knowledge_base/articles/{article_id}"): "knowledge_base.publish",
    ("POST", "/api/knowledge_base/articles/{article_id}/submit"): "knowledge_base.write; test_kb_articles",
    ("POST", "/api/knowledge_base/articles/{article_id}/publish"): "knowledge_base.publish; test_kb_articles",
    ("POST", "/api/knowledge_base/articles/{article_id}/send-back"): "knowledge_base.publish",
    (
        "POST",
        "/api/knowledge_base/articles/{article_id}/withdraw",
    ): "knowledge_base.publish; test_kb_articles",
    ("POST", "/api/knowledge_base/articles/{article_id}/restore"): "knowledge_base.write; test_kb_articles",
    (
        "POST",
        "/api/knowledge_base/articles/{article_id}/vote",
    ): "the reader's own vote on an article they read",
    ("POST", "/api/knowledge_base/preview"): "renders Markdown, stores nothing",
    ("POST", "/api/knowledge_base/categories"): "catalogue (knowledge_base.write)",
    ("PATCH", "/api/knowledge_base/categories/{record_id}"): "catalogue",
    ("DELETE", "/api/knowledge_base/categories/{record_id}"): "catalogue",
    ("POST", "/api/knowledge_base/rule-sets"): "configuration (knowledge_base.rules)",
    ("PATCH", "/api/knowledge_base/rule-sets/{record_id}"): "configuration",
    ("DELETE", "/api/knowledge_base/rule-sets/{record_id}"): "configuration",
    (
        "POST",
        "/api/knowledge_base/rule-sets/{record_id}/test",
    ): "evaluates on a record the caller reads, stores nothing",
    (
        "POST",
        "/api/knowledge_base/advise",
    ): "recommendations on a record the caller reads (422 otherwise); test_kb_advice",
    (
        "POST",
        "/api/knowledge_base/recommendations/{recommendation_id}/feedback",
    ): "404 unless the caller reads the record; test_kb_advice",
    ("POST", "/api/knowledge_base/trees"): "configuration (knowledge_base.rules)",
    ("PATCH", "/api/knowledge_base/trees/{record_id}"): "configuration",
    ("DELETE", "/api/knowledge_base/trees/{record_id}"): "configuration",
    (
        "POST",
        "/api/knowledge_base/trees/{record_id}/runs",
    ): "a walk on a record the caller reads (422 otherwise)",
    ("POST", "/api/knowledge_base/runs/{run_id}/answer"): "404 unless the caller reads the walk's record",
    (
        "POST",
        "/api/reports/{key}/run",
    ): "a read: the report's rows within the caller's visibility (test_reports; exports here)",
    ("POST", "/api/reports/{key}/drill"): "a read: ids of visible records only (test_reports)",
    ("POST", "/api/report-builder/run"): "a read within the caller's visibility (test_reports)",
    ("POST", "/api/report-builder/drill"): "a read: ids of visible records only (test_reports)",
    ("POST", "/api/report-builder/saved"): "creates the caller's own saved definition",
    ("POST", "/api/report-builder/saved/{report_id}/schedules"): "the owner's own schedule; test_reports",
    ("DELETE", "/api/report-builder/schedules/{schedule_id}"): "the owner's own schedule",
    ("POST", "/api/kpis"): "configuration (report.kpi.manage)",
    ("POST", "/api/dashboards"): "the caller's own dashboard",
    (
        "POST",
        "/api/dashboards/{dashboard_id}/tiles",
    ): "a tile on a dashboard the caller may edit; test_reports",
    ("PUT", "/api/kpis/{kpi_id}/targets"): "configuration (report.kpi.manage)",
    ("PUT", "/api/report-builder/saved/{report_id}"): "the owner's own saved definition",
    ("DELETE", "/api/report-builder/saved/{report_id}"): "the owner's own saved definition",
    (
        "POST",
        "/api/report-builder/saved/{report_id}/run",
    ): "a read within the caller's visibility (test_reports)",
    ("POST", "/api/parties"): "creates the caller's own record",
    ("POST", "/api/activities"): "logging work on a client one reads is allowed (what the task needs)",
    ("POST", "/api/notes"): "a note on a client one reads is allowed; the note is the author's",
    ("POST", "/api/attachments/upload"): "like notes",
    ("POST", "/api/sales/deals"): "a deal on a client one reads is the caller's own deal",
    ("POST", "/api/workflow/instances"): "starts a process on a record the caller may read",
    ("POST", "/api/workflow/instances/{instance_id}/migrate"): "workflow.manage only",
    ("POST", "/api/workflow/templates"): "configuration (workflow.manage)",
    ("POST", "/api/workflow/templates/{key}/versions"): "configuration (workflow.manage)",
    ("POST", "/api/auth/login"): "the caller",
    ("POST", "/api/auth/logout"): "the caller",
    ("POST", "/api/auth/tokens"): "the caller's tokens",
    ("DELETE", "/api/auth/tokens/{token_id}"): "the caller's tokens",
    ("POST", "/api/auth/password"): "the caller's password",
    ("PATCH", "/api/auth/me"): "the caller's own profile (language)",
    ("POST", "/api/auth/password-reset/request"): "the caller's password (by e-mail)",
    ("POST", "/api/auth/password-reset"): "the caller's password (reset token)",
    ("POST", "/api/users/{user_id}/password-reset"): "directory (user.manage)",
    ("POST", "/api/notifications/{notification_id}/read"): "the caller's inbox",
    ("PUT", "/api/custom-fields/{entity_type}"): "configuration",
    ("PUT", "/api/jobs/{name}"): "configuration (job.manage)",
    ("POST", "/api/jobs/background/{job_id}/cancel"): "background jobs (job.manage), no record data",
    ("POST", "/api/jobs/background/{job_id}/retry"): "background jobs (job.manage), no record data",
    ("POST", "/api/webhooks"): "webhook subscriptions (webhook.manage), no record data; test_webhooks",
    ("PATCH", "/api/webhooks/{webhook_id}"): "webhook subscriptions (webhook.manage); test_webhooks",
    ("DELETE", "/api/webhooks/{webhook_id}"): "webhook subscriptions (webhook.manage); test_webhooks",
    ("POST", "/api/webhooks/{webhook_id}/test"): "ping to a subscription (webhook.manage); test_webhooks",
    (
        "POST",
        "/api/mail/triage/{message_id}/create-party",
    ): "creates the caller's own party (mail.triage); test_mail_in",
    (
        "POST",
        "/api/mail/triage/{message_id}/link",
    ): "needs write access to the party (get_for_write: 404 otherwise); test_mail_in",
    (
        "POST",
        "/api/mail/triage/{message_id}/ignore",
    ): "triage of unknown senders (mail.triage), no party data; test_mail_in",
    (
        "POST",
        "/api/mail/quarantine/{message_id}/retry",
    ): "re-import of a quarantined message (mail.manage); test_mail_in",
    (
        "POST",
        "/api/telephony/events",
    ): "cloud PBX webhook (shared secret), returns only the call; test_telephony",
    ("POST", "/api/telephony/calls"): "click-to-call: the party must be visible (404); test_telephony",
    ("PUT", "/api/telephony/me"): "the caller's own extension",
    ("PUT", "/api/telephony/extensions/{user_id}"): "directory of extensions (user.manage)",
    ("POST", "/api/roles"): "configuration (user.manage)",
    ("PATCH", "/api/roles/{record_id}"): "configuration (user.manage)",
    ("DELETE", "/api/roles/{record_id}"): "configuration (user.manage)",
    ("POST", "/api/teams"): "directory (user.manage)",
    ("PATCH", "/api/teams/{record_id}"): "directory (user.manage)",
    ("DELETE", "/api/teams/{record_id}"): "directory (user.manage)",
    ("POST", "/api/users"): "directory (user.manage)",
    ("PATCH", "/api/users/{record_id}"): "directory (user.manage)",
    ("DELETE", "/api/users/{record_id}"): "directory (user.manage)",
    ("POST", "/api/substitutions"): "directory (user.manage)",
    ("PATCH", "/api/substitutions/{record_id}"): "directory (user.manage)",
    ("DELETE", "/api/substitutions/{record_id}"): "directory (user.manage)",
    ("POST", "/api/sales/cadence-rules"): "configuration",
    ("POST", "/api/sales/loss-reasons"): "catalogue",
    ("PATCH", "/api/sales/loss-reasons/{reason_id}"): "catalogue",
    ("POST", "/api/sales/plans"): "configuration (sales.plan.manage)",
    ("POST", "/api/sales/price-lists"): "catalogue",
    ("POST", "/api/sales/products"): "catalogue",
    ("POST", "/api/sales/proposal-templates"): "configuration",
    ("PUT", "/api/sales/proposal-templates/{template_id}"): "configuration",
    ("POST", "/api/sales/rates"): "catalogue",
    ("DELETE", "/api/sales/rates/{rate_id}"): "catalogue",
    ("PUT", "/api/sales/settings"): "configuration",
    ("POST", "/api/saved-views"): "the caller's own saved list view (filters, no records); test_lists",
    ("DELETE", "/api/saved-views/{view_id}"): "the caller's own saved view (others': 403/404); test_lists",
    ("POST", "/api/service/tickets"): "a ticket on a client one reads (the client's request), like a deal",
    ("POST", "/api/service/queues"): "configuration (service.ticket.manage)",
    ("PATCH", "/api/service/queues/{record_id}"): "configuration (service.ticket.manage)",
    ("DELETE", "/api/service/queues/{record_id}"): "configuration (service.ticket.manage)",
    ("POST", "/api/service/sla-policies"): "configuration (service.ticket.manage)",
    ("PATCH", "/api/service/sla-policies/{record_id}"): "configuration (service.ticket.manage)",
    ("DELETE", "/api/service/sla-policies/{record_id}"): "configuration (service.ticket.manage)",
    ("POST", "/api/service/agreements"): "service.ticket.manage; on a client the caller reads",
    ("PATCH", "/api/service/agreements/{record_id}"): "service.ticket.manage only",
    ("DELETE", "/api/service/agreements/{record_id}"): "service.ticket.manage only",
    ("POST", "/api/marketing/segments"): "configuration (marketing.segment.manage)",
    ("PATCH", "/api/marketing/segments/{record_id}"): "configuration (marketing.segment.manage)",
    ("DELETE", "/api/marketing/segments/{record_id}"): "configuration (marketing.segment.manage)",
    ("POST", "/api/marketing/segments/preview"): "reads only (a live count under the caller's visibility)",
    ("POST", "/api/marketing/segments/{record_id}/freeze"): "stores the parties the caller reads",
    ("POST", "/api/marketing/campaigns"): "configuration (marketing.campaign.manage)",
    ("PATCH", "/api/marketing/campaigns/{record_id}"): "configuration (marketing.campaign.manage)",
    ("DELETE", "/api/marketing/campaigns/{record_id}"): "configuration (marketing.campaign.manage)",
    ("POST", "/api/marketing/campaign-costs"): "configuration (marketing.campaign.manage)",
    ("PATCH", "/api/marketing/campaign-costs/{record_id}"): "configuration (marketing.campaign.manage)",
    ("DELETE", "/api/marketing/campaign-costs/{record_id}"): "configuration (marketing.campaign.manage)",
    ("POST", "/api/marketing/leads"): "a lead on a client one reads, like a deal",
    ("PATCH", "/api/marketing/leads/{record_id}"): "writers of the lead's party or readers of its assignee "
    "(services.lead_write_visibility); the default roles give relation readers no marketing permission",
    ("DELETE", "/api/marketing/leads/{record_id}"): "marketing.lead.manage; like PATCH",
    ("PUT", "/api/marketing/classes/settings"): "configuration (marketing.settings.manage)",
    ("POST", "/api/marketing/classes/recompute"): "marketing.settings.manage; classifies every client",
    ("POST", "/api/marketing/web-forms"): "configuration (marketing.form.manage)",
    ("PATCH", "/api/marketing/web-forms/{record_id}"): "configuration (marketing.form.manage)",
    ("DELETE", "/api/marketing/web-forms/{record_id}"): "configuration (marketing.form.manage)",
    ("POST", "/api/marketing/forms/{form_key}"): "public web form (no caller); plugins/marketing tests",
    ("POST", "/api/marketing/mailings"): "marketing.mailing.send; a draft",
    ("PATCH", "/api/marketing/mailings/{record_id}"): "marketing.mailing.send; a draft",
    ("DELETE", "/api/marketing/mailings/{record_id}"): "marketing.mailing.send",
    ("POST", "/api/marketing/mailings/{record_id}/send"): "sends to the segment's parties the caller reads",
    ("POST", "/api/marketing/unsubscribe"): "public signed one-click link (no caller)",
    ("POST", "/api/marketing/surveys"): "configuration (marketing.survey.manage)",
    ("PATCH", "/api/marketing/surveys/{record_id}"): "configuration (marketing.survey.manage)",
    ("DELETE", "/api/marketing/surveys/{record_id}"): "configuration (marketing.survey.manage)",
    ("POST", "/api/marketing/surveys/{record_id}/responses"): "answers on a party the caller reads "
    "(422 naming party_id otherwise); test_marketing_surveys",
    ("POST", "/api/marketing/surveys/{record_id}/links"): "a signed link for a party the caller reads",
    ("POST", "/api/marketing/survey-links/{link_id}"): "public signed survey link (no caller), once",
    ("POST", "/api/marketing/bounces"): "bounce webhook with a shared secret (no caller)",
    ("POST", "/api/marketing/product-groups"): "configuration (marketing.competitor.manage)",
    ("PATCH", "/api/marketing/product-groups/{record_id}"): "configuration (marketing.competitor.manage)",
    ("DELETE", "/api/marketing/product-groups/{record_id}"): "configuration (marketing.competitor.manage)",
    (
        "POST",
        "/api/marketing/competitor-products",
    ): "marketing.competitor.manage; a competitor the caller reads",
    ("PATCH", "/api/marketing/competitor-products/{record_id}"): "marketing.competitor.manage; like POST",
    ("DELETE", "/api/marketing/competitor-products/{record_id}"): "marketing.competitor.manage; like POST",
    (
        "POST",
        "/api/marketing/competitor-supplies",
    ): "on a client the caller reads (marketing.competitor.write)",
    ("PATCH", "/api/marketing/competitor-supplies/{record_id}"): "on a client the caller reads",
    ("DELETE", "/api/marketing/competitor-supplies/{record_id}"): "on a client the caller reads",
    (
        "POST",
        "/api/accounting/counterparties",
    ): "accounting.exchange + party.write; updates only writable parties",
    (
        "POST",
        "/api/mail/quarantine/{message_id}/ignore",
    ): "quarantined messages (mail.manage); test_mail_admin",
    ("POST", "/api/imports/parties"): "import job (party.write); owners and duplicates in the caller's scope",
    ("POST", "/api/imports/activities"): "import job (activity.write); parties matched in the caller's scope",
    ("POST", "/api/imports/tasks"): "import job (task.write); parties matched in the caller's scope",
    # Receivables are read and written only by readers of the client's owner or team (no
    # relation readers); writes need receivables.write / .collect / .manage; plugins/receivables/tests.
    ("POST", "/api/receivables/invoices"): "receivables.write; on a client the caller reads",
    ("PATCH", "/api/receivables/invoices/{record_id}"): "receivables.write; owner/team readers only",
    ("DELETE", "/api/receivables/invoices/{record_id}"): "receivables.manage; owner/team readers only",
    ("POST", "/api/receivables/payments"): "receivables.write; on a client the caller reads",
    ("PATCH", "/api/receivables/payments/{record_id}"): "receivables.write; owner/team readers only",
    ("DELETE", "/api/receivables/payments/{record_id}"): "receivables.manage; owner/team readers only",
    ("POST", "/api/receivables/payments/{record_id}/allocate"): "receivables.write; owner/team readers only",
    ("POST", "/api/receivables/import"): "receivables.write; rows on clients the caller reads",
    ("POST", "/api/receivables/promises"): "receivables.collect; on a client the caller reads",
    ("POST", "/api/receivables/parties/{party_id}/bounce"): "receivables.collect; a client the caller reads",
    ("POST", "/api/receivables/overdue-scan"): "receivables.manage (the scheduled job, run by hand)",
}


def _openapi_path(path: str) -> str:
    names = {
        "/api/tasks/{id}/": "task_id",
        "/api/workflow/instances/{id}": "instance_id",
    }
    for prefix, name in names.items():
        if path.startswith(prefix):
            return path.replace("{id}", "{" + name + "}")
    return path.replace("{id}", "{record_id}")


async def test_every_write_route_is_classified(crm: Any) -> None:
    schema = (await crm.get("/schema/openapi.json")).json()
    routes = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in ("post", "put", "patch", "delete")
    }
    classified = (
        {(m, _openapi_path(p)) for m, p, _k, _b in RECORD_WRITES} | set(CREATES_ON_PARTY) | set(OTHER_WRITES)
    )
    assert routes - classified == set(), "unclassified write routes: add them to the write matrix"
    assert classified - routes == set(), "classified write routes that no longer exist"


SHARING_TEMPLATE = {
    "key": "matrix.review",
    "name": "Review",
    "subject": "party",
    "stages": [
        {"key": "review", "name": "Review", "responsible": {"user": 0}, "controller": {"user": 0}},
        {"key": "done", "name": "Done", "final": True},
    ],
}


async def test_relation_readers_cannot_write(crm: Any, frozen_clock: Any) -> None:
    from datetime import timedelta

    post = World(crm).post
    admin = await crm.user("admin")
    north, south = await crm.team("North"), await crm.team("South")
    head_role = ROLES["head"]
    await Role.insert(Role(name="matrix-head", description="head", permissions=head_role, scope="team"))
    owner = await crm.user("manager", team_id=north["id"], name="Owner")
    readers: dict[str, dict[str, Any]] = {}

    def reader(name: str) -> Any:
        async def make(role: str = "manager", team: dict[str, Any] | None = south) -> dict[str, Any]:
            readers[name] = await crm.user(role, team_id=team["id"] if team else None, name=name)
            return readers[name]

        return make

    # The owner's client, with a contact and a meeting two people of the other team attend.
    party = await post("/api/parties", owner, {"name": "Shared client"})
    contact = await post("/api/contacts", owner, {"party_id": party["id"], "name": "Their contact"})
    participant = await reader("meeting participant")()
    participant_head = await reader("participant head")("matrix-head", None)
    meeting = await post(
        "/api/activities",
        owner,
        {
            "type": "meeting",
            "subject": "Review",
            "starts_at": "2026-03-03T10:00:00Z",
            "party_id": party["id"],
            "participant_user_ids": [participant["id"], participant_head["id"]],
        },
    )
    substitute = await reader("participant's substitute")(team=None)
    await post(
        "/api/substitutions",
        admin,
        {
            "absent_user_id": participant["id"],
            "substitute_id": substitute["id"],
            "starts_at": (frozen_clock() - timedelta(hours=1)).isoformat(),
            "ends_at": (frozen_clock() + timedelta(days=3)).isoformat(),
        },
    )
    # A task on the client handed to a colleague of the other team (whose head sees it too).
    handed = await reader("handed a task")()
    await reader("head of the handed")("matrix-head")
    task = await post("/api/tasks", owner, {"title": "Call them", "party_id": party["id"]})
    r = await crm.post(f"/api/tasks/{task['id']}/handoff", owner, json={"to_user_id": handed["id"]})
    assert r.status_code == 200, r.text
    # A process stage on the client: its responsible and controller.
    responsible = await reader("stage responsible")()
    controller = await reader("stage controller")()
    template = json.loads(json.dumps(SHARING_TEMPLATE))
    template["stages"][0]["responsible"]["user"] = responsible["id"]
    template["stages"][0]["controller"]["user"] = controller["id"]
    await post("/api/workflow/templates", admin, {"definition": template})
    await post(
        "/api/workflow/instances",
        owner,
        {"template": "matrix.review", "subject_id": party["id"], "title": "Review"},
    )
    # The client's manager reads what others hold on their client.
    client_manager = await reader("client's manager")()
    own_client = await post("/api/parties", client_manager, {"name": "Client of the client manager"})
    on_client = {"party_id": own_client["id"]}
    others = {
        "activity": await post(
            "/api/activities",
            admin,
            {
                "type": "call",
                "subject": "Owner's call",
                "starts_at": "2026-03-02T10:00:00Z",
                "owner_id": owner["id"],
            }
            | on_client,
        ),
        "task": await post(
            "/api/tasks", admin, {"title": "Owner's task", "assignee_id": owner["id"]} | on_client
        ),
        "note": await post("/api/notes", admin, {"body": "Admin's note"} | on_client),
        "deal": await post(
            "/api/sales/deals",
            admin,
            {"title": "Owner's deal", "owner_id": owner["id"], "amount": "5.00"} | on_client,
        ),
        "ticket": await post(
            "/api/service/tickets",
            admin,
            {"subject": "Owner's ticket", "assignee_id": owner["id"]} | on_client,
        ),
    }
    r = await crm.post(
        "/api/attachments/upload",
        admin,
        files={"file": ("terms.txt", b"terms", "text/plain")},
        data={"party_id": str(own_client["id"])},
    )
    assert r.status_code == 201, r.text
    others["attachment"] = r.json()
    others["instance"] = {"id": others["deal"]["instance_id"]}
    pipeline = (await crm.get("/api/sales/pipelines", admin)).json()
    stages = next(p for p in pipeline if p["key"] == others["deal"]["pipeline"])["stages"]
    reasons = (await crm.get("/api/sales/loss-reasons", admin)).json()

    # Who reads what only through a relation.
    relation_reads: dict[str, dict[str, int]] = {
        "meeting participant": {"activity": meeting["id"]},
        "participant head": {"activity": meeting["id"]},
        "participant's substitute": {"activity": meeting["id"]},
        "handed a task": {"party": party["id"], "contact": contact["id"]},
        "head of the handed": {"party": party["id"], "contact": contact["id"]},
        "stage responsible": {"party": party["id"], "contact": contact["id"]},
        "stage controller": {"party": party["id"], "contact": contact["id"]},
        "client's manager": {kind: row["id"] for kind, row in others.items()},
    }
    single = {
        "party": "/api/parties/{}",
        "contact": "/api/contacts/{}",
        "activity": "/api/activities/{}",
        "task": "/api/tasks/{}",
        "note": "/api/notes/{}",
        "attachment": "/api/attachments/{}",
        "deal": "/api/sales/deals/{}",
        "instance": "/api/workflow/instances/{}",
        "ticket": "/api/service/tickets/{}",
    }

    async def state(kind: str, record_id: int) -> str:
        r = await crm.get(single[kind].format(record_id), admin)
        assert r.status_code == 200, (kind, r.text)
        return r.text

    problems: list[str] = []
    checked = 0
    for name, records in relation_reads.items():
        user = readers[name]
        mine = await post("/api/parties", user, {"name": f"Own client of {name}"})
        values = {
            "{me}": user["id"],
            "{mine}": mine["id"],
            "{reason}": reasons[0]["id"],
            "{stage}": stages[1]["key"],
        }

        def fill(body: Any, values: dict[str, int] = values) -> Any:
            if isinstance(body, dict):
                return {k: fill(v, values) for k, v in body.items()}
            if isinstance(body, list):
                return [fill(v, values) for v in body]
            return values.get(body, body) if isinstance(body, str) else body

        for kind, record_id in records.items():
            r = await crm.get(single[kind].format(record_id), user)
            assert r.status_code == 200, (name, kind, "must read it for the check to mean anything", r.text)
            before = await state(kind, record_id)
            for method, path, route_kind, bodies in RECORD_WRITES:
                if route_kind != kind:
                    continue
                for body in bodies:
                    url = path.replace("{id}", str(record_id))
                    kwargs = {} if body is None else {"json": fill(body)}
                    r = await crm.call(method, url, user, **kwargs)
                    checked += 1
                    if r.status_code != 403:
                        problems.append(f"{name}: {method} {url} {body} answered {r.status_code}")
            if await state(kind, record_id) != before:
                problems.append(f"{name}: {kind} {record_id} changed")
            if kind == "party":
                for (method, path), body in CREATES_ON_PARTY.items():
                    r = await crm.call(method, path, user, json=body | {"party_id": record_id})
                    checked += 1
                    if r.status_code != 403:
                        problems.append(
                            f"{name}: {method} {path} on party {record_id} answered {r.status_code}"
                        )
    assert checked > 60
    assert not problems, f"{len(problems)} write(s) through a read-only relation:\n" + "\n".join(problems)
