"""Pipelines shipped with the plugin, as workflow process templates (``subject: "sales.deal"``).

Every stage has a time norm (calendar days), required actions, a probability and a
responsible person (the deal owner; the head of the owner's team controls). ``won`` and
``lost`` are final stages; a deal is lost from any stage (the plugin moves it there itself,
see ``services.close_deal``). Names and labels are English msgids of the plugin's catalogue,
shown in the reader's language by :func:`readable` (``i18n.shipped_text``); the Russian names
earlier releases stored are aliases of them, so old template versions read the same. Companies
publish their own pipelines through the workflow API with ``"subject": "sales.deal"``; they
appear in ``GET /api/sales/pipelines`` with their names as typed.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from tessera import i18n
from tessera.i18n import N_

DEAL_SUBJECT = "sales.deal"
DEFAULT_PIPELINE = "sales.b2b"
#: Checklist item ticked automatically when a proposal is generated for the deal.
PROPOSAL_ISSUED = "proposal_issued"

_OWNER = {"owner": True}
_HEAD = {"role": "head", "team": "owner"}


def _stage(
    key: str,
    name: str,
    days: int,
    probability: int,
    required: list[dict[str, Any]],
    nxt: str,
    expected: str,
) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "norm": {"days": days, "calendar": "calendar"},
        "probability": probability,
        "responsible": _OWNER,
        "controller": _HEAD,
        "required": required,
        "expected_result": expected,
        "transitions": [{"to": nxt}, {"to": "won"}, {"to": "lost"}]
        if nxt != "won"
        else [{"to": "won"}, {"to": "lost"}],
    }


def _finals() -> list[dict[str, Any]]:
    return [
        {"key": "won", "name": N_("Won"), "probability": 100, "final": True},
        {"key": "lost", "name": N_("Lost"), "probability": 0, "final": True},
    ]


B2B: dict[str, Any] = {
    "key": DEFAULT_PIPELINE,
    "name": N_("New B2B deal"),
    "description": N_("Qualification, needs, proposal, negotiation, then won or lost."),
    "subject": DEAL_SUBJECT,
    "initial": "qualification",
    "stages": [
        _stage(
            "qualification",
            N_("Qualification"),
            3,
            10,
            [{"key": "first_call", "kind": "activity", "activity_type": "call", "label": N_("First call")}],
            "needs",
            N_("Need, budget, decision maker and timing are known"),
        ),
        _stage(
            "needs",
            N_("Needs analysis"),
            5,
            25,
            [{"key": "needs_recorded", "kind": "checklist", "label": N_("Needs recorded")}],
            "proposal",
            N_("The client's needs are written down"),
        ),
        _stage(
            "proposal",
            N_("Commercial proposal"),
            7,
            50,
            [{"key": PROPOSAL_ISSUED, "kind": "checklist", "label": N_("Proposal issued")}],
            "negotiation",
            N_("The client received the commercial offer"),
        ),
        _stage(
            "negotiation",
            N_("Negotiation"),
            10,
            75,
            [{"key": "terms_agreed", "kind": "checklist", "label": N_("Terms agreed")}],
            "won",
            N_("Terms agreed, contract ready to sign"),
        ),
        *_finals(),
    ],
}

CROSS_SELL: dict[str, Any] = {
    "key": "sales.cross_sell",
    "name": N_("Cross-sell to a current client"),
    "description": N_("Shorter cycle for current clients: offer, agreement, won or lost."),
    "subject": DEAL_SUBJECT,
    "initial": "offer",
    "stages": [
        _stage(
            "offer",
            N_("Offer"),
            5,
            40,
            [{"key": PROPOSAL_ISSUED, "kind": "checklist", "label": N_("Proposal issued")}],
            "agreement",
            N_("The client received the offer"),
        ),
        _stage("agreement", N_("Agreement"), 7, 70, [], "won", N_("Order confirmed")),
        *_finals(),
    ],
}

SHIPPED = [B2B, CROSS_SELL]

#: The Russian names releases before the English msgids stored (template versions already in a
#: database, running deals on them): shown through the same translations.
LEGACY_NAMES = {
    "Выиграна": "Won",
    "Проиграна": "Lost",
    "Новая сделка B2B": "New B2B deal",
    "Квалификация": "Qualification",
    "Первый звонок": "First call",
    "Выявление потребностей": "Needs analysis",
    "Потребности записаны": "Needs recorded",
    "Коммерческое предложение": "Commercial proposal",
    "КП выпущено": "Proposal issued",
    "Переговоры": "Negotiation",
    "Условия согласованы": "Terms agreed",
    "Допродажа действующему клиенту": "Cross-sell to a current client",
    "Предложение": "Offer",
    "Согласование": "Agreement",
}


def _shipped_names() -> set[str]:
    names: set[str] = set()
    for template in SHIPPED:
        names.update((template["name"], template["description"]))
        for stage in template["stages"]:
            names.add(stage["name"])
            if stage.get("expected_result"):
                names.add(stage["expected_result"])
            names.update(r["label"] for r in stage.get("required", []) if r.get("label"))
    return names


i18n.register_shipped_texts(_shipped_names(), LEGACY_NAMES)


def readable(definition: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pipeline definition with the shipped names (template, stages, requirement
    labels, descriptions, expected results) in the reader's language; names an admin typed stay as typed."""
    out = deepcopy(definition)
    for key in ("name", "description"):
        if key in out:
            out[key] = i18n.shipped_text(out[key])
    for stage in out.get("stages", []):
        stage["name"] = i18n.shipped_text(stage.get("name"))
        if stage.get("expected_result"):
            stage["expected_result"] = i18n.shipped_text(stage["expected_result"])
        for requirement in stage.get("required", []):
            if requirement.get("label"):
                requirement["label"] = i18n.shipped_text(requirement["label"])
    return out
