"""Pipelines shipped with the plugin, as workflow process templates (``subject: "sales.deal"``).

Every stage has a time norm (calendar days), required actions, a probability and a
responsible person (the deal owner; the head of the owner's team controls). ``won`` and
``lost`` are final stages; a deal is lost from any stage (the plugin moves it there itself,
see ``services.close_deal``). Companies publish their own pipelines through the workflow API
with ``"subject": "sales.deal"``; they appear in ``GET /api/sales/pipelines``.
"""

from __future__ import annotations

from typing import Any

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
        {"key": "won", "name": "Выиграна", "probability": 100, "final": True},
        {"key": "lost", "name": "Проиграна", "probability": 0, "final": True},
    ]


B2B: dict[str, Any] = {
    "key": DEFAULT_PIPELINE,
    "name": "Новая сделка B2B",
    "description": "Qualification, needs, proposal, negotiation, then won or lost.",
    "subject": DEAL_SUBJECT,
    "initial": "qualification",
    "stages": [
        _stage(
            "qualification",
            "Квалификация",
            3,
            10,
            [{"key": "first_call", "kind": "activity", "activity_type": "call", "label": "Первый звонок"}],
            "needs",
            "Need, budget, decision maker and timing are known",
        ),
        _stage(
            "needs",
            "Выявление потребностей",
            5,
            25,
            [{"key": "needs_recorded", "kind": "checklist", "label": "Потребности записаны"}],
            "proposal",
            "The client's needs are written down",
        ),
        _stage(
            "proposal",
            "Коммерческое предложение",
            7,
            50,
            [{"key": PROPOSAL_ISSUED, "kind": "checklist", "label": "КП выпущено"}],
            "negotiation",
            "The client received the commercial offer",
        ),
        _stage(
            "negotiation",
            "Переговоры",
            10,
            75,
            [{"key": "terms_agreed", "kind": "checklist", "label": "Условия согласованы"}],
            "won",
            "Terms agreed, contract ready to sign",
        ),
        *_finals(),
    ],
}

CROSS_SELL: dict[str, Any] = {
    "key": "sales.cross_sell",
    "name": "Допродажа действующему клиенту",
    "description": "Shorter cycle for current clients: offer, agreement, won or lost.",
    "subject": DEAL_SUBJECT,
    "initial": "offer",
    "stages": [
        _stage(
            "offer",
            "Предложение",
            5,
            40,
            [{"key": PROPOSAL_ISSUED, "kind": "checklist", "label": "КП выпущено"}],
            "agreement",
            "The client received the offer",
        ),
        _stage("agreement", "Согласование", 7, 70, [], "won", "Order confirmed"),
        *_finals(),
    ],
}

SHIPPED = [B2B, CROSS_SELL]
