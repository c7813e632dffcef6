"""Demo data: a product catalogue with price lists, cadence norms, plans, and 200 deals spread
over the demo managers and the last five months, moved through the B2B pipeline the way
people do it (calls, checklists, proposals, wins and losses with reasons)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from rich.progress import Progress
from tessera import clock
from tessera.entities import activities, service
from tessera.permissions import build_principal

from tessera_sales import proposals, services
from tessera_sales.tables import CadenceRule, LossReason, Price, PriceList, Product, SalesPlan

PRODUCTS = [
    ("CRM-LIC", "Лицензия CRM, 1 пользователь", Decimal("12000")),
    ("CRM-IMPL", "Внедрение (день консультанта)", Decimal("45000")),
    ("CRM-TRAIN", "Обучение персонала", Decimal("30000")),
    ("CRM-SUP", "Техподдержка, месяц", Decimal("15000")),
    ("CRM-INT", "Интеграция с 1С", Decimal("90000")),
]
DEALS = 200


async def load(ctx: Any, deals: int | None = None) -> None:
    if deals is None:  # DEALS for the default demo, fewer for a smaller organisation
        deals = max(10, round(DEALS * getattr(ctx, "scale", 1.0)))
    if await Product.count() > 0:
        return
    rnd = ctx.random
    managers = ctx.managers
    if not managers or not ctx.parties:
        return
    product_ids = []
    for sku, name, _ in PRODUCTS:
        rows = await Product.insert(Product(sku=sku, name=name, unit="шт")).returning(Product.id)
        product_ids.append(rows[0]["id"])
    now = clock.now()
    list_id = (
        await PriceList.insert(
            PriceList(
                name="Базовый прайс 2026", currency="RUB", valid_from=(now - dt.timedelta(days=365)).date()
            )
        ).returning(PriceList.id)
    )[0]["id"]
    await Price.insert(
        *[
            Price(price_list_id=list_id, product_id=pid, price=p[2])
            for pid, p in zip(product_ids, PRODUCTS, strict=True)
        ]
    )
    vip = (
        await PriceList.insert(
            PriceList(
                name="Партнёрский прайс",
                currency="RUB",
                client_group="partner",
                discount_pct=Decimal("10"),
                valid_from=(now - dt.timedelta(days=365)).date(),
            )
        ).returning(PriceList.id)
    )[0]["id"]
    await Price.insert(
        *[
            Price(price_list_id=vip, product_id=pid, price=p[2] * Decimal("0.95"))
            for pid, p in zip(product_ids, PRODUCTS, strict=True)
        ]
    )
    await CadenceRule.insert(
        CadenceRule(
            name="Клиенты категории A: звонок или встреча раз в 14 дней", category="A", every_days=14
        ),
        CadenceRule(
            name="Текущие клиенты: контакт раз в 30 дней",
            every_days=30,
            activity_types=["call", "meeting", "email"],
        ),
    )
    first = now.date().replace(day=1)
    await SalesPlan.insert(
        *[
            SalesPlan(
                user_id=m["id"],
                period_start=first,
                period_end=(first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1),
                pipeline="sales.b2b",
                currency="RUB",
                amount=Decimal("1500000"),
                stage_targets={"proposal": 6, "won": 3},
            )
            for m in managers
        ]
    )
    await services.ensure_loss_reasons()
    reasons = [r["id"] for r in await LossReason.select(LossReason.id)]
    saved = clock._clock
    try:
        with Progress() as progress:
            step = progress.add_task("Demo: sales pipeline deals", total=deals)
            for i in range(deals):
                party = ctx.parties[i % len(ctx.parties)]
                owner_id = party["owner_id"] or managers[i % len(managers)]["id"]
                start = now - dt.timedelta(days=rnd.randint(1, 150), hours=rnd.randint(0, 8))
                frozen = clock.FrozenClock(start)
                clock.set_clock(frozen)
                await _one_deal(ctx, i, party, owner_id, product_ids, reasons, frozen, now)
                progress.advance(step)
    finally:
        clock.set_clock(saved)


async def _one_deal(
    ctx: Any,
    i: int,
    party: dict[str, Any],
    owner_id: int,
    product_ids: list[int],
    reasons: list[int],
    frozen: clock.FrozenClock,
    now: dt.datetime,
) -> None:
    rnd = ctx.random
    principal = await build_principal(owner_id)
    lines = [
        {"product_id": pid, "quantity": rnd.choice([1, 2, 5, 10, 20])}
        for pid in rnd.sample(product_ids, rnd.randint(1, 3))
    ]
    deal = await service.create(
        services.DEAL,
        principal,
        {
            "title": f"{party['name']}: CRM #{i + 1}",
            "party_id": party["id"],
            "owner_id": owner_id,
            "currency": "RUB",
            "source": rnd.choice(["web", "call", "referral", "exhibition", "partner"]),
            "expected_close": (frozen.current + dt.timedelta(days=rnd.randint(20, 90))).date(),
            "lines": lines,
        },
    )
    deal_id = deal["id"]
    # How far it gets: 0 qualification ... 4 won; lost somewhere on the way for some.
    target = rnd.choices([0, 1, 2, 3, 4], weights=[15, 15, 20, 15, 35])[0]
    lose = target < 4 and rnd.random() < 0.6
    norms = {"qualification": 3, "needs": 5, "proposal": 7, "negotiation": 10}
    for step, stage in enumerate(["qualification", "needs", "proposal", "negotiation"]):
        if step >= target:
            break
        frozen.advance(days=rnd.uniform(0.3, norms[stage] * 1.6))
        if frozen.current >= now:
            return
        if stage == "qualification":
            await service.create(
                activities.ACTIVITY,
                principal,
                {
                    "type": "call",
                    "subject": "Первый звонок",
                    "status": "done",
                    "starts_at": frozen.current,
                    "party_id": party["id"],
                    "custom": {},
                },
            )
        elif stage == "needs":
            await services.tick(principal, deal_id, "needs_recorded")
        elif stage == "proposal":
            await proposals.create_proposal(principal, deal_id)
        else:
            await services.tick(principal, deal_id, "terms_agreed")
        await services.move_deal(principal, deal_id, to="won" if stage == "negotiation" else None)
    if lose:
        frozen.advance(days=rnd.uniform(0.5, 6))
        if frozen.current < now:
            await services.close_deal(
                principal,
                deal_id,
                "lost",
                loss_reason_id=rnd.choice(reasons),
                comment="Демо: клиент отказался",
            )
