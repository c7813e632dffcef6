"""Routes of imports through the API (``tessera.imports``, ``tessera.record_imports``): upload a
CSV or XLSX file of parties with their contact persons, of activities or of tasks; it is checked
and imported by a background job whose progress and report are at
``GET /api/jobs/background/{id}``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import Example
from litestar.params import Body
from msgspec import Struct

from tessera import audit, events, imports, jobs, record_imports
from tessera.api.crud import MAX_IDEMPOTENCY_KEY
from tessera.api.security import settings_of
from tessera.entities.activities import ACTIVITY
from tessera.entities.parties import PARTY
from tessera.entities.tasks import TASK
from tessera.errors import ValidationFailed
from tessera.importer import DUPLICATE_POLICIES, ImportFailed, parse_mapping
from tessera.permissions import Principal

#: Largest file accepted (100,000 rows of a dozen columns are about 20 MB).
MAX_IMPORT_BYTES = 200 * 1024 * 1024


class ImportStarted(Struct, kw_only=True):
    #: The background job: ``GET /api/jobs/background/{job_id}`` for progress and the report.
    job_id: int
    status: str
    dry_run: bool


def _flag(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value in (None, ""):
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValidationFailed.field(name, "must be true or false")


#: Multipart fields of each import (besides ``file``).
FIELDS = {
    "parties": {"mapping", "dry_run", "on_duplicate", "all_or_nothing", "owner_email", "encoding"},
    "activities": {"mapping", "dry_run", "all_or_nothing", "encoding", "external_system", "timezone"},
    "tasks": {"mapping", "dry_run", "all_or_nothing", "encoding", "external_system", "timezone"},
}
KINDS = {"parties": imports.KIND, **record_imports.KINDS}
SPECS = {"parties": PARTY, "activities": ACTIVITY, "tasks": TASK}


async def start_import(
    what: str,
    principal: Principal,
    data: dict[str, Any],
    data_dir: Path,
    idempotency_key: str | None = None,
) -> ImportStarted:
    """Check an upload's fields and queue its import job: the API's routes and the import page
    (``/app/imports``) both start imports here, so they refuse the same input the same way."""
    SPECS[what].require(principal, "write")
    upload = data.get("file")
    if not isinstance(upload, UploadFile):
        raise ValidationFailed.field("file", "a multipart file field named 'file' is required")
    unknown = set(data) - FIELDS[what] - {"file"}
    if unknown:
        raise ValidationFailed.field(sorted(unknown)[0], "is not a field of an import")
    mapping_text = str(data.get("mapping") or "").strip()
    mapping: dict[str, str] = {}
    if mapping_text:
        try:
            raw = json.loads(mapping_text)
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise ValueError("a JSON object of column: field")
            pairs = {str(k): v for k, v in raw.items()}
            if what == "parties":
                mapping = parse_mapping(pairs)
            else:
                mapping = record_imports.parse_mapping(record_imports.RECORD_KINDS[what], pairs)
        except (ValueError, ImportFailed) as exc:
            raise ValidationFailed.field("mapping", str(exc)) from None
    on_duplicate = str(data.get("on_duplicate") or "skip")
    if on_duplicate not in DUPLICATE_POLICIES:
        raise ValidationFailed.field("on_duplicate", f"must be one of {', '.join(DUPLICATE_POLICIES)}")
    dry_run = _flag(data, "dry_run", False)
    all_or_nothing = _flag(data, "all_or_nothing", False)
    encoding = str(data.get("encoding") or "") or None
    if encoding is not None:
        try:
            "".encode(encoding)
        except LookupError:
            raise ValidationFailed.field("encoding", f"unknown encoding {encoding!r}") from None
    timezone = str(data.get("timezone") or "").strip() or None
    try:
        record_imports.zone_of(timezone)
    except ValueError as exc:
        raise ValidationFailed.field("timezone", str(exc)) from None
    system = str(data.get("external_system") or "accounting").strip()
    if not re.fullmatch(r"[a-z0-9_.-]{1,50}", system):
        raise ValidationFailed.field("external_system", "must be 1-50 of a-z, 0-9, _ . -")
    key = idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed.field("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} characters")
    content = await upload.read()
    if not content:
        raise ValidationFailed.field("file", "is empty")
    if len(content) > MAX_IMPORT_BYTES:
        raise ValidationFailed.field("file", f"is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB")
    try:
        path = imports.store_upload(data_dir, upload.filename or "import.csv", content)
    except ValueError as exc:
        raise ValidationFailed.field("file", str(exc)) from None
    payload: dict[str, Any] = {
        "path": str(path),
        "filename": upload.filename,
        "mapping": mapping,
        "dry_run": dry_run,
        "skip_invalid": not all_or_nothing,
        "encoding": encoding,
    }
    if what == "parties":
        payload |= {"on_duplicate": on_duplicate, "owner_email": str(data.get("owner_email") or "")}
    else:
        payload |= {"external_system": system, "timezone": timezone}
    async with events.unit_of_work():
        job_id = await jobs.enqueue(
            KINDS[what],
            payload,
            max_attempts=5,
            # The parties' key keeps its old form: a retry across an upgrade still finds its job.
            dedup_key=(
                f"import:{principal.user_id}:{key}"
                if what == "parties"
                else f"import.{what}:{principal.user_id}:{key}"
            )
            if key
            else None,
        )
        await audit.record(
            "import_started",
            SPECS[what].name,
            None,
            {"file": [None, upload.filename], "job": [None, job_id], "dry_run": [None, dry_run]},
        )
    return ImportStarted(job_id=job_id, status="queued", dry_run=dry_run)


@post(
    "/api/imports/parties",
    operation_id="import_parties",
    tags=["imports"],
    status_code=202,
    request_body_examples=[Example(summary="multipart: file, mapping, dry_run, on_duplicate")],
)
async def import_parties_route(
    request: Request[Any, Any, Any],
    principal: Principal,
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> ImportStarted:
    """Import parties (with a contact person per row) from a CSV or XLSX file, as a background
    job. Multipart fields: ``file``; ``mapping`` (JSON ``{"Column": "field"}``, field ``-``
    ignores a column); ``dry_run`` (check only: the report lists every bad row); ``on_duplicate``
    (``skip`` by default, ``update`` or ``error``; duplicates by tax id, e-mail or phone);
    ``all_or_nothing`` (import nothing when a row is bad; default: the good rows are imported,
    the bad ones reported); ``owner_email`` (owner of rows naming none; default: you);
    ``encoding`` (CSV; default: detected). With an ``Idempotency-Key`` a retried upload returns
    the first job."""
    return await start_import(
        "parties", principal, data, settings_of(request).data_dir, request.headers.get("Idempotency-Key")
    )


@post(
    "/api/imports/activities",
    operation_id="import_activities",
    tags=["imports"],
    status_code=202,
    request_body_examples=[Example(summary="multipart: file, mapping, dry_run, external_system, timezone")],
)
async def import_activities_route(
    request: Request[Any, Any, Any],
    principal: Principal,
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> ImportStarted:
    """Import activities (calls, meetings, e-mails ...) from a CSV or XLSX file, as a background
    job; each row is checked and created as ``POST /api/activities`` would. Multipart fields:
    ``file``; ``mapping`` (JSON ``{"Column": "field"}``); ``dry_run``; ``all_or_nothing``;
    ``encoding``; ``external_system`` (of the ``party_external_id`` column, default
    ``accounting``); ``timezone`` (of dates written without one, default UTC). A row names its
    party by external id, tax id, e-mail or phone. With an ``Idempotency-Key`` a retried upload
    returns the first job."""
    return await start_import(
        "activities", principal, data, settings_of(request).data_dir, request.headers.get("Idempotency-Key")
    )


@post(
    "/api/imports/tasks",
    operation_id="import_tasks",
    tags=["imports"],
    status_code=202,
    request_body_examples=[Example(summary="multipart: file, mapping, dry_run, external_system, timezone")],
)
async def import_tasks_route(
    request: Request[Any, Any, Any],
    principal: Principal,
    data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> ImportStarted:
    """Import tasks from a CSV or XLSX file, as a background job; each row is checked and
    created as ``POST /api/tasks`` would (assignee and controller by e-mail). Fields as for
    ``/api/imports/activities``."""
    return await start_import(
        "tasks", principal, data, settings_of(request).data_dir, request.headers.get("Idempotency-Key")
    )


HANDLERS = [import_parties_route, import_activities_route, import_tasks_route]
