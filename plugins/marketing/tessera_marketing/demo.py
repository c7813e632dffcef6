"""Demo data: segments (silent key clients, VIP, a frozen list), three campaigns with cost lines
and leads (first touches), a web form with leads distributed round-robin, and the ABC/XYZ
classes of the revenue the demo has (the nightly job keeps them current)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import clock
from tessera.entities import service

from tessera_marketing import classes, forms, services
from tessera_marketing.tables import Campaign

SEGMENTS = [
    (
        "Ключевые клиенты без встреч 90 дней",
        "dynamic",
        {
            "all": [
                {"field": "status", "op": "eq", "value": "current"},
                {"field": "activity", "op": "none_within_days", "value": 90, "type": "meeting"},
            ]
        },
    ),
    ("Потенциальные клиенты", "dynamic", {"all": [{"field": "status", "op": "eq", "value": "potential"}]}),
    ("Класс A (заморожено)", "static", {"all": [{"field": "abc_class", "op": "eq", "value": "A"}]}),
]
CAMPAIGNS = [
    ("Выставка «Связь-2026»", "exhibition", 90, [("Стенд", "180000"), ("Печать буклетов", "25000")]),
    ("Рассылка «Весенние цены»", "email", 45, [("Сервис рассылок", "6000")]),
    (
        "Контекстная реклама",
        "ads",
        30,
        [("Яндекс Директ, март", "40000"), ("Яндекс Директ, апрель", "38000")],
    ),
]


async def load(ctx: Any) -> None:
    if await Campaign.count() > 0 or not ctx.parties or not ctx.managers:
        return
    rnd = ctx.random
    admin = ctx.admin
    today = clock.now().date()
    for name, kind, rules in SEGMENTS:
        await service.create(services.SEGMENT, admin, {"name": name, "kind": kind, "rules": rules})
    campaigns = []
    for name, channel, days_ago, costs in CAMPAIGNS:
        start = today - dt.timedelta(days=days_ago)
        campaign = await service.create(
            services.CAMPAIGN,
            admin,
            {
                "name": name,
                "channel": channel,
                "status": "active",
                "starts_on": start,
                "ends_on": start + dt.timedelta(days=60),
                "budget": sum(Decimal(a) for _, a in costs) + Decimal(10000),
                "expected_leads": 20,
                "expected_revenue": Decimal(1500000),
            },
        )
        campaigns.append(campaign)
        for description, amount in costs:
            await service.create(
                services.COST,
                admin,
                {
                    "campaign_id": campaign["id"],
                    "spent_on": start,
                    "amount": Decimal(amount),
                    "description": description,
                },
            )
    # First touches: some demo clients answered a campaign.
    for party in rnd.sample(list(ctx.parties), min(24, len(ctx.parties))):
        campaign = rnd.choice(campaigns)
        await service.create(
            services.LEAD,
            admin,
            {
                "party_id": party["id"],
                "campaign_id": campaign["id"],
                "assignee_id": party.get("owner_id"),
                "received_at": clock.now() - dt.timedelta(days=rnd.randint(1, 30)),
            },
        )
    form = await service.create(
        forms.FORM,
        admin,
        {
            "key": "contact-us",
            "name": "Обратная связь на сайте",
            "campaign_id": campaigns[2]["id"],
            "fields": {
                "name": "name",
                "company": "company",
                "email": "email",
                "phone": "phone",
                "message": "note",
            },
            "required": ["name"],
            "labels": {
                "name": "Ваше имя",
                "company": "Компания",
                "email": "E-mail",
                "phone": "Телефон",
                "message": "Сообщение",
            },
            "allowed_origins": ["http://localhost:8080"],
            "per_ip_per_hour": 1000,
            "distribution": {"mode": "round_robin", "user_ids": [m["id"] for m in ctx.managers[:3]]},
        },
    )
    for i, (name, company, phone) in enumerate(
        [
            ("Ольга Петрова", "ООО «Север»", "+7 812 555-01-01"),
            ("Тарас Коваль", "ТОВ «Дніпро»", "+380 44 555 0102"),
            ("Игорь Смирнов", "", "8 (495) 555-01-03"),
        ]
    ):
        await forms.submit(
            form["key"],
            {
                "name": name,
                "company": company,
                "phone": phone,
                "email": f"lead{i}@demo.example",
                "message": "Прошу КП",
            },
            "127.0.0.1",
        )
    await classes.recompute()
