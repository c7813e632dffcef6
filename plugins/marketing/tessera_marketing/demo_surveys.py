"""Demo data of surveys: a client-satisfaction questionnaire answered by a dozen demo clients
on calls and by one through its signed link."""

from __future__ import annotations

from typing import Any

from tessera import db
from tessera.entities import service

from tessera_marketing import surveys
from tessera_marketing.tables import Survey

QUESTIONS = [
    {
        "key": "score",
        "text": "Насколько вероятно, что вы порекомендуете нас коллегам? (0–10)",
        "type": "scale",
        "min": 0,
        "max": 10,
        "required": True,
    },
    {
        "key": "source",
        "text": "Откуда вы о нас узнали?",
        "type": "choice",
        "options": [
            {"key": "expo", "label": "Выставка"},
            {"key": "search", "label": "Поиск в интернете"},
            {"key": "referral", "label": "Рекомендация"},
        ],
    },
    {
        "key": "interests",
        "text": "Что вам интересно?",
        "type": "choices",
        "options": [
            {"key": "cable", "label": "Кабель"},
            {"key": "fibre", "label": "Оптика"},
            {"key": "service", "label": "Монтаж и сервис"},
        ],
    },
    {"key": "competitor", "text": "Покупаете ли вы что-то у конкурентов?", "type": "yes_no"},
    {"key": "comment", "text": "Что нам улучшить?", "type": "text"},
]


async def load(ctx: Any) -> None:
    if await Survey.count() > 0 or not ctx.parties:
        return
    rnd = ctx.random
    survey = await service.create(
        surveys.SURVEY,
        ctx.admin,
        {"key": "nps", "name": "Удовлетворённость клиентов", "questions": QUESTIONS},
    )
    for party in rnd.sample(list(ctx.parties), min(12, len(ctx.parties))):
        answers: dict[str, Any] = {
            "score": rnd.randint(4, 10),
            "source": rnd.choice(["expo", "search", "referral"]),
            "interests": rnd.sample(["cable", "fibre", "service"], rnd.randint(1, 2)),
            "competitor": rnd.random() < 0.4,
        }
        if rnd.random() < 0.3:
            answers["comment"] = rnd.choice(["Быстрее отгрузка", "Больше оптики на складе", "Всё хорошо"])
        async with db.transaction():
            await surveys.record_response(survey, party["id"], answers, "call", party.get("owner_id"))
    link = await surveys.create_link(
        ctx.admin, survey["id"], ctx.parties[0]["id"], 14, "http://localhost:8080"
    )
    await surveys.answer_by_link(link["id"], link["token"], {"score": 9, "source": "referral"})
