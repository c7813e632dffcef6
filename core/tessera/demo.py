"""Demo data for ``tessera demo``: a small sales organisation with clients, contacts, a
history of calls, meetings and letters, planned work and tasks handed between people.
Plugins add theirs through ``tessera_demo_data(ctx)``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pluggy
from rich.progress import Progress

from tessera import auth, clock
from tessera.entities import activities, admin, notes, parties, service, tasks
from tessera.entities.tables import CrmUser, Role
from tessera.permissions import Principal, build_principal, ensure_default_roles
from tessera.plugins import call_each_async

DEMO_PASSWORD = "demo-password"
ADMIN_EMAIL = "admin@example.com"

COMPANIES = [
    "ООО «Альфа-Строй»",
    "АО «СеверТрансЛогистик»",
    "ТОВ «Дніпро Агро»",
    "ООО «Вектор Плюс»",
    "ЗАО «Медтехника»",
    "Acme Industrial Ltd",
    "Northwind Traders",
    "ООО «ТехноПарк»",
    "ПАО «Уралхимпром»",
    "ТОВ «Київ Енерго Сервіс»",
    "ООО «Омега Фарм»",
    "Blue Harbor Shipping",
    "ООО «Гранит»",
    "АО «Сибирские сети»",
    "ООО «Континент Трейд»",
    "ТОВ «Львівська кава»",
    "Contoso Retail",
    "ООО «Премьер Офис»",
    "ООО «Балтийский берег»",
    "ИП Соколов А. В.",
    "ООО «Восток Металл»",
    "Globex Corporation",
    "ООО «Светлый дом»",
    "АО «Ростех Снаб»",
]
PEOPLE = [
    "Иван Петров",
    "Мария Смирнова",
    "Олег Коваленко",
    "Анна Ковальчук",
    "Дмитрий Орлов",
    "Elena Brown",
    "John Carter",
    "Сергей Волков",
    "Наталья Лебедева",
    "Андрій Шевченко",
    "Ольга Морозова",
    "Павел Никитин",
    "Ірина Бондаренко",
    "Peter Novak",
    "Алексей Фёдоров",
]
SUBJECTS = {
    "call": [
        "Звонок: уточнение потребности",
        "Follow-up call on the proposal",
        "Звонок по договору поставки",
    ],
    "meeting": [
        "Встреча: презентация решения",
        "Meeting with the purchasing department",
        "Переговоры по цене",
    ],
    "email": ["Письмо с коммерческим предложением", "Sent the price list", "Ответ на претензию"],
    "letter": ["Официальное письмо о продлении договора", "Гарантийное письмо"],
    "seminar": ["Участие в семинаре «Новые технологии склада»", "Webinar: product update"],
    "claim": ["Претензия: задержка поставки", "Complaint about invoice errors"],
}
AGREEMENTS = [
    "Договорились выслать договор до пятницы",
    "Клиент согласовал скидку 5 % при оплате в течение 10 дней",
    "Agreed to schedule a demo for the technical team",
    "Подготовить счёт на предоплату 50 %",
    "Перезвонить после утверждения бюджета",
    "",
]


@dataclass
class DemoContext:
    random: random.Random
    admin: Principal
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    parties: list[dict[str, Any]] = field(default_factory=list)
    managers: list[dict[str, Any]] = field(default_factory=list)
    #: The organisation's size against the default demo (``parties_count / 60``): plugins size
    #: their own demo records by it (``round(DEALS * ctx.scale)``), so a small demo (tests, the
    #: plugin contract's checks) stays small whatever plugins are enabled.
    scale: float = 1.0


def _phone(rnd: random.Random, area: str) -> str:
    return f"+7 {area} {rnd.randint(100, 999)}-{rnd.randint(10, 99)}-{rnd.randint(10, 99)}"


async def ensure_admin(email: str, name: str, password: str) -> int:
    await ensure_default_roles()
    existing = await CrmUser.select(CrmUser.id).where(CrmUser.email == email).first()
    if existing:
        return int(existing["id"])
    role = await Role.select(Role.id).where(Role.name == "admin").first()
    assert role is not None
    system = system_principal()
    row = await service.create(
        admin.USER, system, {"email": email, "name": name, "password": password, "roles": ["admin"]}
    )
    return int(row["id"])


def system_principal() -> Principal:
    """Acts for the CLI and demo loader: every permission, every record."""
    return Principal(
        user_id=0, name="system", email="", permissions=frozenset({"*"}), scope="all", user_ids=None
    )


#: Clients in the default demo organisation (``DemoContext.scale`` is measured against it).
DEFAULT_PARTIES = 60


async def load(
    pm: pluggy.PluginManager, seed: int = 7, managers: int = 10, parties_count: int = DEFAULT_PARTIES
) -> DemoContext:
    """Create the demo organisation (idempotent: does nothing when the demo admin has data)."""
    rnd = random.Random(seed)
    admin_id = await ensure_admin(ADMIN_EMAIL, "Demo Admin", DEMO_PASSWORD)
    admin_p = await build_principal(admin_id)
    ctx = DemoContext(random=rnd, admin=admin_p, scale=parties_count / DEFAULT_PARTIES)
    if await parties.Party.count() > 0:
        # The kernel's demo data is there already (an earlier run); a plugin enabled since
        # then still gets the chance to add its own (plugins skip what they already loaded).
        await _reload_context(ctx)
        await call_each_async(pm, "tessera_demo_data", ctx=ctx)
        return ctx
    now = clock.now()
    with Progress() as progress:
        step = progress.add_task("Demo: users and teams", total=2 + managers)
        for team_name in ("Отдел продаж Москва", "Sales Kyiv"):
            ctx.teams[team_name] = await service.create(admin.TEAM, admin_p, {"name": team_name})
            progress.advance(step)
        team_ids = [t["id"] for t in ctx.teams.values()]
        head = await service.create(
            admin.USER,
            admin_p,
            {
                "email": "head@example.com",
                "name": "Head of Sales",
                "password": DEMO_PASSWORD,
                "roles": ["head"],
                "team_id": team_ids[0],
            },
        )
        ctx.users["head"] = head
        for i in range(managers):
            user = await service.create(
                admin.USER,
                admin_p,
                {
                    "email": f"manager{i + 1}@example.com",
                    "name": PEOPLE[i % len(PEOPLE)],
                    "password": DEMO_PASSWORD,
                    "roles": ["manager"],
                    "team_id": team_ids[i % 2],
                },
            )
            ctx.users[user["email"]] = user
            ctx.managers.append(user)
            progress.advance(step)

        step = progress.add_task("Demo: clients and history", total=parties_count)
        for i in range(parties_count):
            owner = ctx.managers[i % len(ctx.managers)]
            name = COMPANIES[i % len(COMPANIES)] + (
                "" if i < len(COMPANIES) else f" #{i // len(COMPANIES) + 1}"
            )
            party = await service.create(
                parties.PARTY,
                admin_p,
                {
                    "name": name,
                    "kind": "organisation",
                    "relations": [rnd.choice(["client", "client", "client", "partner", "supplier"])],
                    "status": rnd.choice(["potential", "current", "current", "former"]),
                    "owner_id": owner["id"],
                    "phones": [{"number": _phone(rnd, "495")}],
                    "emails": [{"address": f"info{i}@example.com"}],
                    "tags": rnd.sample(
                        ["vip", "wholesale", "retail", "export", "tender"], k=rnd.randint(0, 2)
                    ),
                },
            )
            ctx.parties.append(party)
            contact = await service.create(
                parties.CONTACT,
                admin_p,
                {
                    "party_id": party["id"],
                    "name": rnd.choice(PEOPLE),
                    "position": rnd.choice(["Директор", "Закупщик", "CFO"]),
                    "phones": [{"number": _phone(rnd, "916")}],
                },
            )
            for _ in range(rnd.randint(2, 6)):
                kind = rnd.choice(list(SUBJECTS))
                when = now - timedelta(days=rnd.randint(-20, 200), hours=rnd.randint(0, 8))
                await service.create(
                    activities.ACTIVITY,
                    admin_p,
                    {
                        "type": kind,
                        "subject": rnd.choice(SUBJECTS[kind]),
                        "starts_at": when,
                        "status": "planned" if when > now else "done",
                        "party_id": party["id"],
                        "contact_id": contact["id"],
                        "owner_id": owner["id"],
                        "duration_minutes": rnd.choice([5, 15, 30, 60]),
                        "outcome": ""
                        if when > now
                        else rnd.choice(["Клиент заинтересован", "Нужна повторная встреча", "Interested"]),
                        "agreements": "" if when > now else rnd.choice(AGREEMENTS),
                        "participant_user_ids": [owner["id"]],
                    },
                )
            if i % 3 == 0:
                task = await service.create(
                    tasks.TASK,
                    admin_p,
                    {
                        "title": f"Подготовить КП для {name}",
                        "party_id": party["id"],
                        "assignee_id": owner["id"],
                        "controller_id": head["id"],
                        "deadline": now + timedelta(days=rnd.randint(-5, 10)),
                        "priority": rnd.choice(["normal", "high"]),
                    },
                )
                if i % 6 == 0:
                    other = ctx.managers[(i + 1) % len(ctx.managers)]
                    await tasks.handoff(admin_p, task["id"], other["id"], "Передаю: клиент в вашем регионе")
            if i % 4 == 0:
                await service.create(
                    notes.NOTE,
                    admin_p,
                    {"party_id": party["id"], "body": "Клиент предпочитает связь по e-mail."},
                )
            progress.advance(step)
        await _demo_reports(ctx, head, now)

    await call_each_async(pm, "tessera_demo_data", ctx=ctx)
    return ctx


async def _demo_reports(ctx: DemoContext, head: dict[str, Any], now: Any) -> None:
    """Analytics to look at (docs/analytics.md): two saved builder reports of the head of
    sales shared with the managers, KPIs (done calls, meetings) with monthly targets per
    manager and for the company, and a dashboard of them shared with heads and managers. The
    kernel's reports only (the plugins add theirs through their own demo data)."""
    import pluggy

    from tessera import hookspecs
    from tessera.reports import builder, dashboards, kernel, kpis

    kernel_only = pluggy.PluginManager("tessera")
    kernel_only.add_hookspecs(hookspecs)
    entities = {e.key: e for e in kernel.ENTITIES}
    head_p = await build_principal(head["id"])
    by_month = await builder.save(
        kernel_only,
        entities,
        head_p,
        {
            "name": "Активности по менеджерам и месяцам",
            "definition": {
                "entity": "activity",
                "filters": [{"field": "status", "op": "eq", "value": "done"}],
                "group_by": ["owner", "starts_at:month"],
                "measures": [{"agg": "count"}, {"agg": "sum", "field": "duration_minutes"}],
                "chart": "bar",
            },
            "shared_roles": ["manager"],
        },
    )
    base = await builder.save(
        kernel_only,
        entities,
        head_p,
        {
            "name": "Клиентская база по статусам",
            "definition": {"entity": "party", "group_by": ["status"], "measures": [{"agg": "count"}]},
            "shared_roles": ["manager"],
        },
    )
    calls = await kpis.create(
        kernel_only,
        ctx.admin,
        {
            "name": "Выполненные звонки",
            "report_key": "activities",
            "measure": "done",
            "params": {"filters": {"type": "call"}},
        },
    )
    meetings = await kpis.create(
        kernel_only,
        ctx.admin,
        {
            "name": "Встречи",
            "report_key": "activities",
            "measure": "activities",
            "params": {"filters": {"type": "meeting"}},
        },
    )
    month = now.replace(day=1)
    for _ in range(3):
        period = f"{month.year:04d}-{month.month:02d}"
        for kpi, each in ((calls, 3), (meetings, 2)):
            for manager in ctx.managers:
                await kpis.set_target(
                    ctx.admin, kpi["id"], {"period": period, "target": each, "user_id": manager["id"]}
                )
            await kpis.set_target(
                ctx.admin, kpi["id"], {"period": period, "target": each * len(ctx.managers)}
            )
        month = (month - timedelta(days=1)).replace(day=1)
    await dashboards.create(
        kernel_only,
        head_p,
        {
            "name": "Панель отдела продаж",
            "tiles": [
                {"kind": "kpi", "id": calls["id"]},
                {"kind": "kpi", "id": meetings["id"]},
                {"kind": "saved", "id": by_month["id"]},
                {"kind": "report", "key": "tasks.discipline", "params": {"group_by": ["assignee"]}},
                {"kind": "saved", "id": base["id"]},
            ],
            "shared_roles": ["head", "manager"],
        },
    )


async def _reload_context(ctx: DemoContext) -> None:
    from tessera.entities.tables import Party, Team, UserRole

    ctx.teams = {t["name"]: t for t in await Team.select()}
    links = await UserRole.select(UserRole.user_id).where(UserRole.role_id.name == "manager")
    manager_ids = {r["user_id"] for r in links}
    columns = (CrmUser.id, CrmUser.email, CrmUser.name, CrmUser.team_id)
    users = await CrmUser.select(*columns).order_by(CrmUser.id)
    ctx.users = {u["email"]: u for u in users}
    ctx.managers = [u for u in users if u["id"] in manager_ids]
    ctx.parties = await Party.select().order_by(Party.id).output(load_json=True)


__all__ = ["DEMO_PASSWORD", "DemoContext", "auth", "load"]
