"""Demo data: a category tree, a published sales guide for each stage of the sales pipelines,
service articles for each ticket category, a draft waiting for review, a decision tree for the
support line ("the printer does not print") and a handful of expert-system rules for clients,
deals and tickets (those whose facts this installation offers)."""

from __future__ import annotations

from typing import Any

from tessera.entities import service

from tessera_knowledge_base import articles, records, rules, services, trees
from tessera_knowledge_base.tables import Article

GUIDES = [
    (
        "qualification",
        "Квалификация лида",
        "## Цель\n\nПонять, есть ли у клиента задача, бюджет и срок.\n\n"
        "1. Позвонить в течение часа после заявки.\n"
        "2. Задать вопросы BANT: бюджет, полномочия, потребность, срок.\n"
        "3. Записать итог звонка в карточке клиента.",
    ),
    (
        "needs",
        "Выявление потребностей",
        "## Вопросы клиенту\n\n- Как вы решаете задачу сейчас?\n"
        "- Что мешает больше всего?\n- Кто ещё участвует в решении?\n\n"
        "Заполните чек-лист «Потребности записаны».",
    ),
    (
        "proposal",
        "Коммерческое предложение",
        "## Как готовить КП\n\nКП строится из позиций сделки. "
        "Укажите выгоду клиента в первом абзаце, срок действия — 14 дней.\n\n"
        "| Раздел | Содержание |\n|---|---|\n"
        "| Задача | словами клиента |\n| Решение | позиции сделки |\n| Цена | со скидкой и без |",
    ),
    (
        "negotiation",
        "Переговоры и возражения",
        "## Частые возражения\n\n**«Дорого»** — сравните со стоимостью "
        "текущих потерь.\n\n**«Надо подумать»** — договоритесь о дате следующего разговора.",
    ),
    (
        "offer",
        "Допродажа действующему клиенту",
        "Предлагайте расширение, когда клиент доволен: после "
        "закрытого без претензий обращения или продления договора.",
    ),
]
SERVICE = [
    (
        "request",
        "Как принять запрос клиента",
        "1. Уточнить суть.\n2. Назначить очередь.\n3. Ответить в срок SLA.",
    ),
    ("incident", "Инцидент: первые шаги", "Соберите версию программы, время сбоя и снимок экрана."),
    ("claim", "Работа с претензией", "Претензию регистрируют в день получения; ответ — не позднее 10 дней."),
]
PRINTER_TREE = {
    "start": "power",
    "nodes": {
        "power": {
            "question": "Принтер включается?",
            "answers": [
                {"key": "yes", "label": "Да", "next": "queue"},
                {"key": "no", "label": "Нет", "next": "cable"},
            ],
        },
        "queue": {
            "question": "Задание видно в очереди печати?",
            "answers": [
                {"key": "yes", "label": "Да", "next": "paper"},
                {"key": "no", "label": "Нет", "next": "driver"},
            ],
        },
        "paper": {
            "question": "На панели горит ошибка бумаги?",
            "answers": [
                {"key": "yes", "label": "Да", "next": "jam"},
                {"key": "no", "label": "Нет", "next": "visit"},
            ],
        },
        "cable": {"recommendation": "Проверить кабель питания и розетку; если не помогло — выезд инженера."},
        "driver": {"recommendation": "Переустановить драйвер принтера по инструкции."},
        "jam": {"recommendation": "Извлечь замятую бумагу по инструкции."},
        "visit": {"recommendation": "Назначить выезд инженера."},
    },
}


async def load(ctx: Any) -> None:
    if await Article.count() > 0:
        return
    admin = ctx.admin
    sales = await service.create(services.CATEGORY, admin, {"name": "Продажи", "position": 1})
    guides = await service.create(
        services.CATEGORY, admin, {"name": "Руководства по этапам", "parent_id": sales["id"]}
    )
    support = await service.create(services.CATEGORY, admin, {"name": "Сервис", "position": 2})

    async def published(values: dict[str, Any]) -> dict[str, Any]:
        row = await service.create(articles.ARTICLE, admin, values)
        await articles.submit(admin, row["id"])
        return await articles.publish(admin, row["id"])

    for stage, title, body in GUIDES:
        await published(
            {
                "title": title,
                "body": body,
                "category_id": guides["id"],
                "tags": ["продажи"],
                "links": [{"kind": "stage", "key": stage}],
            }
        )
    service_articles = {}
    for category, title, body in SERVICE:
        row = await published(
            {
                "title": title,
                "body": body,
                "category_id": support["id"],
                "audience": "service",
                "tags": ["сервис"],
                "links": [{"kind": "ticket_category", "key": category}],
            }
        )
        service_articles[category] = row["id"]
    jam = await published(
        {
            "title": "Замятие бумаги",
            "body": "1. Выключить принтер.\n2. Открыть заднюю крышку.\n3. Аккуратно извлечь лист.",
            "category_id": support["id"],
            "audience": "public",
            "links": [{"kind": "ticket_category", "key": "incident"}],
        }
    )
    await service.create(
        articles.ARTICLE,
        admin,
        {"title": "Скидки для партнёров (черновик)", "body": "Уточняется.", "category_id": sales["id"]},
    )
    tree = dict(PRINTER_TREE)
    tree["nodes"] = {
        **PRINTER_TREE["nodes"],
        "jam": {**PRINTER_TREE["nodes"]["jam"], "article_id": jam["id"]},
    }
    await service.create(
        trees.TREE,
        admin,
        {"name": "Не печатает принтер", "targets": ["ticket", "party"], "definition": tree},
    )
    await _rules(admin, service_articles)


async def _rules(admin: Any, service_articles: dict[str, int]) -> None:
    facts = await rules.known_facts("party")
    party_rules: list[dict[str, Any]] = [
        {
            "key": "no_call_30_days",
            "name": "Давно не звонили",
            "priority": 10,
            "when": {
                "all": [
                    {"fact": "party.status", "op": "eq", "value": "current"},
                    {"fact": "history.last_call", "op": "older_than_days", "value": 30},
                ]
            },
            "then": [{"type": "next_step", "text": "Позвонить клиенту"}],
        }
    ]
    if "party.custom.abc_class" in facts:
        party_rules.insert(
            0,
            {
                "key": "class_a_no_meeting",
                "name": "Ключевой клиент без встречи",
                "priority": 50,
                "when": {
                    "all": [
                        {"fact": "party.custom.abc_class", "op": "eq", "value": "A"},
                        {"fact": "history.last_meeting", "op": "older_than_days", "value": 60},
                    ]
                },
                "then": [
                    {"type": "next_step", "text": "Назначить встречу с руководителем клиента"},
                    {"type": "task", "title": "Встреча с ключевым клиентом", "due_days": 7},
                ],
            },
        )
    await service.create(
        services.RULE_SET, admin, {"name": "Работа с клиентами", "target": "party", "rules": party_rules}
    )
    if records.enabled("deal"):
        deal_rules = [
            {
                "key": "big_deal_at_proposal",
                "name": "Крупная сделка на этапе КП",
                "priority": 20,
                "when": {
                    "all": [
                        {"fact": "deal.stage", "op": "eq", "value": "proposal"},
                        {"fact": "deal.amount", "op": "gte", "value": 1000000},
                    ]
                },
                "then": [{"type": "next_step", "text": "Подключить руководителя к переговорам"}],
            }
        ]
        await service.create(
            services.RULE_SET, admin, {"name": "Сделки", "target": "deal", "rules": deal_rules}
        )
    if records.enabled("ticket"):
        ticket_rules = [
            {
                "key": "claim_priority",
                "name": "Претензия — высокий приоритет",
                "priority": 30,
                "when": {"fact": "ticket.category", "op": "eq", "value": "claim"},
                "then": [
                    {"type": "priority", "value": "p2"},
                    {"type": "article", "article_id": service_articles["claim"]},
                ],
            }
        ]
        await service.create(
            services.RULE_SET, admin, {"name": "Обращения", "target": "ticket", "rules": ticket_rules}
        )
