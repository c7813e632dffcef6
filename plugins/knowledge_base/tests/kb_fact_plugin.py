"""A test-only plugin standing in for the marketing plugin's surveys: it answers the knowledge
base's hooks ``tessera_advice_fact_names`` and ``tessera_advice_facts`` (optional hooks: it would
load without the knowledge base) and knows the knowledge base only through them."""

from __future__ import annotations

from typing import Any

from tessera.hookspecs import hookimpl

#: party id -> {question key: answer}, set by the test
ANSWERS: dict[int, dict[str, Any]] = {}
#: (kind, record) of every call of ``tessera_advice_facts``
CALLS: list[tuple[str, dict[str, Any]]] = []


@hookimpl(optionalhook=True)
def tessera_advice_fact_names(kind: str) -> dict[str, str]:
    return {
        "survey.nps.score": "NPS survey: How likely are you to recommend us? (0-10)",
        "survey.nps.comment": "NPS survey: What should we improve?",
    }


@hookimpl(optionalhook=True)
async def tessera_advice_facts(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    CALLS.append((kind, record))
    answers = ANSWERS.get(record.get("party_id") or 0, {})
    return {f"survey.nps.{question}": value for question, value in answers.items()}
