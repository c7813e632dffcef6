"""The blocking client.

GENERATED from ``tessera_sdk/_async/client.py`` by ``python -m tessera_sdk.codegen`` (unasync):
do not edit by hand; ``sdk/tests/test_sdk_models.py`` fails when the two disagree.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Generic, Literal

import httpx
import msgspec

from tessera_sdk import _base as b
from tessera_sdk import models as m
from tessera_sdk._base import Call, InT, OutT, Page, PatchT, RetryPolicy, sync_sleep
from tessera_sdk.errors import TransportError


class Client(b.BaseClient):
    """``AsyncClient(base_url, token)``; use as a context manager or close it when done."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, retry, headers)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, timeout=timeout, transport=transport
        )
        self.parties = Parties(self, "/api/parties", m.PartyOut, m.PartyOutPage)
        self.contacts = Entity[m.ContactOut, m.ContactIn, m.ContactPatch](
            self, "/api/contacts", m.ContactOut, m.ContactOutPage
        )
        self.activities = Entity[m.ActivityOut, m.ActivityIn, m.ActivityPatch](
            self, "/api/activities", m.ActivityOut, m.ActivityOutPage
        )
        self.tasks = Tasks(self, "/api/tasks", m.TaskOut, m.TaskOutPage)
        self.notes = Entity[m.NoteOut, m.NoteIn, m.NotePatch](self, "/api/notes", m.NoteOut, m.NoteOutPage)
        self.attachments = Attachments(self, "/api/attachments", m.AttachmentOut, m.AttachmentOutPage)
        self.users = Entity[m.UserOut, m.UserIn, m.UserPatch](self, "/api/users", m.UserOut, m.UserOutPage)
        self.teams = Entity[m.TeamOut, m.TeamIn, m.TeamPatch](self, "/api/teams", m.TeamOut, m.TeamOutPage)
        self.roles = Entity[m.RoleOut, m.RoleIn, m.RolePatch](self, "/api/roles", m.RoleOut, m.RoleOutPage)
        self.substitutions = Entity[m.SubstitutionOut, m.SubstitutionIn, m.SubstitutionPatch](
            self, "/api/substitutions", m.SubstitutionOut, m.SubstitutionOutPage
        )
        self.reports = SyncReports(self)
        # The marketing plugin (when enabled on the server).
        self.segments = Entity[m.SegmentOut, m.SegmentIn, m.SegmentPatch](
            self, "/api/marketing/segments", m.SegmentOut, m.SegmentOutPage
        )
        self.campaigns = Entity[m.CampaignOut, m.CampaignIn, m.CampaignPatch](
            self, "/api/marketing/campaigns", m.CampaignOut, m.CampaignOutPage
        )
        #: The knowledge base plugin (``/api/knowledge_base``), when the server runs it.
        self.knowledge_base = SyncKnowledgeBase(self)
        #: The receivables plugin (``/api/receivables``), when the server runs it.
        self.receivables = SyncReceivables(self)
        #: The marketing plugin (``/api/marketing``): segments, campaigns and their costs,
        #: leads and web forms, mailings, ABC/XYZ classes and the return reports.
        self.marketing = SyncMarketing(self)

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _execute(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, **self._kwargs(call))
            except httpx.TransportError as exc:
                if not self._should_retry(call, attempt, None):
                    raise TransportError(0, f"{call.method} {call.path}: {exc!r}") from exc
                sync_sleep(self.retry.delay(attempt, None))
                attempt += 1
                continue
            if response.status_code in b.RETRY_STATUSES and self._should_retry(
                call, attempt, response.status_code
            ):
                sync_sleep(self.retry.delay(attempt, response.headers.get("Retry-After")))
                attempt += 1
                continue
            return b.decode(response, call)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        model: Any = Any,
    ) -> Any:
        """Any endpoint (plugin routes included); the JSON answer converted to ``model``."""
        call = Call(
            method.upper(),
            path,
            b.params(params or {}),
            None if json is None else b.body(json),
            dict(headers or {}),
            model=model,
        )
        return self._execute(call)

    def get(self, path: str, *, model: Any = Any, **params: Any) -> Any:
        return self.request("GET", path, params=params, model=model)

    def post(
        self, path: str, json: Any = None, *, model: Any = Any, idempotency_key: str | None = None
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", path, json=json, headers=headers, model=model)

    def iterate(self, path: str, model: Any = Any, *, limit: int = 100, **filters: Any) -> Iterator[Any]:
        """Items of any paginated list endpoint (``{"items", "next_cursor"}``), page after page."""
        cursor: str | None = None
        while True:
            page = self.request("GET", path, params={**filters, "limit": limit, "cursor": cursor})
            for item in page["items"]:
                yield item if model is Any else msgspec.convert(item, model)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # ------------------------------------------------------------------ kernel endpoints

    def health(self) -> dict[str, str]:
        return self._execute(Call("GET", "/api/health"))

    def me(self) -> m.MeOut:
        return self._execute(Call("GET", "/api/auth/me", model=m.MeOut))

    def create_token(self, name: str, scopes: list[str] | None = None) -> m.TokenCreated:
        body = b.body(m.TokenIn(name=name, scopes=scopes or []))
        call = Call("POST", "/api/auth/tokens", json=body, model=m.TokenCreated)
        return self._execute(call)

    def tokens(self) -> list[m.TokenOut]:
        return self._execute(Call("GET", "/api/auth/tokens", model=list[m.TokenOut]))

    def revoke_token(self, token_id: int) -> None:
        self._execute(Call("DELETE", f"/api/auth/tokens/{token_id}"))

    def permissions(self) -> dict[str, str]:
        return self._execute(Call("GET", "/api/permissions", model=dict[str, str]))

    def plugins(self) -> list[dict[str, Any]]:
        return self._execute(Call("GET", "/api/plugins"))

    def jobs(self) -> list[m.JobOut]:
        return self._execute(Call("GET", "/api/jobs", model=list[m.JobOut]))

    def set_job_enabled(self, name: str, enabled: bool) -> m.JobOut:
        call = Call("PUT", f"/api/jobs/{name}", json={"enabled": enabled}, model=m.JobOut)
        return self._execute(call)

    def job_runs(self, job_name: str | None = None, limit: int = 100) -> list[m.JobRunOut]:
        params = b.params({"job_name": job_name, "limit": limit})
        return self._execute(Call("GET", "/api/jobs/runs", params, model=list[m.JobRunOut]))

    def audit(self, **filters: Any) -> list[m.AuditOut]:
        call = Call("GET", "/api/audit", b.params(filters), model=list[m.AuditOut])
        return self._execute(call)

    def notifications(self, unread: bool = False) -> list[m.NotificationOut]:
        call = Call("GET", "/api/notifications", {"unread": unread}, model=list[m.NotificationOut])
        return self._execute(call)

    def segment_preview_count(self, rules: Mapping[str, Any]) -> int:
        """How many parties you may read match segment ``rules`` (marketing plugin)."""
        out = self.post("/api/marketing/segments/preview", {"rules": dict(rules)}, model=m.CountOut)
        return int(out.count)

    def segment_members_count(self, segment_id: int) -> int:
        """How many of a saved segment's parties you may read (marketing plugin)."""
        out = self.get(f"/api/marketing/segments/{segment_id}/members/count", model=m.CountOut)
        return int(out.count)

    def campaign_return(self, campaign_id: int) -> m.CampaignFigures:
        """A campaign's responses, leads, conversion, revenue, cost per lead and ROI (marketing)."""
        return self.get(f"/api/marketing/campaigns/{campaign_id}/return", model=m.CampaignFigures)

    def return_report(self) -> list[m.CampaignFigures]:
        """The return of every campaign, first-touch attribution (marketing plugin)."""
        return self.get("/api/marketing/reports/return", model=list[m.CampaignFigures])

    def custom_fields(self, entity_type: str) -> dict[str, Any]:
        return self._execute(Call("GET", f"/api/custom-fields/{entity_type}"))

    def set_custom_fields(
        self, entity_type: str, properties: dict[str, Any], required: list[str] | None = None
    ) -> dict[str, Any]:
        body = b.body(m.CustomFieldsIn(properties=properties, required=required or []))
        return self._execute(Call("PUT", f"/api/custom-fields/{entity_type}", json=body))

    # ------------------------------------------------------------------ imports

    def import_parties(
        self,
        filename: str,
        content: bytes,
        *,
        mapping: Mapping[str, str] | None = None,
        dry_run: bool = False,
        on_duplicate: Literal["skip", "update", "error"] = "skip",
        all_or_nothing: bool = False,
        owner_email: str = "",
        idempotency_key: str | None = None,
    ) -> m.ImportStarted:
        """Start importing parties (with contact persons) from a CSV or XLSX file; follow the
        job with ``background_job(job_id)`` (its ``result`` is the report)."""
        data = {
            "dry_run": "true" if dry_run else "false",
            "on_duplicate": on_duplicate,
            "all_or_nothing": "true" if all_or_nothing else "false",
        }
        if mapping:
            data["mapping"] = json.dumps(dict(mapping))
        if owner_email:
            data["owner_email"] = owner_email
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        call = Call(
            "POST",
            "/api/imports/parties",
            files={"file": (filename, content, "application/octet-stream")},
            data=data,
            headers=headers,
            model=m.ImportStarted,
        )
        return self._execute(call)  # type: ignore[no-any-return]

    def import_records(
        self,
        kind: Literal["activities", "tasks"],
        filename: str,
        content: bytes,
        *,
        mapping: Mapping[str, str] | None = None,
        dry_run: bool = False,
        all_or_nothing: bool = False,
        external_system: str = "accounting",
        timezone: str = "",
        idempotency_key: str | None = None,
    ) -> m.ImportStarted:
        """Start importing activities or tasks from a CSV or XLSX file (rows name their party
        by external id, tax id, e-mail or phone); follow the job with ``background_job``."""
        data = {
            "dry_run": "true" if dry_run else "false",
            "all_or_nothing": "true" if all_or_nothing else "false",
            "external_system": external_system,
        }
        if mapping:
            data["mapping"] = json.dumps(dict(mapping))
        if timezone:
            data["timezone"] = timezone
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        call = Call(
            "POST",
            f"/api/imports/{kind}",
            files={"file": (filename, content, "application/octet-stream")},
            data=data,
            headers=headers,
            model=m.ImportStarted,
        )
        return self._execute(call)  # type: ignore[no-any-return]

    def background_job(self, job_id: int) -> m.BackgroundJobOut:
        """A background job you started (an import): status, progress, result, error."""
        call = Call("GET", f"/api/jobs/background/{job_id}", model=m.BackgroundJobOut)
        return self._execute(call)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ accounting exchange

    def import_counterparties(
        self, counterparties: list[Mapping[str, Any]], *, system: str = "accounting"
    ) -> m.ExchangeOut:
        """Counterparties from the accounting system, idempotent by ``external_id``."""
        body = {"system": system, "counterparties": [dict(c) for c in counterparties]}
        call = Call("POST", "/api/accounting/counterparties", json=body, model=m.ExchangeOut)
        return self._execute(call)  # type: ignore[no-any-return]

    def export_counterparties(
        self, *, since: str | None = None, system: str = "accounting"
    ) -> m.CounterpartiesOut:
        """Parties changed after the checkpoint ``since`` (ISO time), and the next checkpoint."""
        params: dict[str, Any] = {"system": system}
        if since:
            params["since"] = since
        call = Call("GET", "/api/accounting/counterparties", params, model=m.CounterpartiesOut)
        return self._execute(call)  # type: ignore[no-any-return]

    def accounting_documents(self, *, since: str | None = None) -> m.DocumentsOut:
        """Documents plugins export to accounting (won deals) changed after ``since``."""
        params = {"since": since} if since else {}
        call = Call("GET", "/api/accounting/documents", params, model=m.DocumentsOut)
        return self._execute(call)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ telephony

    def telephony_event(self, event: m.CallEventIn | Mapping[str, Any], *, secret: str) -> m.CallOut:
        """Report a call step as a cloud PBX does (``POST /api/telephony/events``); ``secret``
        is the deployment's ``telephony.webhook_secret``."""
        headers = {"X-Tessera-Telephony-Secret": secret}
        call = Call("POST", "/api/telephony/events", json=b.body(event), headers=headers, model=m.CallOut)
        return self._execute(call)  # type: ignore[no-any-return]

    def dial(self, number: str, party_id: int | None = None) -> m.DialOut:
        """Click-to-call: the PBX rings your extension, then dials ``number``."""
        body = b.body(m.DialIn(number=number, party_id=party_id))
        return self._execute(Call("POST", "/api/telephony/calls", json=body, model=m.DialOut))  # type: ignore[no-any-return]

    def my_extension(self) -> m.ExtensionOut:
        return self._execute(Call("GET", "/api/telephony/me", model=m.ExtensionOut))  # type: ignore[no-any-return]

    def set_my_extension(self, extension: str) -> m.ExtensionOut:
        """Your phone extension (empty removes it): pop-ups and click-to-call use it."""
        body = b.body(m.ExtensionIn(extension=extension))
        return self._execute(Call("PUT", "/api/telephony/me", json=body, model=m.ExtensionOut))  # type: ignore[no-any-return]


class Entity(Generic[OutT, InT, PatchT]):
    """The standard REST routes of one kernel entity."""

    def __init__(self, client: Client, path: str, out: type[OutT], page: type[msgspec.Struct]) -> None:
        self._client = client
        self.path = path
        self.out = out
        self._page = page

    def page(
        self, *, cursor: str | None = None, limit: int = 50, order: str | None = None, **filters: Any
    ) -> Page[OutT]:
        params = b.params({**filters, "cursor": cursor, "limit": limit, "order": order})
        data = self._client._execute(Call("GET", self.path, params))
        return Page([msgspec.convert(i, self.out) for i in data["items"]], data.get("next_cursor"))

    def list(self, *, page_size: int = 100, order: str | None = None, **filters: Any) -> Iterator[OutT]:
        """Every record you may see that matches the filters, fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.page(cursor=cursor, limit=page_size, order=order, **filters)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count(self, **filters: Any) -> int:
        data = self._client._execute(Call("GET", f"{self.path}/count", b.params(filters)))
        return int(data["count"])

    def get(self, record_id: int) -> OutT:
        return self._client._execute(Call("GET", f"{self.path}/{record_id}", model=self.out))

    def create(self, data: InT | Mapping[str, Any], *, idempotency_key: str | None = None) -> OutT:
        """Create a record. A fresh Idempotency-Key is sent unless you pass one (pass your own
        to make a create safe across process restarts)."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        call = Call("POST", self.path, json=b.body(data), headers=headers, model=self.out)
        return self._client._execute(call)

    def update(
        self, record_id: int, changes: PatchT | Mapping[str, Any], *, version: int | None = None
    ) -> OutT:
        """Change the given fields. With ``version`` (the one you read, sent as ``If-Match``) a
        concurrent change raises ``PreconditionFailed`` (a ``Conflict``, with
        ``current_version``) instead of being overwritten."""
        call = Call(
            "PATCH",
            f"{self.path}/{record_id}",
            json=b.body(changes),
            headers=b.version_header(version),
            model=self.out,
        )
        return self._client._execute(call)

    def delete(self, record_id: int, *, version: int | None = None) -> None:
        """Delete the record. With ``version`` a concurrent change raises
        ``PreconditionFailed`` instead."""
        call = Call("DELETE", f"{self.path}/{record_id}", headers=b.version_header(version))
        self._client._execute(call)


class Parties(Entity[m.PartyOut, m.PartyIn, m.PartyPatch]):
    def card(self, party_id: int, order: str = "desc") -> m.ClientCard:
        """The client card: the party, its contacts and its whole history (plugins' items too)."""
        call = Call("GET", f"{self.path}/{party_id}/card", {"order": order}, model=m.ClientCard)
        return self._client._execute(call)

    def participants(self, party_id: int) -> list[m.Participant]:
        call = Call("GET", f"{self.path}/{party_id}/participants", model=list[m.Participant])
        return self._client._execute(call)

    def status_history(self, party_id: int) -> list[dict[str, Any]]:
        return self._client._execute(Call("GET", f"{self.path}/{party_id}/status-history"))

    def export_csv(self, **filters: Any) -> str:
        call = Call("GET", f"{self.path}/export", b.params(filters), raw=True)
        response = self._client._execute(call)
        return str(response.text)


class Tasks(Entity[m.TaskOut, m.TaskIn, m.TaskPatch]):
    def handoff(self, task_id: int, to_user_id: int, comment: str = "") -> m.TaskOut:
        body = b.body(m.HandoffIn(to_user_id=to_user_id, comment=comment))
        call = Call("POST", f"{self.path}/{task_id}/handoff", json=body, model=m.TaskOut)
        return self._client._execute(call)

    def complete(self, task_id: int, result: str = "", version: int | None = None) -> m.TaskOut:
        body = b.body(m.CompleteIn(result=result, version=m.UNSET if version is None else version))
        call = Call("POST", f"{self.path}/{task_id}/complete", json=body, model=m.TaskOut)
        return self._client._execute(call)

    def accept(self, task_id: int, version: int | None = None) -> m.TaskOut:
        """Accept a task someone handed to you (only its assignee or their substitute)."""
        body = b.body(m.AcceptIn(version=m.UNSET if version is None else version))
        call = Call("POST", f"{self.path}/{task_id}/accept", json=body, model=m.TaskOut)
        return self._client._execute(call)

    def handoffs(self, task_id: int) -> list[m.HandoffOut]:
        call = Call("GET", f"{self.path}/{task_id}/handoffs", model=list[m.HandoffOut])
        return self._client._execute(call)


class Attachments(Entity[m.AttachmentOut, msgspec.Struct, msgspec.Struct]):
    def upload(
        self,
        filename: str,
        content: bytes,
        content_type: str = "application/octet-stream",
        party_id: int | None = None,
        subject_ref: str = "",
    ) -> m.AttachmentOut:
        data = {"party_id": "" if party_id is None else str(party_id), "subject_ref": subject_ref}
        call = Call(
            "POST",
            f"{self.path}/upload",
            files={"file": (filename, content, content_type)},
            data=data,
            model=m.AttachmentOut,
        )
        return self._client._execute(call)

    def download(self, attachment_id: int) -> bytes:
        response = self._client._execute(Call("GET", f"{self.path}/{attachment_id}/content", raw=True))
        return bytes(response.content)


class SyncReports:
    """Reports (``/api/reports``) and the report builder (``/api/report-builder``), docs/analytics.md."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[m.ReportInfo]:
        """The reports you may run, with their parameters, dimensions and measures."""
        return self._client.request("GET", "/api/reports", model=list[m.ReportInfo])  # type: ignore[no-any-return]

    def run(self, key: str, **params: Any) -> m.ReportResult:
        """Run a report (``group_by=["owner", "period"], period="month", date_from=...``)."""
        return self._client.request(  # type: ignore[no-any-return]
            "POST", f"/api/reports/{key}/run", json=params, model=m.ReportResult
        )

    def drill(
        self,
        key: str,
        cell: Mapping[str, Any],
        measure: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> m.DrillOut:
        """The records behind one cell of a report's result."""
        body = {"cell": dict(cell), "measure": measure, "params": dict(params or {})}
        return self._client.request(  # type: ignore[no-any-return]
            "POST", f"/api/reports/{key}/drill", json=body, model=m.DrillOut
        )

    def export(self, key: str, format: str = "csv", **params: Any) -> bytes:
        """A report's result as a CSV or XLSX file."""
        import json as _json

        query = {"format": format, "params": _json.dumps(params)}
        response = self._client._execute(Call("GET", f"/api/reports/{key}/export", b.params(query), raw=True))
        return bytes(response.content)

    def builder_entities(self) -> list[m.BuilderEntity]:
        """Entities and fields of the report builder you may use."""
        return self._client.request(  # type: ignore[no-any-return]
            "GET", "/api/report-builder/entities", model=list[m.BuilderEntity]
        )

    def run_definition(self, definition: Mapping[str, Any]) -> m.ReportResult:
        """Run a builder definition (entity, filters, group_by, measures)."""
        return self._client.request(  # type: ignore[no-any-return]
            "POST", "/api/report-builder/run", json={"definition": dict(definition)}, model=m.ReportResult
        )

    def drill_definition(
        self, definition: Mapping[str, Any], cell: Mapping[str, Any], measure: str | None = None
    ) -> m.DrillOut:
        body = {"definition": dict(definition), "cell": dict(cell), "measure": measure}
        return self._client.request(  # type: ignore[no-any-return]
            "POST", "/api/report-builder/drill", json=body, model=m.DrillOut
        )

    def saved(self) -> list[m.SavedReportOut]:
        """Saved reports you own or that are shared with you."""
        return self._client.request(  # type: ignore[no-any-return]
            "GET", "/api/report-builder/saved", model=list[m.SavedReportOut]
        )

    def save(
        self,
        name: str,
        definition: Mapping[str, Any],
        shared_roles: list[str] | None = None,
        shared_teams: list[int] | None = None,
    ) -> m.SavedReportOut:
        body = {
            "name": name,
            "definition": dict(definition),
            "shared_roles": shared_roles or [],
            "shared_teams": shared_teams or [],
        }
        return self._client.request(  # type: ignore[no-any-return]
            "POST", "/api/report-builder/saved", json=body, model=m.SavedReportOut
        )

    def run_saved(self, report_id: int) -> m.ReportResult:
        return self._client.request(  # type: ignore[no-any-return]
            "POST", f"/api/report-builder/saved/{report_id}/run", model=m.ReportResult
        )

    def delete_saved(self, report_id: int) -> None:
        self._client.request("DELETE", f"/api/report-builder/saved/{report_id}")

    def schedule(
        self,
        report_id: int,
        cron: str,
        *,
        format: str = "xlsx",
        recipient_users: list[int] | None = None,
        recipient_roles: list[str] | None = None,
    ) -> m.ScheduleOut:
        """Send a saved report on a cron schedule to users and roles (each with their own visibility)."""
        body = {
            "cron": cron,
            "format": format,
            "recipient_users": recipient_users or [],
            "recipient_roles": recipient_roles or [],
        }
        return self._client.request(  # type: ignore[no-any-return]
            "POST", f"/api/report-builder/saved/{report_id}/schedules", json=body, model=m.ScheduleOut
        )

    def deliveries(self, schedule_id: int) -> list[m.ReportDeliveryOut]:
        """The delivery log of a schedule."""
        return self._client.request(  # type: ignore[no-any-return]
            "GET", f"/api/report-builder/schedules/{schedule_id}/deliveries", model=list[m.ReportDeliveryOut]
        )

    def kpis(self) -> list[m.KpiOut]:
        return self._client.request("GET", "/api/kpis", model=list[m.KpiOut])  # type: ignore[no-any-return]

    def create_kpi(self, data: m.KpiIn | Mapping[str, Any]) -> m.KpiOut:
        return self._client.request("POST", "/api/kpis", json=data, model=m.KpiOut)  # type: ignore[no-any-return]

    def set_kpi_target(self, kpi_id: int, data: m.KpiTargetIn | Mapping[str, Any]) -> m.KpiTargetOut:
        return self._client.request(  # type: ignore[no-any-return]
            "PUT", f"/api/kpis/{kpi_id}/targets", json=data, model=m.KpiTargetOut
        )

    def kpi_panel(
        self, period: str, *, user_id: int | None = None, team_id: int | None = None, history: int = 6
    ) -> list[m.KpiPanelItem]:
        """KPI panel of a user, a team or the company: plan, actual, percent, history."""
        params = {"period": period, "user_id": user_id, "team_id": team_id, "history": history}
        return self._client.request(  # type: ignore[no-any-return]
            "GET", "/api/kpis/panel", params=params, model=list[m.KpiPanelItem]
        )

    def manager_load(self) -> list[m.LoadOut]:
        return self._client.request("GET", "/api/kpis/load", model=list[m.LoadOut])  # type: ignore[no-any-return]

    def dashboards(self) -> list[m.DashboardOut]:
        return self._client.request(  # type: ignore[no-any-return]
            "GET", "/api/dashboards", model=list[m.DashboardOut]
        )

    def create_dashboard(self, data: m.DashboardIn | Mapping[str, Any]) -> m.DashboardOut:
        return self._client.request(  # type: ignore[no-any-return]
            "POST", "/api/dashboards", json=data, model=m.DashboardOut
        )

    def dashboard_tiles(self, dashboard_id: int, period: str | None = None) -> list[m.TileOut]:
        """A dashboard's tiles computed for you."""
        return self._client.request(  # type: ignore[no-any-return]
            "GET", f"/api/dashboards/{dashboard_id}/tiles", params={"period": period}, model=list[m.TileOut]
        )


class SyncKnowledgeBase:
    """The knowledge base plugin: articles (review, versions, diffs, votes), the expert
    system's advice with explanations, decision trees walked on records."""

    path = "/api/knowledge_base"

    def __init__(self, client: Client) -> None:
        self._client = client
        self.articles = Entity[m.KbArticleOut, m.KbArticleIn, m.KbArticlePatch](
            client, f"{self.path}/articles", m.KbArticleOut, m.KbArticlePage
        )
        self.categories = Entity[m.KbCategoryOut, m.KbCategoryIn, m.KbCategoryPatch](
            client, f"{self.path}/categories", m.KbCategoryOut, m.KbCategoryOutPage
        )
        self.rule_sets = Entity[m.KbRuleSetOut, m.KbRuleSetIn, m.KbRuleSetPatch](
            client, f"{self.path}/rule-sets", m.KbRuleSetOut, m.KbRuleSetOutPage
        )
        self.trees = Entity[m.KbTreeOut, m.KbTreeIn, m.KbTreePatch](
            client, f"{self.path}/trees", m.KbTreeOut, m.KbTreeOutPage
        )

    def _post(self, path: str, body: Any, model: Any) -> Any:
        return self._client._execute(Call("POST", f"{self.path}{path}", json=b.body(body), model=model))

    def submit(self, article_id: int) -> m.KbArticleOut:
        """Send a draft for review."""
        return self._post(f"/articles/{article_id}/submit", {}, m.KbArticleOut)  # type: ignore[no-any-return]

    def publish(self, article_id: int) -> m.KbArticleOut:
        """Approve an article in review (``knowledge_base.publish``)."""
        return self._post(f"/articles/{article_id}/publish", {}, m.KbArticleOut)  # type: ignore[no-any-return]

    def restore(self, article_id: int, revision: int) -> m.KbArticleOut:
        """Make an earlier version the working copy again (as a new version)."""
        body = {"revision": revision}
        return self._post(f"/articles/{article_id}/restore", body, m.KbArticleOut)  # type: ignore[no-any-return]

    def versions(self, article_id: int) -> list[m.KbArticleVersionOut]:
        call = Call("GET", f"{self.path}/articles/{article_id}/versions", model=list[m.KbArticleVersionOut])
        return self._client._execute(call)  # type: ignore[no-any-return]

    def diff(self, article_id: int, from_revision: int, to_revision: int) -> m.KbArticleDiff:
        """The lines changed between two versions."""
        params = {"from": from_revision, "to": to_revision}
        call = Call("GET", f"{self.path}/articles/{article_id}/diff", params, model=m.KbArticleDiff)
        return self._client._execute(call)  # type: ignore[no-any-return]

    def vote(self, article_id: int, helpful: bool) -> m.KbVoteOut:
        return self._post(f"/articles/{article_id}/vote", {"helpful": helpful}, m.KbVoteOut)  # type: ignore[no-any-return]

    def advise(self, kind: str, record_id: int) -> m.KbAdviceOut:
        """Recommendations for a party, deal or ticket, each with the rule and facts behind it."""
        body = {"kind": kind, "record_id": record_id}
        return self._post("/advise", body, m.KbAdviceOut)  # type: ignore[no-any-return]

    def feedback(
        self, recommendation_id: int, accepted: bool, comment: str = ""
    ) -> m.KbStoredRecommendationOut:
        body = {"accepted": accepted, "comment": comment}
        path = f"/recommendations/{recommendation_id}/feedback"
        return self._post(path, body, m.KbStoredRecommendationOut)  # type: ignore[no-any-return]

    def start_tree(self, tree_id: int, kind: str, record_id: int) -> m.KbRunOut:
        """Start walking a decision tree on a record; the path is kept on it."""
        body = {"kind": kind, "record_id": record_id}
        return self._post(f"/trees/{tree_id}/runs", body, m.KbRunOut)  # type: ignore[no-any-return]

    def answer(self, run_id: int, answer: str) -> m.KbRunOut:
        return self._post(f"/runs/{run_id}/answer", {"answer": answer}, m.KbRunOut)  # type: ignore[no-any-return]

    def runs(self, kind: str, record_id: int) -> list[m.KbRunOut]:
        params = {"kind": kind, "record_id": record_id}
        call = Call("GET", f"{self.path}/runs", params, model=list[m.KbRunOut])
        return self._client._execute(call)  # type: ignore[no-any-return]


class SyncReceivables:
    """The receivables plugin (docs/receivables.md): invoices and payments (Decimal amounts,
    per currency), allocation, import from accounting, ageing with drill-down, overdue clients,
    collection cases, promises to pay, statements and the collection report."""

    path = "/api/receivables"

    def __init__(self, client: Client) -> None:
        self._client = client
        self.invoices = Entity[m.InvoiceOut, m.InvoiceIn, m.InvoicePatch](
            client, f"{self.path}/invoices", m.InvoiceOut, m.InvoiceOutPage
        )
        #: Payments and credit notes (``kind``); applied oldest first unless told otherwise.
        self.payments = Entity[m.PaymentOut, m.PaymentIn, m.PaymentPatch](
            client, f"{self.path}/payments", m.PaymentOut, m.PaymentOutPage
        )

    def _get(self, path: str, model: Any, **params: Any) -> Any:
        return self._client._execute(Call("GET", f"{self.path}{path}", b.params(params), model=model))

    def _post(self, path: str, body: Any, model: Any) -> Any:
        return self._client._execute(Call("POST", f"{self.path}{path}", json=b.body(body), model=model))

    def allocate(
        self, payment_id: int, allocations: list[m.AllocationIn] | list[Mapping[str, Any]] | None = None
    ) -> m.AllocateOut:
        """Apply what is left of a payment: to the invoices named, or oldest due first."""
        body = {"allocations": [b.body(a) for a in allocations or []]}
        return self._post(f"/payments/{payment_id}/allocate", body, m.AllocateOut)  # type: ignore[no-any-return]

    def allocations(self, invoice_id: int) -> list[m.AllocationOut]:
        """What was applied to an invoice."""
        return self._get(f"/invoices/{invoice_id}/allocations", list[m.AllocationOut])  # type: ignore[no-any-return]

    def import_records(
        self, records: list[Mapping[str, Any]] | None = None, *, csv: str | None = None
    ) -> m.ImportOut:
        """Import from accounting (the JSON records, or a CSV file's text); idempotent by
        external id. The answer lists the rejected rows with their reasons."""
        body = {"records": [dict(r) for r in records]} if records is not None else {"csv": csv or ""}
        return self._post("/import", body, m.ImportOut)  # type: ignore[no-any-return]

    def ageing(
        self,
        *,
        as_of: datetime.date | None = None,
        group_by: str = "client",
        buckets: str | None = None,
        owner_id: int | None = None,
        team_id: int | None = None,
        currency: str | None = None,
    ) -> m.AgeingOut:
        """Open receivables per client, manager, team or company and currency, in buckets."""
        params = {"as_of": as_of, "group_by": group_by, "buckets": buckets, "owner_id": owner_id}
        params |= {"team_id": team_id, "currency": currency}
        return self._get("/ageing", m.AgeingOut, **params)  # type: ignore[no-any-return]

    def ageing_invoices(
        self,
        *,
        bucket: str,
        group_by: str = "client",
        group: int | None = None,
        as_of: datetime.date | None = None,
        buckets: str | None = None,
        currency: str | None = None,
    ) -> list[m.AgeingInvoice]:
        """The invoices behind one cell of the ageing table."""
        params = {"bucket": bucket, "group_by": group_by, "group": group, "as_of": as_of}
        params |= {"buckets": buckets, "currency": currency}
        return self._get("/ageing/invoices", list[m.AgeingInvoice], **params)  # type: ignore[no-any-return]

    def overdue_clients(
        self, *, mine: bool = True, as_of: datetime.date | None = None
    ) -> list[m.OverdueClient]:
        """Clients with overdue invoices, most urgent first (open amount × days overdue)."""
        return self._get("/overdue-clients", list[m.OverdueClient], mine=mine, as_of=as_of)  # type: ignore[no-any-return]

    def cases(self, *, party_id: int | None = None, status: str | None = None) -> list[m.CaseOut]:
        """Collection cases (``process_id``: the case's run of its dunning process)."""
        return self._get("/cases", list[m.CaseOut], party_id=party_id, status=status)  # type: ignore[no-any-return]

    def record_promise(self, promise: m.PromiseIn | Mapping[str, Any]) -> m.PromiseOut:
        """A promise to pay from a call: pauses the client's case until the day."""
        return self._post("/promises", promise, m.PromiseOut)  # type: ignore[no-any-return]

    def promises(self, *, party_id: int | None = None, status: str | None = None) -> list[m.PromiseOut]:
        return self._get("/promises", list[m.PromiseOut], party_id=party_id, status=status)  # type: ignore[no-any-return]

    def bounce(self, party_id: int, channel: str, detail: str = "") -> m.BounceOut:
        """A channel did not reach the client: later reminders use the next one."""
        body = {"channel": channel, "detail": detail}
        return self._post(f"/parties/{party_id}/bounce", body, m.BounceOut)  # type: ignore[no-any-return]

    def statement(self, party_id: int) -> m.StatementOut:
        """A client's account statement: open invoices, unallocated payments, totals."""
        return self._get(f"/parties/{party_id}/statement", m.StatementOut)  # type: ignore[no-any-return]

    def overdue_scan(self) -> m.ScanOut:
        """Run the overdue scan and the due dunning steps now (``receivables.manage``)."""
        return self._post("/overdue-scan", {}, m.ScanOut)  # type: ignore[no-any-return]

    def collection_report(self, date_from: datetime.date, date_to: datetime.date) -> list[m.CollectionRow]:
        """DSO, overdue ratio, CEI and promises kept per month, manager and currency."""
        params = {"date_from": date_from, "date_to": date_to}
        return self._get("/reports/collection", list[m.CollectionRow], **params)  # type: ignore[no-any-return]


class SyncMarketing:
    """The marketing plugin: segments (live counts, members, freezing), campaigns with cost
    lines and their return, leads and web forms (the public submission too), mailings (preview,
    send, progress), ABC/XYZ classes."""

    path = "/api/marketing"

    def __init__(self, client: Client) -> None:
        self._client = client
        self.segments = client.segments
        self.campaigns = client.campaigns
        self.costs = Entity[m.CostOut, m.CostIn, m.CostPatch](
            client, f"{self.path}/campaign-costs", m.CostOut, m.CostOutPage
        )
        self.leads = Entity[m.LeadOut, m.LeadIn, m.LeadPatch](
            client, f"{self.path}/leads", m.LeadOut, m.LeadOutPage
        )
        self.web_forms = Entity[m.WebFormOut, m.WebFormIn, m.WebFormPatch](
            client, f"{self.path}/web-forms", m.WebFormOut, m.WebFormOutPage
        )
        self.mailings = Entity[m.MailingOut, m.MailingIn, m.MailingPatch](
            client, f"{self.path}/mailings", m.MailingOut, m.MailingOutPage
        )

    def _call(self, method: str, path: str, model: Any, body: Any = None, **params: Any) -> Any:
        call = Call(method, f"{self.path}{path}", b.params(params), json=body, model=model)
        return self._client._execute(call)

    # -- segments

    def count_rules(self, rules: Mapping[str, Any]) -> int:
        """How many parties you may read match ``rules`` (nothing saved: the editor's count)."""
        out = self._call("POST", "/segments/preview", m.CountOut, {"rules": dict(rules)})
        return int(out.count)

    def count_members(self, segment_id: int) -> int:
        """How many of a saved segment's parties you may read (a dynamic one evaluated now)."""
        out = self._call("GET", f"/segments/{segment_id}/members/count", m.CountOut)
        return int(out.count)

    def members(self, segment_id: int, *, limit: int = 50, cursor: str | None = None) -> m.MembersPage:
        """One page of the segment's parties you may read (``next_cursor`` for the next)."""
        return self._call("GET", f"/segments/{segment_id}/members", m.MembersPage, limit=limit, cursor=cursor)

    def freeze(self, segment_id: int) -> m.SegmentOut:
        """Store a static segment's members again from its rules."""
        return self._call("POST", f"/segments/{segment_id}/freeze", m.SegmentOut)

    # -- campaigns and their return

    def campaign_return(self, campaign_id: int) -> m.CampaignFigures:
        """A campaign's responses, leads, conversion, revenue, cost per lead and ROI."""
        return self._call("GET", f"/campaigns/{campaign_id}/return", m.CampaignFigures)

    def return_report(self) -> list[m.CampaignFigures]:
        """The return of every campaign (first-touch attribution)."""
        return self._call("GET", "/reports/return", list[m.CampaignFigures])

    def channel_report(self) -> list[m.ChannelFigures]:
        """The return per channel."""
        return self._call("GET", "/reports/return/channels", list[m.ChannelFigures])

    # -- web forms

    def submit_form(self, form_key: str, fields: Mapping[str, Any]) -> bool:
        """Post a web form as the company's site does (no sign-in needed): True when accepted
        (a filled honeypot is accepted and stores nothing)."""
        out = self._call("POST", f"/forms/{form_key}", Any, dict(fields))
        return bool(out.get("accepted")) if isinstance(out, dict) else False

    # -- mailings

    def preview_mailing(self, mailing_id: int, party_id: int) -> m.MailingPreview:
        """The message as ``party_id`` would receive it (subject, sanitised HTML, text)."""
        return self._call("GET", f"/mailings/{mailing_id}/preview", m.MailingPreview, party_id=party_id)

    def send_mailing(self, mailing_id: int) -> m.MailingProgress:
        """Send the draft to its segment (a background job); its progress so far."""
        return self._call("POST", f"/mailings/{mailing_id}/send", m.MailingProgress)

    def mailing_progress(self, mailing_id: int) -> m.MailingProgress:
        """Recipients per state: queued, sending, sent, failed, late, skipped."""
        return self._call("GET", f"/mailings/{mailing_id}/progress", m.MailingProgress)

    # -- ABC/XYZ

    def class_settings(self) -> m.ClassSettings:
        return self._call("GET", "/classes/settings", m.ClassSettings)

    def set_class_settings(self, data: m.ClassSettingsIn | Mapping[str, Any]) -> m.ClassSettings:
        return self._call("PUT", "/classes/settings", m.ClassSettings, b.body(data))

    def recompute_classes(self) -> m.RecomputeOut:
        """Classify every client now (the scheduled job does it nightly)."""
        return self._call("POST", "/classes/recompute", m.RecomputeOut)

    def class_matrix(self) -> list[m.MatrixCell]:
        """Clients and revenue per ABC x XYZ cell (over the clients you may read)."""
        return self._call("GET", "/classes/matrix", list[m.MatrixCell])
