"""Demo data: two queues (support on a Moscow 9-18 calendar with Russian holidays, claims on
least-loaded assignment), default SLA policies per priority and a premium policy, agreements
for some clients (one expiring soon), and 120 tickets over the last six weeks in every state:
new, in progress, waiting on the client, resolved, closed with and without a satisfaction
answer, some breached and escalated by the SLA scan."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import clock
from tessera.entities import service

from tessera_service import csat, jobs, services
from tessera_service.tables import Queue

TICKETS = 120
SUBJECTS = [
    ("request", "Не приходят счета на почту"),
    ("request", "Добавить пользователя в личный кабинет"),
    ("incident", "Не работает интеграция с 1С"),
    ("incident", "Ошибка при входе в систему"),
    ("claim", "Поставка пришла не в полном объёме"),
    ("claim", "Повторное списание оплаты"),
    ("request", "Нужен акт сверки за квартал"),
    ("incident", "Медленно открываются отчёты"),
]
CALENDAR = {
    "timezone": "Europe/Moscow",
    "start": "09:00",
    "end": "18:00",
    "weekdays": [0, 1, 2, 3, 4],
    "country": "RU",
}
STATES = ("new", "in_progress", "waiting", "resolved", "closed", "closed_rated")


async def load(ctx: Any, tickets: int | None = None) -> None:
    if tickets is None:  # TICKETS for the default demo, fewer for a smaller organisation
        tickets = max(10, round(TICKETS * getattr(ctx, "scale", 1.0)))
    if await Queue.count() > 0 or not ctx.parties or not ctx.managers:
        return
    rnd = ctx.random
    admin = ctx.admin
    teams = list(ctx.teams.values())
    head = ctx.users.get("head")
    lead_id = head["id"] if head else None
    support = await service.create(
        services.QUEUE,
        admin,
        {"name": "Техподдержка", "team_id": teams[0]["id"], "lead_id": lead_id, "calendar": CALENDAR},
    )
    claims = await service.create(
        services.QUEUE,
        admin,
        {
            "name": "Претензии",
            "team_id": teams[-1]["id"],
            "lead_id": lead_id,
            "calendar": CALENDAR,
            "assignment": "least_loaded",
        },
    )
    for priority, first, resolve in (("p1", 1, 8), ("p2", 4, 16), ("p3", 8, 40), ("p4", 16, 80)):
        await service.create(
            services.POLICY,
            admin,
            {
                "name": f"Стандарт {priority.upper()}",
                "priority": priority,
                "first_response_hours": Decimal(first),
                "resolution_hours": Decimal(resolve),
                "is_default": True,
            },
        )
    premium = await service.create(
        services.POLICY,
        admin,
        {"name": "Премиум", "first_response_hours": Decimal("0.5"), "resolution_hours": Decimal(4)},
    )
    now = clock.now()
    for i, party in enumerate(ctx.parties[:8]):
        await service.create(
            services.AGREEMENT,
            admin,
            {
                "party_id": party["id"],
                "policy_id": premium["id"],
                "name": f"Договор на поддержку №{100 + i}",
                "valid_from": now - dt.timedelta(days=200),
                "valid_until": now + dt.timedelta(days=20 if i == 0 else 300),
                "hours_included": Decimal(40),
            },
        )
    saved = clock._clock
    try:
        for i in range(tickets):
            start = now - dt.timedelta(days=rnd.randint(0, 42), hours=rnd.randint(0, 9))
            frozen = clock.FrozenClock(start)
            clock.set_clock(frozen)
            category, subject = SUBJECTS[i % len(SUBJECTS)]
            party = ctx.parties[rnd.randrange(len(ctx.parties))]
            row = await service.create(
                services.TICKET,
                admin,
                {
                    "party_id": party["id"],
                    "subject": subject,
                    "description": "Клиент сообщил по телефону, подробности в переписке.",
                    "category": category,
                    "priority": rnd.choice(("p1", "p2", "p3", "p3", "p4")),
                    "channel": rnd.choice(services.CHANNELS),
                    "queue_id": (claims if category == "claim" else support)["id"],
                },
            )
            await _play(row, STATES[i % len(STATES)], frozen, rnd, admin, now)
    finally:
        clock.set_clock(saved)
    await jobs.scan(now)


async def _play(
    ticket: dict[str, Any], state: str, frozen: clock.FrozenClock, rnd: Any, admin: Any, now: dt.datetime
) -> None:
    def step(hours: int) -> None:
        frozen.advance(hours=rnd.randint(1, hours))
        if frozen() > now:
            frozen.set(now)

    if state == "new":
        return
    step(6)
    await services.add_message(admin, ticket["id"], "Здравствуйте! Приняли в работу, вернёмся с ответом.")
    if state == "in_progress":
        return
    step(12)
    await services.change_status(admin, ticket["id"], "waiting", "Запросили у клиента скриншоты")
    if state == "waiting":
        return
    step(24)
    await services.add_message(admin, ticket["id"], "Скриншоты во вложении.", "client")
    step(8)
    await services.change_status(admin, ticket["id"], "resolved", "Исправлено")
    if state == "resolved":
        return
    step(48)
    closed = await services.change_status(admin, ticket["id"], "closed")
    if state == "closed_rated":
        token = closed["survey_link"].rsplit("/", 1)[1]
        await csat.answer(token, rnd.choice((3, 4, 5, 5, 5)), "Спасибо, всё быстро.")
