"""Typed HTTP client for the Tessera API: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

    from tessera_sdk import Client, models

    with Client("https://crm.example.com", token="tsr_...") as crm:
        acme = crm.parties.create(models.PartyIn(name="Acme", relations=["client"]))
        for party in crm.parties.list(status="current"):      # follows every page
            print(party.id, party.name)
        crm.parties.update(acme.id, {"website": "https://acme.example"}, version=acme.version)

* Results are ``tessera_sdk.models`` structs generated from the server's OpenAPI schema.
* Lists are iterated across pages (keyset cursors); ``.page()`` gives one page.
* 429 and 503 answers (and connection failures) are retried with exponential back-off,
  honouring ``Retry-After``; creates carry an ``Idempotency-Key`` so a retried create never
  makes a second record.
* ``AsyncClient`` is the same API awaited (lists are ``async for``); ``Client`` is generated
  from it (``_sync/client.py``), so both always offer the same resources.
* Error answers raise ``tessera_sdk.errors`` exceptions with the field errors attached.
"""

from __future__ import annotations

import msgspec

from tessera_sdk import models as m
from tessera_sdk._async.client import AsyncAttachments, AsyncClient, AsyncEntity, AsyncParties, AsyncTasks
from tessera_sdk._base import Page, RetryPolicy
from tessera_sdk._sync.client import Attachments, Client, Entity, Parties, Tasks
from tessera_sdk.errors import TesseraError

#: Resource attribute -> (path, output model, input model, patch model): what the client
#: covers; a test checks every entry against the OpenAPI schema.
ENTITY_RESOURCES: dict[
    str, tuple[str, type[msgspec.Struct], type[msgspec.Struct] | None, type[msgspec.Struct] | None]
] = {
    "parties": ("/api/parties", m.PartyOut, m.PartyIn, m.PartyPatch),
    "contacts": ("/api/contacts", m.ContactOut, m.ContactIn, m.ContactPatch),
    "activities": ("/api/activities", m.ActivityOut, m.ActivityIn, m.ActivityPatch),
    "tasks": ("/api/tasks", m.TaskOut, m.TaskIn, m.TaskPatch),
    "notes": ("/api/notes", m.NoteOut, m.NoteIn, m.NotePatch),
    "attachments": ("/api/attachments", m.AttachmentOut, None, None),
    "users": ("/api/users", m.UserOut, m.UserIn, m.UserPatch),
    "teams": ("/api/teams", m.TeamOut, m.TeamIn, m.TeamPatch),
    "roles": ("/api/roles", m.RoleOut, m.RoleIn, m.RolePatch),
    "substitutions": ("/api/substitutions", m.SubstitutionOut, m.SubstitutionIn, m.SubstitutionPatch),
    "segments": ("/api/marketing/segments", m.SegmentOut, m.SegmentIn, m.SegmentPatch),
    "campaigns": ("/api/marketing/campaigns", m.CampaignOut, m.CampaignIn, m.CampaignPatch),
}


__all__ = [
    "ENTITY_RESOURCES",
    "AsyncAttachments",
    "AsyncClient",
    "AsyncEntity",
    "AsyncParties",
    "AsyncTasks",
    "Attachments",
    "Client",
    "Entity",
    "Page",
    "Parties",
    "RetryPolicy",
    "Tasks",
    "TesseraError",
]
