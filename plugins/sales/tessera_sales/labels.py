"""Human words for the sales plugin's codes shown on kernel pages (search result groups,
notifications, the audit viewer's kinds of records, actions and fields, the shipped pipelines'
stages), registered when the plugin is loaded: the kernel's pages read them with
``tessera.i18n.label`` whatever page of the plugin was opened first. The words are msgids of
the plugin's catalogue (``N_``; ``python scripts/i18n.py`` extracts them)."""

from __future__ import annotations

from tessera import i18n
from tessera.i18n import N_

from tessera_sales.pipelines import SHIPPED

STATUSES = {"open": N_("In progress"), "won": N_("Won"), "lost": N_("Lost")}
SOURCES = {
    "web": N_("Website"),
    "call": N_("Incoming call"),
    "email": N_("E-mail"),
    "referral": N_("Referral"),
    "campaign": N_("Campaign"),
    "partner": N_("Partner"),
    "exhibition": N_("Exhibition"),
    "other": N_("Other"),
}
i18n.register_labels("sales.deal.status", STATUSES)
i18n.register_labels("sales.deal.opened.status", STATUSES)
i18n.register_labels("sales.source", SOURCES)
i18n.register_labels("sales.deal.source", SOURCES)
#: The shipped pipelines by key (an audit entry's "Pipeline: ..."): their names are msgids.
i18n.register_labels("sales.deal.pipeline", {t["key"]: t["name"] for t in SHIPPED if t.get("name")})
i18n.register_labels("search.type", {"deal": N_("Deals"), "proposal": N_("Proposals")})
i18n.register_labels(
    "notification.kind",
    {
        "sales.cadence_overdue": N_("Clients past their contact norm"),
        "sales.deal_stuck": N_("Deal past its stage norm"),
    },
)

i18n.register_labels(
    "audit.entity",
    {
        "sales.deal": N_("Deal"),
        "sales.product": N_("Product"),
        "sales.price_list": N_("Price list"),
        "sales.loss_reason": N_("Loss reason"),
        "sales.cadence_rule": N_("Contact-cadence norm"),
        "sales.plan": N_("Sales plan"),
        "sales.proposal": N_("Proposal"),
        "sales.proposal_template": N_("Proposal template"),
        "sales.exchange_rate": N_("Exchange rate"),
        "sales.setting": N_("Sales setting"),
    },
)
i18n.register_labels(
    "audit.action",
    {
        "stage": N_("Moved to a stage"),
        "checklist": N_("Checklist item ticked"),
        "close": N_("Closed"),
        "proposal": N_("Proposal issued"),
        "document": N_("Document issued"),
    },
)
i18n.register_labels(
    "field",
    {
        "stage": N_("Stage"),
        "pipeline": N_("Pipeline"),
        "amount": N_("Amount"),
        "currency": N_("Currency"),
        "expected_close": N_("Expected close"),
        "probability": N_("Probability"),
        "loss_reason_id": N_("Loss reason"),
        "base_currency": N_("Base currency"),
        "order": N_("Order"),
        "invoice": N_("Invoice"),
        "shipment": N_("Shipment"),
        "act": N_("Act"),
    },
)
#: The stages of the shipped pipelines by key (an audit entry's stage change, a report's
#: column): their names are the pipelines' own msgids.
i18n.register_labels(
    "sales.deal.stage",
    {stage["key"]: stage["name"] for template in SHIPPED for stage in template["stages"]},
)
