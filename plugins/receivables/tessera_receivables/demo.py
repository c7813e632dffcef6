"""Demo data: a year of monthly invoices and their payments for the demo's clients (roubles,
some in euros), most paid on time, some late, a few partly; clients overdue in every ageing
bucket (1-30, 31-60, 61-90, 90+ days) with collection cases opened by the overdue scan, an open
promise to pay, a prepayment and a credit note."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tessera import clock
from tessera.entities import service

from tessera_receivables import dunning, jobs, services
from tessera_receivables.tables import Invoice

CLIENTS = 24
#: Days overdue of the unpaid invoice of the clients chosen to be late (one per bucket, twice).
LATE = (12, 45, 75, 130, 20, 52, 88, 200)


async def load(ctx: Any, clients: int = CLIENTS) -> None:
    if await Invoice.count() > 0 or not ctx.parties:
        return
    rnd = ctx.random
    admin = ctx.admin
    today = clock.now().date()
    parties = [p for p in ctx.parties if p.get("owner_id")][:clients] or ctx.parties[:clients]
    number = 0
    for i, party in enumerate(parties):
        currency = "EUR" if i % 6 == 5 else "RUB"
        base = (
            Decimal(rnd.randrange(20_000, 400_000))
            if currency == "RUB"
            else Decimal(rnd.randrange(500, 9000))
        )
        late = LATE[i] if i < len(LATE) else None
        for month in range(12, -1, -1):
            issued = today - dt.timedelta(days=30 * month + rnd.randrange(0, 5))
            due = issued + dt.timedelta(days=14)
            if late is not None and month == 1:
                due = today - dt.timedelta(days=late)
                issued = due - dt.timedelta(days=14)
            number += 1
            amount = (base * Decimal(rnd.randrange(70, 130)) / 100).quantize(Decimal("0.01"))
            inv = await service.create(
                services.INVOICE,
                admin,
                {
                    "party_id": party["id"],
                    "number": f"СЧ-{issued.year}-{number:05d}",
                    "issue_date": issued,
                    "due_date": due,
                    "currency": currency,
                    "amount": amount,
                },
            )
            if late is not None and month == 1:
                continue  # the overdue one
            if due >= today and rnd.random() < 0.7:
                continue  # not due yet, not paid yet
            delay = rnd.choice((-3, 0, 0, 2, 5, 12, 30)) if i % 4 else rnd.choice((-5, -2, 0))
            paid_on = min(due + dt.timedelta(days=delay), today)
            share = Decimal(1) if rnd.random() > 0.08 else Decimal("0.5")
            await service.create(
                services.PAYMENT,
                admin,
                {
                    "party_id": party["id"],
                    "paid_on": paid_on,
                    "currency": currency,
                    "amount": (amount * share).quantize(Decimal("0.01")),
                    "reference": f"п/п {rnd.randrange(100, 9999)}",
                    "allocations": [
                        {"invoice_id": inv["id"], "amount": (amount * share).quantize(Decimal("0.01"))}
                    ],
                },
            )
    if len(parties) > 9:
        prepaid = parties[9]
        await service.create(
            services.PAYMENT,
            admin,
            {"party_id": prepaid["id"], "paid_on": today, "amount": Decimal("15000"), "allocate": "none"},
        )
    await jobs.overdue_scan()
    if len(parties) > 1:
        await dunning.save_profile(parties[0]["id"], reliability=95)
        await dunning.record_promise(
            admin,
            parties[1]["id"],
            Decimal("50000"),
            "RUB",
            today + dt.timedelta(days=5),
            "Бухгалтер обещал оплату",
        )
