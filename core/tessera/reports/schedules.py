"""Scheduled reports (issue 21, item 5): a saved report sent on a cron schedule to users and
the members of roles as a CSV or XLSX attachment, through the kernel's e-mail service
(``tessera.email``, background jobs). Each recipient's copy is run with *their* visibility, on
the server (no browser); every copy, sent or skipped, is written to the delivery log."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from croniter import croniter

from tessera import audit, clock, db, email, events, exports, i18n
from tessera.entities.tables import CrmUser, ReportDelivery, ReportSchedule, Role, SavedReport, UserRole
from tessera.errors import DomainError, NotFound, ValidationFailed
from tessera.permissions import Principal, build_principal
from tessera.reports import builder, catalog, framework

FORMATS = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _next(cron: str, after: datetime) -> datetime:
    return croniter(cron, after).get_next(datetime)  # type: ignore[no-any-return]


def schedule_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "saved_report_id": row["saved_report_id"],
        "owner_id": row["owner_id"],
        "cron": row["cron"],
        "format": row["format"],
        "recipient_users": json.loads(row["recipient_users"] or "[]"),
        "recipient_roles": json.loads(row["recipient_roles"] or "[]"),
        "active": row["active"],
        "next_run_at": row["next_run_at"],
        "last_run_at": row["last_run_at"],
    }


async def create(principal: Principal, saved_report_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Schedule a saved report the caller owns. Audited."""
    saved = await builder.get_saved(principal, saved_report_id)
    if saved["owner_id"] != principal.user_id:
        raise DomainError("Only the owner schedules a saved report")
    cron = values.get("cron")
    if not isinstance(cron, str) or len(cron) > 100 or not croniter.is_valid(cron):
        raise ValidationFailed.field("cron", "must be a cron expression (minute hour day month weekday)")
    fmt = values.get("format", "xlsx")
    if fmt not in FORMATS:
        raise ValidationFailed.field("format", "must be csv or xlsx")
    users = values.get("recipient_users") or []
    roles = values.get("recipient_roles") or []
    if not users and not roles:
        raise ValidationFailed.field("recipient_users", "name at least one user or role")
    known = {u["id"] for u in await CrmUser.select(CrmUser.id).where(CrmUser.id.is_in(users or [-1]))}
    for i, uid in enumerate(users):
        if uid not in known:
            raise ValidationFailed.field(f"recipient_users.{i}", f"no user {uid}")
    role_names = {r["name"] for r in await Role.select(Role.name)}
    for i, name in enumerate(roles):
        if name not in role_names:
            raise ValidationFailed.field(f"recipient_roles.{i}", f"no role {name!r}")
    now = clock.now()
    async with events.unit_of_work():
        row = (
            await ReportSchedule.insert(
                ReportSchedule(
                    saved_report_id=saved_report_id,
                    owner_id=principal.user_id,
                    cron=cron,
                    format=fmt,
                    recipient_users=json.dumps(sorted(set(users))),
                    recipient_roles=json.dumps(sorted(set(roles))),
                    active=True,
                    next_run_at=_next(cron, now),
                    created_at=now,
                )
            ).returning(*ReportSchedule.all_columns())
        )[0]
        await audit.record("create", "report_schedule", row["id"], {"cron": [None, cron]})
    return schedule_out(row)


async def visible(principal: Principal) -> list[dict[str, Any]]:
    rows = (
        await ReportSchedule.select()
        .where(ReportSchedule.owner_id == principal.user_id)
        .order_by(ReportSchedule.id)
    )
    return [schedule_out(r) for r in rows]


async def deliveries(principal: Principal, schedule_id: int) -> list[dict[str, Any]]:
    row = await ReportSchedule.select().where(ReportSchedule.id == schedule_id).first()
    if row is None or row["owner_id"] != principal.user_id:
        raise NotFound(f"No report schedule {schedule_id}")
    return (
        await ReportDelivery.select()
        .where(ReportDelivery.schedule_id == schedule_id)
        .order_by(ReportDelivery.id)
    )


async def remove(principal: Principal, schedule_id: int) -> None:
    async with events.unit_of_work():
        row = await ReportSchedule.select().where(ReportSchedule.id == schedule_id).first()
        if row is None or row["owner_id"] != principal.user_id:
            raise NotFound(f"No report schedule {schedule_id}")
        await ReportSchedule.delete().where(ReportSchedule.id == schedule_id)
        await audit.record("delete", "report_schedule", schedule_id, {"cron": [row["cron"], None]})


async def _recipients(row: dict[str, Any]) -> list[dict[str, Any]]:
    ids = set(json.loads(row["recipient_users"] or "[]"))
    roles = json.loads(row["recipient_roles"] or "[]")
    if roles:
        members = await UserRole.select(UserRole.user_id).where(UserRole.role_id.name.is_in(roles))
        ids |= {m["user_id"] for m in members}
    if not ids:
        return []
    return await CrmUser.select(CrmUser.id, CrmUser.email, CrmUser.name, CrmUser.locale).where(
        CrmUser.id.is_in(sorted(ids)) & (CrmUser.is_active == True)  # noqa: E712
    )


def _file(result: dict[str, Any], fmt: str) -> bytes:
    header, types, rows = framework.export_table(result)
    if fmt == "csv":
        return "".join(exports.csv_chunks(header, rows)).encode("utf-8")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.xlsx"
        exports.xlsx_to_file(path, header, rows, types, title=result["title"])
        return path.read_bytes()


async def send(pm: Any, row: dict[str, Any]) -> int:
    """Send one schedule's copies now: each recipient's own run, as an attachment."""
    saved = await SavedReport.select().where(SavedReport.id == row["saved_report_id"]).first()
    entities = catalog.entities(pm)
    sent = 0
    stamp = clock.now().strftime("%Y-%m-%d")
    for user in await _recipients(row):
        status, detail, job_id, count = "queued", "", None, 0
        try:
            if saved is None:
                raise NotFound("the saved report was deleted")
            principal = await build_principal(user["id"])
            definition = json.loads(saved["definition"])
            report, params = await builder.compile_definition(pm, entities, principal, definition)
            with i18n_for(user["locale"]):
                result = builder.measure_labels(
                    definition, await framework.run_report(report, principal, params)
                )
            result["title"] = saved["name"]
            count = len(result["rows"])
            content = _file(result, row["format"])
            name = f"{saved['name'][:60]}-{stamp}.{row['format']}"
            async with events.unit_of_work():
                queued = await email.send_email(
                    user["email"],
                    saved["name"],
                    i18n.gettext_for(
                        user["locale"] or None,
                        i18n.N_("The report %(name)s is attached."),
                        name=saved["name"],
                    ),
                    attachments=[email.Attachment(name, content, FORMATS[row["format"]])],
                    record_activity=False,
                    dedup_key=f"report:{row['id']}:{user['id']}:{row['next_run_at']}",
                )
            job_id = queued.job_id
            sent += 1
        except DomainError as exc:  # no permission for the entity, a field ... : logged, not sent
            status, detail = "skipped", exc.detail
        await ReportDelivery.insert(
            ReportDelivery(
                schedule_id=row["id"],
                user_id=user["id"],
                email=user["email"],
                rows=count,
                status=status,
                job_id=job_id,
                detail=str(detail),
                at=clock.now(),
            )
        )
    return sent


@contextmanager
def i18n_for(locale: str | None) -> Iterator[None]:
    """Run a block in a recipient's language (column labels of their copy)."""
    previous = i18n.current_locale()
    i18n.activate(locale or None)
    try:
        yield
    finally:
        i18n.activate(previous)


async def run_due(pm: Any, now: datetime | None = None) -> int:
    """Send every active schedule whose time came; the next time is set first, so a crash never
    sends one twice (e-mails are deduplicated per schedule, recipient and run too)."""
    now = now or clock.now()
    sent = 0
    due = await ReportSchedule.select().where(
        (ReportSchedule.active == True) & (ReportSchedule.next_run_at <= now)  # noqa: E712
    )
    for row in due:
        async with db.transaction():
            claimed = (
                await ReportSchedule.update(
                    {ReportSchedule.next_run_at: _next(row["cron"], now), ReportSchedule.last_run_at: now}
                )
                .where((ReportSchedule.id == row["id"]) & (ReportSchedule.next_run_at == row["next_run_at"]))
                .returning(ReportSchedule.id)
            )
        if claimed:
            sent += await send(pm, row)
    return sent
