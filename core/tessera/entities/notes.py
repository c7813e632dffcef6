"""Notes and attachments on a party (or on any record through ``subject_ref``)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from msgspec import Meta, Struct

from tessera import clock, events
from tessera.entities import service
from tessera.entities.dto import Id, partial
from tessera.entities.parties import PARTY
from tessera.entities.tables import Attachment, Note
from tessera.errors import PermissionDenied, ValidationFailed
from tessera.permissions import Principal

MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024


class NoteIn(Struct, kw_only=True, forbid_unknown_fields=True):
    body: Annotated[str, Meta(min_length=1, max_length=100_000)]
    party_id: Id | None = None
    subject_ref: Annotated[str, Meta(max_length=100)] = ""


NotePatch = partial(NoteIn, "NotePatch")


class NoteOut(Struct, kw_only=True):
    id: int
    party_id: int | None
    subject_ref: str
    body: str
    author_id: int | None
    created_at: datetime
    updated_at: datetime
    version: int


class AttachmentOut(Struct, kw_only=True):
    id: int
    party_id: int | None
    subject_ref: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by_id: int | None
    created_at: datetime


def _visibility(table: Any, author: Any) -> Any:
    def visibility(principal: Principal) -> Any:
        own = principal.owner_where(author)
        if own is None:
            return None
        return own | principal.owner_where(table.party_id.owner_id, table.party_id.team_id)

    return visibility


def _write_visibility(author: Any) -> Any:
    """Notes and files are changed or deleted by their author (and the readers of the author's
    records); the client's manager only reads those of others on the client."""

    def write_visibility(principal: Principal) -> Any:
        return principal.owner_where(author)

    return write_visibility


async def prepare_note(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if existing is None:
        values["author_id"] = principal.user_id
    elif existing["author_id"] != principal.user_id and not principal.can("user.manage"):
        raise PermissionDenied("Only the author may edit a note")
    await service.require_visible(PARTY, principal, values.get("party_id"), "party_id")
    return values


NOTE = service.EntitySpec(
    name="note",
    table=Note,
    permission="note",
    visibility=_visibility(Note, Note.author_id),
    write_visibility=_write_visibility(Note.author_id),
    order_fields=("id", "created_at"),
    prepare=prepare_note,
    custom_fields=False,
)

ATTACHMENT = service.EntitySpec(
    name="attachment",
    table=Attachment,
    permission="note",
    visibility=_visibility(Attachment, Attachment.uploaded_by_id),
    write_visibility=_write_visibility(Attachment.uploaded_by_id),
    order_fields=("id", "created_at"),
    custom_fields=False,
    hidden=("storage_url",),
)


async def store_attachment(
    principal: Principal,
    data_dir: Path,
    filename: str,
    content_type: str,
    content: bytes,
    party_id: int | None,
    subject_ref: str = "",
) -> dict[str, Any]:
    """Write the file under ``data_dir/attachments`` (content-addressed, so a retried upload
    never duplicates bytes) and record it."""
    principal.require("note.write")
    if not filename or "/" in filename or "\\" in filename or filename in (".", ".."):
        raise ValidationFailed.field("file", "needs a plain file name")
    # The columns' lengths: checked here so a long name is a 422, not a database error.
    if len(filename) > 300:
        raise ValidationFailed.field("file", "file name is longer than 300 characters")
    if len(content_type or "") > 200:
        raise ValidationFailed.field("file", "content type is longer than 200 characters")
    if len(subject_ref) > 100:
        raise ValidationFailed.field("subject_ref", "is longer than 100 characters")
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise ValidationFailed.field("file", f"is larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB")
    await service.require_visible(PARTY, principal, party_id, "party_id")
    digest = hashlib.sha256(content).hexdigest()
    folder = data_dir / "attachments" / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / digest
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
    async with events.unit_of_work():
        return await service.create(
            ATTACHMENT,
            principal,
            {
                "party_id": party_id,
                "subject_ref": subject_ref,
                "filename": filename,
                "content_type": content_type or "application/octet-stream",
                "size": len(content),
                "sha256": digest,
                "storage_url": path.resolve().as_uri(),
                "uploaded_by_id": principal.user_id,
                "created_at": clock.now(),
            },
        )


async def attachment_path(principal: Principal, attachment_id: int) -> tuple[dict[str, Any], Path]:
    row = await service.get(ATTACHMENT, principal, attachment_id)
    stored = await Attachment.select(Attachment.storage_url).where(Attachment.id == attachment_id).first()
    assert stored is not None
    url = stored["storage_url"]
    if not url.startswith("file://"):
        raise ValidationFailed.field("storage_url", "only local files can be downloaded through the API")
    # as_uri() percent-encodes spaces and non-ASCII letters: decode, do not just strip "file://".
    return row, Path(url2pathname(urlparse(url).path))
