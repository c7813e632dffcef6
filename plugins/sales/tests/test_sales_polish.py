"""Deals where kernel pages show them: the audit log names the pipeline and the stage, and the
search index holds the words a person reads (in every language), not the stored codes."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sales_helpers import log_call, move, open_deal

pytestmark = pytest.mark.plugins("sales")


def _words(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


async def test_audit_log_shows_pipeline_and_stage_names_not_keys(crm: Any, world: dict[str, Any]) -> None:
    anna = world["anna"]
    deal = await open_deal(crm, anna, world["anna_party"]["id"], title="Аудит сделки")
    await log_call(crm, anna, world["anna_party"]["id"])
    await move(crm, anna, deal["id"])
    await crm.sign_in(world["admin"], language=None)
    r = await crm.client.get("/app/admin/audit")
    assert r.status_code == 200
    words = _words(r.text)
    assert "Аудит сделки" in words
    assert "New B2B deal" in words  # the pipeline's name (English: the admin's language)
    assert "Qualification" in words
    assert "sales.b2b" not in words and "sales.cross_sell" not in words  # the templates' entries
    assert not re.search(r"\bqualification\b", words)  # the process's stage change


async def test_deals_are_indexed_by_words_not_codes(crm: Any, world: dict[str, Any]) -> None:
    from tessera_sales import integration

    deal = await open_deal(crm, world["anna"], world["anna_party"]["id"], source="referral")
    won = {**deal, "stage": "won", "status": "won"}
    [doc] = await integration.search_documents("sales.deal", won)
    body = doc["body"]
    assert "Выиграна" in body and "Won" in body  # the stage's name and the status's words
    assert "Referral" in body and "Рекомендация" in body  # the source in English and Russian
    assert "Анна" in body
    assert not re.search(r"\bwon\b|\breferral\b", body)  # no stored codes
    [fresh] = await integration.search_documents("sales.deal", deal)
    assert "Квалификация" in fresh["body"] and "Кваліфікація" in fresh["body"]
    assert "qualification" not in fresh["body"]
    assert "In progress" in fresh["body"] and not re.search(r"\bopen\b", fresh["body"])
