"""The import page (``/app/imports``): upload a CSV or XLSX file of clients, activities or tasks,
map its columns, choose a dry run, then follow the background job (progress, counts, every
rejected row with its line and problems). The form is handed to the API's
``start_import`` and the job is the API's, so the page refuses and reports exactly what
``POST /api/imports/...`` does (docs/integrations.md, "The import page")."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.response import Redirect

from tessera import i18n
from tessera.api.imports import FIELDS, KINDS, start_import
from tessera.api.security import settings_of
from tessera.entities.tables import BackgroundJob
from tessera.errors import DomainError, NotFound, ValidationFailed
from tessera.i18n import N_
from tessera.web.fields import form_state
from tessera.web.forms import field_errors
from tessera.web.pages import check_csrf, current_principal, error_page, render

PAGE = "/app/imports"
#: What can be imported, with its label (translated in the template).
WHAT = {"parties": N_("Clients"), "activities": N_("Activities"), "tasks": N_("Tasks")}
FORM_FIELDS = {"file", "mapping", "dry_run", "all_or_nothing", "on_duplicate", "timezone", "external_system"}


def mapping_json(text: str) -> str:
    """The form's mapping, one ``Column = field`` per line, as the API's JSON object."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValidationFailed.field("mapping", f"line {number}: expected Column = field")
        column, target = line.rsplit("=", 1)
        pairs[column.strip()] = target.strip()
    return json.dumps(pairs, ensure_ascii=False) if pairs else ""


async def _jobs_of(principal: Any) -> list[dict[str, Any]]:
    rows = (
        await BackgroundJob.select(
            BackgroundJob.id,
            BackgroundJob.kind,
            BackgroundJob.status,
            BackgroundJob.payload,
            BackgroundJob.created_at,
        )
        .where(BackgroundJob.kind.is_in(list(KINDS.values())), BackgroundJob.created_by == principal.user_id)
        .order_by(BackgroundJob.id, ascending=False)
        .limit(20)
        .output(load_json=True)
    )
    what = {kind: name for name, kind in KINDS.items()}
    for row in rows:
        row["what"] = what.get(row["kind"], "parties")
        row["file"] = (row["payload"] or {}).get("filename") or ""
        row["dry_run"] = bool((row["payload"] or {}).get("dry_run"))
    return rows


async def _form(
    request: Request[Any, Any, Any],
    principal: Any,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    errors = dict(errors or {})
    return render(
        request,
        "imports.html",
        status=status,
        principal=principal,
        what=WHAT,
        form=form or {"what": request.query_params.get("what", "parties")},
        error=errors.pop("", None),
        errors=errors,
        jobs=await _jobs_of(principal),
    )


@get(PAGE, include_in_schema=False)
async def imports_page(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _form(request, principal)


@post(PAGE, include_in_schema=False, status_code=303)
async def start(request: Request[Any, Any, Any]) -> Response[Any]:
    """Start an import from the form (multipart) and show its job."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    raw = await request.form()
    form = form_state(raw)
    check_csrf(principal, form)
    what = str(form.get("what") or "")
    try:
        if what not in WHAT:
            raise ValidationFailed.field("what", "must be clients, activities or tasks")
        data: dict[str, Any] = {
            k: v for k, v in form.items() if k in FIELDS[what] and k != "mapping" and v not in ("", None)
        }
        for flag in ("dry_run", "all_or_nothing"):
            data[flag] = "true" if form.get(flag) else "false"
        mapping = mapping_json(str(form.get("mapping") or ""))
        if mapping:
            data["mapping"] = mapping
        upload = raw.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            data["file"] = upload
        started = await start_import(what, principal, data, settings_of(request).data_dir)
    except DomainError as exc:
        if exc.status != 422:
            return error_page(request, principal, exc)
        return await _form(
            request, principal, form=form, errors=field_errors(exc, FORM_FIELDS | {"what"}), status=422
        )
    return Redirect(f"{PAGE}/{started.job_id}", status_code=303)


@get(f"{PAGE}/{{job_id:int}}", include_in_schema=False)
async def job_page(request: Request[Any, Any, Any], job_id: int) -> Response[Any]:
    """An import's progress while it runs (the page reloads itself), then its report."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    job = (
        await BackgroundJob.select()
        .where(BackgroundJob.id == job_id, BackgroundJob.kind.is_in(list(KINDS.values())))
        .first()
        .output(load_json=True)
    )
    if job is None or (job["created_by"] != principal.user_id and not principal.can("job.manage")):
        return error_page(
            request, principal, NotFound(i18n.gettext("There is no such record, or you may not see it."))
        )
    what = {kind: name for name, kind in KINDS.items()}[job["kind"]]
    progress = job["progress"] or {}
    return render(
        request,
        "import_job.html",
        principal=principal,
        job=job,
        what=what,
        what_label=WHAT[what],
        progress=progress,
        result=job["result"] or {},
        payload=job["payload"] or {},
        running=job["status"] in ("queued", "running"),
    )


HANDLERS = [imports_page, start, job_page]
