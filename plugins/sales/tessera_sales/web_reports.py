"""Report pages of the sales plugin with charts (``tessera.web.charts``, server-rendered SVG):
the funnel's chart (the page itself is in ``web.py``), plans vs actual, the forecast by month,
the KPI panel (with activities per manager) and contact-cadence compliance.

Each page calls the same report function as the API route (``reports.py``, ``cadence.py``), so
the figures agree and the caller's record visibility applies inside the SQL.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

import datetime as dt
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from markupsafe import Markup
from tessera import clock, i18n
from tessera.entities.dto import set_fields
from tessera.entities.tables import CrmUser, Team
from tessera.errors import DomainError
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.web import charts
from tessera.web.plugin_pages import (
    Form,
    check_csrf,
    current_principal,
    decode_form,
    error_page,
    field_errors,
    render,
)

from tessera_sales import cadence, reports, services
from tessera_sales.routes import PlanIn

i18n.register_labels(
    "sales.forecast.method",
    {"weighted": N_("Weighted by probability"), "historical": N_("From past conversion")},
)
#: The report pages, for the sub-navigation every one of them shows.
REPORT_PAGES = (
    ("/sales/funnel", N_("Funnel")),
    ("/sales/plans", N_("Plans")),
    ("/sales/forecast", N_("Forecast")),
    ("/sales/kpi", N_("KPI")),
    ("/sales/cadence", N_("Contact cadence")),
)


def _money(currency: str) -> Callable[[Any], str]:
    return lambda value: i18n.format_money(value, currency)


def funnel_charts(report: dict[str, Any], users: dict[int, str], teams: dict[int, str]) -> list[Markup]:
    """One funnel chart per group of ``reports.funnel``: deals of the cohort that reached each
    stage (the lost ones are in the table, not in the funnel)."""
    out = []
    for g in report["groups"]:
        if report["group_by"] == "owner":
            who = users.get(g["group"], _("no manager"))
        elif report["group_by"] == "team":
            who = teams.get(g["group"], str(g["group"] or ""))
        else:
            who = ""
        title = _("Sales funnel") + (f": {who}" if who else "")
        out.append(
            charts.funnel_chart(
                title,
                [
                    charts.Datum(s["name"], s["entered"], key=s["stage"])
                    for s in g["stages"]
                    if s["stage"] != "lost"
                ],
                desc=_(
                    "Deals opened from %(start)s to %(end)s that reached each stage",
                    start=i18n.format_date(report["date_from"]),
                    end=i18n.format_date(report["date_to"]),
                ),
                label_header=_("Stage"),
                value_header=_("Entered"),
                table=False,  # the page's table has these figures and more
                ident=f"funnel-{g['group'] or 'all'}",
            )
        )
    return out


async def _user_names(ids: set[int]) -> dict[int, str]:
    rows = await CrmUser.select(CrmUser.id, CrmUser.name).where(CrmUser.id.is_in(list(ids) or [-1]))
    return {u["id"]: u["name"] for u in rows}


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    return dt.date(day.year + month // 12, month % 12 + 1, 1)


def _period(date_from: dt.date | None, date_to: dt.date | None) -> tuple[dt.date, dt.date]:
    """Default: this month so far."""
    today = clock.now().date()
    date_from = date_from or _month_start(today)
    return date_from, date_to or max(today, date_from)


#: Fields of the "new plan" form (``PlanIn``; stage targets stay with the API).
PLAN_FIELDS = frozenset({"period_start", "period_end", "user_id", "team_id", "currency", "amount"})


@get("/plans", include_in_schema=False)
async def plans_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Plans the user may see beside what happened: won amount against the target (a chart per
    currency) and deals entering each targeted stage; a form to add one for planners."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _plans_view(request, principal)


@post("/plans", include_in_schema=False, status_code=303)
async def plan_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Add a plan: the form decoded through the API's ``PlanIn`` and saved by the same
    service (``reports.create_plan``, permission ``sales.plan.manage``)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        body = decode_form(PlanIn, data)
        await reports.create_plan(principal, set_fields(body))
    except DomainError as exc:
        if exc.status not in (409, 422):
            return error_page(request, principal, exc)
        errors = field_errors(exc, PLAN_FIELDS)
        return await _plans_view(request, principal, form=dict(data), errors=errors, status=exc.status)
    return Redirect("/sales/plans", status_code=303)


async def _plans_view(
    request: Request[Any, Any, Any],
    principal: Any,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    try:
        plans = await reports.visible_plans(principal)
        results = [await reports.plan_vs_actual(principal, p["id"]) for p in reversed(plans[-50:])]
        definition = await services.pipeline(services.DEFAULT_PIPELINE)
    except DomainError as exc:
        return error_page(request, principal, exc)
    users = await _user_names({r["user_id"] for r in results if r["user_id"]})
    teams = {t["id"]: t["name"] for t in await Team.select(Team.id, Team.name)}
    stage_names = {s["key"]: s["name"] for s in definition["stages"]}
    rows = []
    for r in results:
        if r["user_id"]:
            who = users.get(r["user_id"], "")
        elif r["team_id"]:
            who = _("Team %(team)s", team=teams.get(r["team_id"], ""))
        else:
            who = _("Company")
        period = f"{i18n.format_date(r['period_start'])} – {i18n.format_date(r['period_end'])}"
        rows.append({**r, "who": who, "period": period, "label": f"{who}, {period}"})
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_currency.setdefault(row["currency"], []).append(row)
    plan_charts = [
        charts.column_chart(
            _("Plan vs actual, %(currency)s", currency=currency),
            [r["label"] for r in items],
            [
                charts.Series(_("Plan"), [r["amount"]["target"] for r in items], key="target"),
                charts.Series(_("Actual"), [r["amount"]["actual"] for r in items], key="actual"),
            ],
            desc=_("Target and won amount of each plan"),
            formatter=_money(currency),
            category_header=_("Plan"),
            keys=[str(r["plan_id"]) for r in items],
            table=False,
            ident=f"plans-{currency}",
        )
        for currency, items in sorted(by_currency.items())
    ]
    planner = principal.can("sales.plan.manage")
    people = []
    if planner:
        active = CrmUser.is_active == True  # noqa: E712
        for u in await CrmUser.select(CrmUser.id, CrmUser.name).where(active).order_by(CrmUser.name):
            if principal.check_visible_owner(u["id"]):
                people.append(u)
    errors = dict(errors or {})
    today = clock.now().date()
    return render(
        request,
        "sales/plans.html",
        status=status,
        principal=principal,
        plans=rows,
        charts=plan_charts,
        stage_names=stage_names,
        report_pages=REPORT_PAGES,
        planner=planner,
        people=people,
        teams=teams,
        currencies=sorted(services.CURRENCIES),
        form=form
        or {
            "period_start": _month_start(today).isoformat(),
            "period_end": (_add_months(today, 1) - dt.timedelta(days=1)).isoformat(),
            "currency": "RUB",
        },
        error=errors.pop("", None),
        errors=errors,
    )


@get("/forecast", include_in_schema=False)
async def forecast_page(
    request: Request[Any, Any, Any],
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    pipeline: str = services.DEFAULT_PIPELINE,
) -> Response[Any]:
    """Expected revenue per month (base currency), probability-weighted and from historical
    conversion: a column chart and the table (default: this month and the next five)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    today = clock.now().date()
    date_from = date_from or _month_start(today)
    date_to = date_to or _add_months(date_from, 6) - dt.timedelta(days=1)
    try:
        report = await reports.forecast(principal, pipeline=pipeline, date_from=date_from, date_to=date_to)
        accuracy = await reports.forecast_accuracy(principal, pipeline)
        pipelines = await services.list_pipelines()
    except DomainError as exc:
        return error_page(request, principal, exc)
    months = []
    cursor = _month_start(date_from)
    while cursor <= date_to and len(months) < 36:
        months.append(f"{cursor.year:04d}-{cursor.month:02d}")
        cursor = _add_months(cursor, 1)
    weighted = {m["month"]: m["amount"] for m in report["weighted_base"]}
    historical = {m["month"]: m["amount"] for m in report["historical_base"]}
    labels = [i18n.format_date(dt.date(int(m[:4]), int(m[5:]), 1), "LLLL yyyy").capitalize() for m in months]
    base = report["base_currency"]
    chart = charts.column_chart(
        _("Forecast by month, %(currency)s", currency=base),
        labels,
        [
            charts.Series(_("Weighted by probability"), [weighted.get(m, 0) for m in months], key="weighted"),
            charts.Series(
                _("From past conversion"), [historical.get(m, 0) for m in months], key="historical"
            ),
        ],
        desc=_("Expected revenue of open deals per month, two ways"),
        formatter=_money(base),
        category_header=_("Month"),
        keys=months,
        table=False,
        ident="forecast",
    )
    table = [
        {"month": m, "label": labels[i], "weighted": weighted.get(m, 0), "historical": historical.get(m, 0)}
        for i, m in enumerate(months)
    ]
    return render(
        request,
        "sales/forecast.html",
        principal=principal,
        report=report,
        chart=chart,
        table=table,
        accuracy=accuracy[-24:],
        pipelines=pipelines,
        pipeline=pipeline,
        date_from=date_from,
        date_to=date_to,
        report_pages=REPORT_PAGES,
    )


@get("/kpi", include_in_schema=False)
async def kpi_page(
    request: Request[Any, Any, Any], date_from: dt.date | None = None, date_to: dt.date | None = None
) -> Response[Any]:
    """The KPI panel: won amount, conversion, average deal, sales cycle; per manager open,
    new, won and lost deals and activities (a chart), within the user's visibility."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    date_from, date_to = _period(date_from, date_to)
    try:
        summary = await reports.kpi_summary(principal, date_from=date_from, date_to=date_to)
        people = await reports.manager_kpis(principal, date_from=date_from, date_to=date_to)
    except DomainError as exc:
        return error_page(request, principal, exc)
    chart = charts.bar_chart(
        _("Activities per manager"),
        [charts.Datum(p["name"], p["activities"], key=str(p["user_id"])) for p in people],
        desc=_("Calls, meetings, letters and other contacts done in the period"),
        label_header=_("Manager"),
        value_header=_("Activities"),
        ident="kpi-activities",
    )
    return render(
        request,
        "sales/kpi.html",
        principal=principal,
        summary=summary,
        people=people,
        chart=chart,
        date_from=date_from,
        date_to=date_to,
        report_pages=REPORT_PAGES,
    )


@get("/cadence", include_in_schema=False)
async def cadence_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Compliance with the contact norms per rule and manager (as of the last job run) and the
    clients overdue for a contact, within the user's visibility."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        cells = await cadence.compliance(principal)
        overdue = await cadence.overdue_clients(principal)
    except DomainError as exc:
        return error_page(request, principal, exc)
    users = await _user_names(
        {c["owner_id"] for c in cells if c["owner_id"]} | {o["owner_id"] for o in overdue if o["owner_id"]}
    )
    rules = {c["rule_id"]: c["rule"] for c in cells}
    chart = charts.bar_chart(
        _("Clients contacted within the norm"),
        [
            charts.Datum(
                f"{users.get(c['owner_id'], _('no manager'))} · {c['rule']}",
                c["compliance"],
                key=f"{c['rule_id']}:{c['owner_id'] or ''}",
            )
            for c in cells
        ],
        desc=_("Share of each manager's clients contacted as often as the norm says"),
        formatter=i18n.format_percent,
        label_header=_("Manager and norm"),
        value_header=_("Within the norm"),
        table=False,
        ident="cadence",
    )
    return render(
        request,
        "sales/cadence.html",
        principal=principal,
        cells=cells,
        overdue=overdue[:200],
        users=users,
        rules=rules,
        chart=chart,
        now=clock.now(),
        report_pages=REPORT_PAGES,
    )


HANDLERS = [plans_page, plan_submit, forecast_page, kpi_page, cadence_page]
