"""Create, edit and delete from the web UI (issue 15 item 3) and the client card (item 4):
parties with contacts, channels and custom fields, activities, notes, attachments and tasks,
through the pages a person uses, read back through the API. Forms are refused for the same
reasons as the API (beside the field, input kept); what one may not change answers 403, what
one may not see 404; every POST needs the form's CSRF token."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest

SCHEMA = {
    "properties": {
        "segment": {"type": "string", "enum": ["retail", "wholesale"], "title": "Segment"},
        "employees": {"type": "integer", "minimum": 1, "title": "Employees"},
        "vip": {"type": "boolean", "title": "VIP"},
        "founded": {"type": "string", "format": "date", "title": "Founded"},
    }
}


def _field_error(text: str, field: str) -> str | None:
    """The error shown beside ``field`` (in its ``<p class="field">``), or None."""
    for block in re.findall(r'<p class="field">(.*?)</p>', text, re.S):
        if f'name="{field}"' in block:
            match = re.search(r'class="field-error"[^>]*>([^<]+)<', block)
            return html.unescape(match.group(1)) if match else None
    raise AssertionError(f"no field {field} on the page")


def _value(text: str, field: str) -> str | None:
    match = re.search(rf'name="{re.escape(field)}"[^>]*value="([^"]*)"', text)
    return html.unescape(match.group(1)) if match else None


def _party_form(token: str, **extra: str) -> dict[str, Any]:
    form = {
        "csrf_token": token,
        "name": "Ромашка Trading",
        "kind": "organisation",
        "relations": ["client", "partner"],
        "status": "potential",
        "tags": "vip, wholesale",
        "phones.0.number": "+7 (495) 123-45-67",
        "phones.0.type": "work",
        "emails.0.address": "Info@Romashka.example",
        "emails.0.type": "work",
        "addresses.0.text": "Lenina 1",
        "addresses.0.city": "Moscow",
        "custom.segment": "wholesale",
        "custom.employees": "250",
        "custom.vip": "on",
        "custom.founded": "2001-05-17",
    }
    form.update(extra)
    return form


async def test_create_a_party_with_a_contact_and_custom_fields_then_edit_it(crm: Any) -> None:
    admin = await crm.user("admin")
    assert (await crm.put("/api/custom-fields/party", admin, json=SCHEMA)).status_code == 200
    manager = await crm.user("manager", name="Olga Manager")
    token = await crm.sign_in(manager)

    page = await crm.client.get("/app/parties/new")
    assert page.status_code == 200
    for label in ("Segment", "Employees", "VIP", "Founded", "Phones", "E-mails", "Addresses"):
        assert label in page.text
    # Every input has a label (for= the input's id).
    ids = set(re.findall(r'<(?:input|select|textarea) id="([^"]+)"', page.text))
    labelled = set(re.findall(r'<label for="([^"]+)"', page.text))
    assert ids and ids <= labelled, ids - labelled

    r = await crm.client.post("/app/parties/new", data=_party_form(token))
    assert r.status_code == 303, r.text[:2000]
    party_id = int(r.headers["location"].rsplit("/", 1)[1])
    party = (await crm.get(f"/api/parties/{party_id}", manager)).json()
    assert party["name"] == "Ромашка Trading" and party["owner_id"] == manager["id"]
    assert party["relations"] == ["client", "partner"] and party["tags"] == ["vip", "wholesale"]
    assert party["phones"] == [{"number": "+74951234567", "type": "work"}]
    assert party["emails"][0]["address"] == "info@romashka.example"
    assert party["addresses"][0]["text"] == "Lenina 1" and party["addresses"][0]["city"] == "Moscow"
    assert party["custom"] == {"segment": "wholesale", "employees": 250, "vip": True, "founded": "2001-05-17"}

    # A contact from the card.
    card = await crm.client.get(f"/app/parties/{party_id}")
    assert f'href="/app/parties/{party_id}/contacts/new"' in card.text
    assert f'href="/app/parties/{party_id}/edit"' in card.text
    assert "Employees: 250" in card.text
    r = await crm.client.post(
        f"/app/parties/{party_id}/contacts/new",
        data={
            "csrf_token": token,
            "name": "Ivan Petrov",
            "position": "Buyer",
            "phones.0.number": "8 916 000-11-22",
            "phones.0.type": "mobile",
            "emails.0.address": "ivan@romashka.example",
        },
    )
    assert r.status_code == 303, r.text[:2000]
    contacts = (await crm.get("/api/contacts", manager, params={"party_id": party_id})).json()["items"]
    assert [(c["name"], c["position"], c["phones"][0]["number"]) for c in contacts] == [
        ("Ivan Petrov", "Buyer", "+79160001122")
    ]
    card = await crm.client.get(f"/app/parties/{party_id}")
    assert "Ivan Petrov" in card.text

    # Edit: the form shows what is stored; a change is saved; an emptied custom field goes.
    edit = await crm.client.get(f"/app/parties/{party_id}/edit")
    assert edit.status_code == 200
    assert _value(edit.text, "name") == "Ромашка Trading" and _value(edit.text, "custom.employees") == "250"
    version = _value(edit.text, "version")
    changed = _party_form(token, name="Romashka Group", status="current", version=version or "")
    changed["custom.employees"] = ""
    changed["phones.0.number"] = ""  # the row emptied: the phone is removed
    r = await crm.client.post(f"/app/parties/{party_id}/edit", data=changed)
    assert r.status_code == 303, r.text[:2000]
    party = (await crm.get(f"/api/parties/{party_id}", manager)).json()
    assert party["name"] == "Romashka Group" and party["status"] == "current"
    assert party["phones"] == [] and "employees" not in party["custom"] and party["custom"]["vip"] is True

    # The same form sent again with the version it was read at: someone changed it meanwhile.
    stale = await crm.client.post(f"/app/parties/{party_id}/edit", data={**changed, "name": "Late edit"})
    assert stale.status_code == 409
    assert "Someone else changed this record" in stale.text and _value(stale.text, "name") == "Late edit"
    assert (await crm.get(f"/api/parties/{party_id}", manager)).json()["name"] == "Romashka Group"

    # Contact edit and its contact list on the card.
    contact_id = contacts[0]["id"]
    form = await crm.client.get(f"/app/contacts/{contact_id}/edit")
    assert _value(form.text, "name") == "Ivan Petrov"
    r = await crm.client.post(
        f"/app/contacts/{contact_id}/edit",
        data={
            "csrf_token": token,
            "name": "Ivan S. Petrov",
            "position": "Head of purchasing",
            "version": _value(form.text, "version") or "",
            "phones.0.number": "8 916 000-11-22",
        },
    )
    assert r.status_code == 303, r.text[:2000]
    contact = (await crm.get(f"/api/contacts/{contact_id}", manager)).json()
    assert contact["name"] == "Ivan S. Petrov" and contact["position"] == "Head of purchasing"
    assert contact["emails"] == []


async def test_bad_inputs_are_refused_like_the_api_beside_the_field(crm: Any) -> None:
    admin = await crm.user("admin")
    assert (await crm.put("/api/custom-fields/party", admin, json=SCHEMA)).status_code == 200
    manager = await crm.user("manager")
    token = await crm.sign_in(manager)
    cases = [
        ({"name": "   "}, "name", "must not be blank"),
        ({"phones.0.number": "12"}, "phones.0.number", "is not a possible phone number"),
        ({"emails.0.address": "not-an-address"}, "emails.0.address", "is not a valid e-mail address"),
        ({"custom.employees": "many"}, "custom.employees", "must be a whole number"),
        ({"custom.employees": "0"}, "custom.employees", "must be at least 1"),
        ({"custom.segment": "space"}, "custom.segment", "is not one of the allowed choices"),
        ({"custom.founded": "17.05.2001"}, "custom.founded", "is not a valid date"),
    ]
    api_values = {
        "phones.0.number": ("phones", [{"number": "12"}]),
        "emails.0.address": ("emails", [{"address": "not-an-address"}]),
        "custom.employees": ("custom", None),
        "custom.segment": ("custom", {"segment": "space"}),
        "custom.founded": ("custom", {"founded": "17.05.2001"}),
    }
    for change, field, message in cases:
        sent = {**_party_form(token), **change}
        r = await crm.client.post("/app/parties/new", data=sent)
        assert r.status_code == 422, (field, r.status_code, r.text[:500])
        assert "text/html" in r.headers["content-type"]
        assert _field_error(r.text, field) == message, field
        # Only that field is marked; what the user typed is still there.
        others = {"name", "phones.0.number", "emails.0.address", "custom.employees", "custom.segment"}
        assert all(_field_error(r.text, other) is None for other in others - {field}), field
        kept = "Ромашка Trading" if field != "name" else "   "
        assert _value(r.text, "name") == kept
        assert _value(r.text, field) == change[field] or field == "custom.segment"
        assert "rule:" not in r.text and "Expected `" not in r.text
        # The API refuses the same value for the same field.
        body: dict[str, Any] = {"name": change.get("name", "Acme")}
        if field in api_values:
            key, value = api_values[field]
            if field == "custom.employees":
                value = {"employees": "many" if change[field] == "many" else 0}
            body[key] = value
        api = await crm.post("/api/parties", manager, json=body)
        assert api.status_code == 422 and [e["field"] for e in api.json()["errors"]] == [field], api.text
    assert (await crm.get("/api/parties/count", manager)).json()["count"] == 0

    # The same in Russian: the reason in the user's language.
    await crm.client.post("/app/language", data={"csrf_token": token, "locale": "ru", "next": "/app"})
    r = await crm.client.post("/app/parties/new", data={**_party_form(token), "custom.employees": "many"})
    assert r.status_code == 422 and _field_error(r.text, "custom.employees") == "должно быть целым числом"


async def test_who_may_only_read_gets_403_and_who_may_not_see_gets_404(crm: Any) -> None:
    owner = await crm.user("manager", name="Owner")
    colleague = await crm.user("manager", name="Colleague")
    stranger = await crm.user("manager", name="Stranger")
    head = await crm.user("admin", name="Boss")
    party = (await crm.post("/api/parties", owner, json={"name": "Acme"})).json()
    task = {"title": "Call Acme", "party_id": party["id"], "assignee_id": colleague["id"]}
    assert (await crm.post("/api/tasks", owner, json=task)).status_code == 201

    # The owner may edit but may not delete (no party.delete): no delete link, 403 by URL.
    token = await crm.sign_in(owner)
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert "/edit" in card.text and f"/app/parties/{party['id']}/delete" not in card.text
    assert (await crm.client.get(f"/app/parties/{party['id']}/delete")).status_code == 403
    r = await crm.client.post(f"/app/parties/{party['id']}/delete", data={"csrf_token": token})
    assert r.status_code == 403

    # The colleague reads the client through the task, and may not change it.
    token = await crm.sign_in(colleague)
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert card.status_code == 200 and f"/app/parties/{party['id']}/edit" not in card.text
    edit = await crm.client.get(f"/app/parties/{party['id']}/edit")
    assert edit.status_code == 403 and "may read this record but not change it" in edit.text
    r = await crm.client.post(
        f"/app/parties/{party['id']}/edit", data={"csrf_token": token, "name": "Taken over"}
    )
    assert r.status_code == 403
    assert (await crm.client.get(f"/app/parties/{party['id']}/contacts/new")).status_code == 403

    # Who may not see it at all: 404 everywhere, the name nowhere.
    await crm.sign_in(stranger)
    for url in ("", "/edit", "/delete", "/contacts/new"):
        page = await crm.client.get(f"/app/parties/{party['id']}{url}")
        assert page.status_code == 404 and "Acme" not in page.text, url

    # Who may delete: asked first, then it is gone.
    token = await crm.sign_in(head)
    confirm = await crm.client.get(f"/app/parties/{party['id']}/delete")
    assert confirm.status_code == 200 and "Acme" in confirm.text and "Yes, delete" in confirm.text
    version = _value(confirm.text, "version")
    r = await crm.client.post(
        f"/app/parties/{party['id']}/delete", data={"csrf_token": token, "version": version or ""}
    )
    assert r.status_code == 303 and r.headers["location"] == "/app/parties"
    assert (await crm.get(f"/api/parties/{party['id']}", head)).status_code == 404
    assert (await crm.get(f"/api/parties/{party['id']}", owner)).status_code == 404


async def test_contacts_are_removed_only_by_who_may_delete_them(crm: Any) -> None:
    owner = await crm.user("manager")
    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", owner, json={"name": "Acme"})).json()
    contact = (await crm.post("/api/contacts", owner, json={"party_id": party["id"], "name": "Ivan"})).json()
    token = await crm.sign_in(owner)
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert f"/app/contacts/{contact['id']}/edit" in card.text
    assert f"/app/contacts/{contact['id']}/delete" not in card.text  # no party.delete
    r = await crm.client.post(f"/app/contacts/{contact['id']}/delete", data={"csrf_token": token})
    assert r.status_code == 403
    token = await crm.sign_in(admin)
    confirm = await crm.client.get(f"/app/contacts/{contact['id']}/delete")
    assert confirm.status_code == 200 and "Ivan" in confirm.text
    r = await crm.client.post(
        f"/app/contacts/{contact['id']}/delete",
        data={"csrf_token": token, "version": _value(confirm.text, "version") or ""},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/app/parties/{party['id']}#contacts"
    assert (await crm.get(f"/api/contacts/{contact['id']}", admin)).status_code == 404


async def test_plan_a_meeting_log_a_call_mark_done_and_see_overdue(crm: Any, frozen_clock: Any) -> None:
    manager = await crm.user("manager", name="Olga")
    colleague = await crm.user("manager", name="Pavel")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    contact = (
        await crm.post("/api/contacts", manager, json={"party_id": party["id"], "name": "Ivan"})
    ).json()
    now = frozen_clock()
    overdue = {
        "type": "call",
        "subject": "Forgotten call",
        "status": "planned",
        "starts_at": (now - timedelta(days=1)).isoformat(),
        "party_id": party["id"],
    }
    assert (await crm.post("/api/activities", manager, json=overdue)).status_code == 201
    token = await crm.sign_in(manager)
    url = f"/app/parties/{party['id']}/activities"
    when = (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    r = await crm.client.post(
        url,
        data={
            "csrf_token": token,
            "type": "meeting",
            "subject": "Contract meeting",
            "starts_at": when,
            "duration_minutes": "90",
            "participant_user_ids": [str(colleague["id"])],
            "participant_contact_ids": [str(contact["id"])],
            "agreements": "Bring the draft",
        },
    )
    assert r.status_code == 303, r.text[:2000]
    acts = (await crm.get("/api/activities", manager, params={"party_id": party["id"]})).json()["items"]
    meeting = next(a for a in acts if a["subject"] == "Contract meeting")
    assert meeting["status"] == "planned" and meeting["duration_minutes"] == 90
    assert meeting["participant_user_ids"] == [colleague["id"]]
    assert meeting["participant_contact_ids"] == [contact["id"]]

    card = (await crm.client.get(f"/app/parties/{party['id']}")).text

    def item(subject: str) -> tuple[str, str]:
        match = re.search(r'<li class="tl-item ([\w-]+)">((?:(?!</li>).)*?)' + subject, card, re.S)
        assert match, subject
        return match.group(1), match.group(2)

    assert item("Contract meeting")[0] == "tl-planned" and "Planned" in item("Contract meeting")[1]
    assert item("Forgotten call")[0] == "tl-overdue" and "Overdue" in item("Forgotten call")[1]
    assert "Agreements reached: Bring the draft" in card
    # Who else works with this client: the colleague takes part in the meeting.
    assert "Pavel" in card and "Takes part in activities" in card

    # Mark the overdue call done from the card.
    call = next(a for a in acts if a["subject"] == "Forgotten call")
    assert f'action="/app/activities/{call["id"]}/done"' in card
    shown = re.search(
        rf'action="/app/activities/{call["id"]}/done">.*?name="version" value="(\d+)"', card, re.S
    )
    assert shown and shown.group(1) == str(call["version"])
    # Changed by someone else since the card was shown: refused, not applied blindly.
    patched = await crm.patch(f"/api/activities/{call['id']}", manager, json={"subject": "Forgotten call!"})
    assert patched.status_code == 200
    stale = await crm.client.post(
        f"/app/activities/{call['id']}/done", data={"csrf_token": token, "version": shown.group(1)}
    )
    assert stale.status_code == 409 and "Someone else changed this record" in stale.text
    assert (await crm.get(f"/api/activities/{call['id']}", manager)).json()["status"] == "planned"
    r = await crm.client.post(f"/app/activities/{call['id']}/done", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await crm.get(f"/api/activities/{call['id']}", manager)).json()["status"] == "done"
    card = (await crm.client.get(f"/app/parties/{party['id']}")).text
    assert item("Forgotten call")[0] == "tl-past"

    # Edit the meeting: a new subject, no contact any more; a bad duration is refused.
    edit = await crm.client.get(f"/app/activities/{meeting['id']}/edit")
    assert edit.status_code == 200 and _value(edit.text, "subject") == "Contract meeting"
    form = {
        "csrf_token": token,
        "version": _value(edit.text, "version") or "",
        "type": "meeting",
        "subject": "Contract signing",
        "status": "planned",
        "starts_at": when,
        "duration_minutes": "-5",
        "participant_user_ids": [str(colleague["id"])],
    }
    bad = await crm.client.post(f"/app/activities/{meeting['id']}/edit", data=form)
    assert bad.status_code == 422 and _field_error(bad.text, "duration_minutes") == "must be at least 0"
    assert _value(bad.text, "subject") == "Contract signing"
    r = await crm.client.post(
        f"/app/activities/{meeting['id']}/edit", data={**form, "duration_minutes": "60"}
    )
    assert r.status_code == 303, r.text[:2000]
    got = (await crm.get(f"/api/activities/{meeting['id']}", manager)).json()
    assert got["subject"] == "Contract signing" and got["duration_minutes"] == 60
    assert got["participant_contact_ids"] == []

    # The colleague takes part but may not change it: no edit link, 403 by URL.
    await crm.sign_in(colleague)
    assert (await crm.client.get(f"/app/activities/{meeting['id']}/edit")).status_code == 403


async def test_notes_and_attachments_from_the_card(crm: Any) -> None:
    manager = await crm.user("manager")
    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    token = await crm.sign_in(manager)
    r = await crm.client.post(f"/app/parties/{party['id']}/notes", data={"csrf_token": token, "body": " "})
    assert r.status_code == 422 and _field_error(r.text, "body") == "must not be blank"
    r = await crm.client.post(
        f"/app/parties/{party['id']}/notes", data={"csrf_token": token, "body": "Prefers calls after 3 pm"}
    )
    assert r.status_code == 303
    listed = (await crm.get("/api/notes", manager, params={"party_id": party["id"]})).json()["items"]
    assert [n["body"] for n in listed] == ["Prefers calls after 3 pm"]

    content = "Договор №1\n".encode() * 100
    r = await crm.client.post(
        f"/app/parties/{party['id']}/attachments",
        data={"csrf_token": token},
        files={"file": ("договор.txt", content, "text/plain")},
    )
    assert r.status_code == 303, r.text[:2000]
    files = (await crm.get("/api/attachments", manager, params={"party_id": party["id"]})).json()["items"]
    assert [f["filename"] for f in files] == ["договор.txt"]
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert f'href="/app/attachments/{files[0]["id"]}"' in card.text and "договор.txt" in card.text
    got = await crm.client.get(f"/app/attachments/{files[0]['id']}")
    assert got.status_code == 200 and got.content == content
    assert got.headers["content-disposition"].startswith("attachment")
    # No file chosen: refused beside the field.
    r = await crm.client.post(
        f"/app/parties/{party['id']}/attachments",
        data={"csrf_token": token},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert r.status_code == 422 and _field_error(r.text, "file")

    # Another manager may neither download nor see it.
    other = await crm.user("manager")
    await crm.sign_in(other)
    assert (await crm.client.get(f"/app/attachments/{files[0]['id']}")).status_code == 404

    # An admin deletes the note and the file (the manager has no note.delete).
    token = await crm.sign_in(admin)
    note_id = listed[0]["id"]
    assert (await crm.client.get(f"/app/notes/{note_id}/delete")).status_code == 200
    r = await crm.client.post(f"/app/notes/{note_id}/delete", data={"csrf_token": token})
    assert r.status_code == 303
    r = await crm.client.post(f"/app/attachments/{files[0]['id']}/delete", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await crm.get("/api/notes", admin, params={"party_id": party["id"]})).json()["items"] == []
    assert (await crm.get("/api/attachments", admin, params={"party_id": party["id"]})).json()["items"] == []


async def test_a_task_handed_off_with_a_comment_opens_for_the_receiver_with_its_client(crm: Any) -> None:
    author = await crm.user("manager", name="Anna Author")
    receiver = await crm.user("manager", name="Boris Receiver")
    party = (await crm.post("/api/parties", author, json={"name": "Kappa Holdings"})).json()
    token = await crm.sign_in(author)
    new = await crm.client.get("/app/tasks/new", params={"party_id": party["id"]})
    assert new.status_code == 200 and "Kappa Holdings" in new.text
    bad = await crm.client.post(
        "/app/tasks/new",
        data={
            "csrf_token": token,
            "title": "Send the offer",
            "deadline": "tomorrow",
            "party_id": party["id"],
        },
    )
    assert bad.status_code == 422 and _field_error(bad.text, "deadline") == "is not a valid date and time"
    r = await crm.client.post(
        "/app/tasks/new",
        data={
            "csrf_token": token,
            "title": "Send the offer",
            "description": "Prices for 2027",
            "party_id": str(party["id"]),
            "assignee_id": str(author["id"]),
            "controller_id": str(author["id"]),
            "deadline": "2030-01-10T12:00",
            "priority": "high",
        },
    )
    assert r.status_code == 303, r.text[:2000]
    task_id = int(r.headers["location"].rsplit("/", 1)[1])
    task = (await crm.get(f"/api/tasks/{task_id}", author)).json()
    assert (
        task["party_id"] == party["id"]
        and task["priority"] == "high"
        and task["controller_id"] == author["id"]
    )
    page = await crm.client.get(f"/app/tasks/{task_id}")
    assert page.status_code == 200 and "Send the offer" in page.text and "High" in page.text

    r = await crm.client.post(
        f"/app/tasks/{task_id}/handoff",
        data={
            "csrf_token": token,
            "to_user_id": str(receiver["id"]),
            "comment": "Boris, the prices are in the file",
        },
    )
    assert r.status_code == 303
    assert (await crm.get(f"/api/tasks/{task_id}", author)).json()["assignee_id"] == receiver["id"]

    # The receiver signs in, opens the task, reads the comment and opens the client from it.
    token = await crm.sign_in(receiver)
    page = await crm.client.get(f"/app/tasks/{task_id}")
    assert page.status_code == 200
    assert "Boris, the prices are in the file" in page.text and "Anna Author" in page.text
    link = re.search(r'<a href="(/app/parties/\d+)" class="client-link">', page.text)
    assert link and link.group(1) == f"/app/parties/{party['id']}"
    card = await crm.client.get(link.group(1))
    assert card.status_code == 200 and "Kappa Holdings" in card.text
    # The card lists the open task and who holds it.
    assert f'href="/app/tasks/{task_id}"' in card.text and "Boris Receiver" in card.text

    # Complete with a result.
    r = await crm.client.post(
        f"/app/tasks/{task_id}/complete", data={"csrf_token": token, "result": "Offer sent by e-mail"}
    )
    assert r.status_code == 303
    done = (await crm.get(f"/api/tasks/{task_id}", author)).json()
    assert done["status"] == "done" and done["result"] == "Offer sent by e-mail"
    page = await crm.client.get(f"/app/tasks/{task_id}")
    assert "Offer sent by e-mail" in page.text and f"/app/tasks/{task_id}/complete" not in page.text


async def test_reassign_a_task_from_its_page(crm: Any) -> None:
    author = await crm.user("manager")
    other = await crm.user("manager", name="Vera")
    token = await crm.sign_in(author)
    task = (await crm.post("/api/tasks", author, json={"title": "Check stock"})).json()
    page = await crm.client.get(f"/app/tasks/{task['id']}")
    r = await crm.client.post(
        f"/app/tasks/{task['id']}/edit",
        data={
            "csrf_token": token,
            "version": _value(page.text, "version") or "",
            "title": "Check stock",
            "assignee_id": str(other["id"]),
            "priority": "urgent",
            "deadline": "",
            "controller_id": "",
        },
    )
    assert r.status_code == 303, r.text[:2000]
    got = (await crm.get(f"/api/tasks/{task['id']}", author)).json()
    assert got["assignee_id"] == other["id"] and got["priority"] == "urgent"
    chain = (await crm.get(f"/api/tasks/{task['id']}/handoffs", author)).json()
    assert [h["to_user_id"] for h in chain] == [author["id"], other["id"]]


async def test_every_form_needs_the_csrf_token(crm: Any) -> None:
    manager = await crm.user("manager")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    task = (await crm.post("/api/tasks", manager, json={"title": "T", "party_id": party["id"]})).json()
    act = {"type": "call", "subject": "S", "starts_at": "2030-01-01T10:00:00+00:00", "party_id": party["id"]}
    activity = (await crm.post("/api/activities", manager, json=act)).json()
    await crm.sign_in(manager)
    posts = [
        ("/app/parties/new", {"name": "Forged"}),
        (f"/app/parties/{party['id']}/edit", {"name": "Forged"}),
        (f"/app/parties/{party['id']}/delete", {}),
        (f"/app/parties/{party['id']}/contacts/new", {"name": "Forged"}),
        (f"/app/parties/{party['id']}/notes", {"body": "Forged"}),
        (f"/app/activities/{activity['id']}/edit", {"subject": "Forged"}),
        (f"/app/activities/{activity['id']}/done", {}),
        ("/app/tasks/new", {"title": "Forged"}),
        (f"/app/tasks/{task['id']}/complete", {"result": "Forged"}),
        (f"/app/tasks/{task['id']}/handoff", {"to_user_id": str(manager["id"])}),
        (f"/app/tasks/{task['id']}/edit", {"title": "Forged"}),
    ]
    for url, data in posts:
        r = await crm.client.post(url, data={**data, "csrf_token": "wrong"})
        assert r.status_code == 403, url
    r = await crm.client.post(
        f"/app/parties/{party['id']}/attachments", files={"file": ("x.txt", b"x", "text/plain")}
    )
    assert r.status_code == 403
    assert (await crm.get("/api/parties/count", manager)).json()["count"] == 1
    assert (await crm.get(f"/api/parties/{party['id']}", manager)).json()["name"] == "Acme"
    assert (await crm.get(f"/api/tasks/{task['id']}", manager)).json()["status"] == "open"
    assert (await crm.get(f"/api/activities/{activity['id']}", manager)).json()["subject"] == "S"
    assert (await crm.get("/api/notes", manager)).json()["items"] == []


@pytest.mark.plugins("sales")
async def test_the_sales_card_widget_shows_open_deals_the_user_may_see(crm: Any) -> None:
    manager = await crm.user("manager", name="Olga")
    party = (await crm.post("/api/parties", manager, json={"name": "Acme"})).json()
    deal = {"party_id": party["id"], "title": "Pumps for Acme", "amount": "125000.00", "currency": "RUB"}
    r = await crm.post("/api/sales/deals", manager, json=deal)
    assert r.status_code == 201, r.text
    await crm.sign_in(manager)
    card = (await crm.client.get(f"/app/parties/{party['id']}")).text
    widget = re.search(r'<div class="card widget widget-sales">(.*?)</div>', card, re.S)
    assert widget, card[:3000]
    assert "Open deals" in widget.group(1) and "Pumps for Acme" in widget.group(1)
    assert f'href="/sales/deals/{r.json()["id"]}"' in widget.group(1)
    assert "125,000.00" in widget.group(1)
    # Texts are escaped: a deal's title never becomes markup.
    odd = {**deal, "title": "<b>Bold</b> pumps", "amount": "1.00"}
    assert (await crm.post("/api/sales/deals", manager, json=odd)).status_code == 201
    card = (await crm.client.get(f"/app/parties/{party['id']}")).text
    assert "&lt;b&gt;Bold&lt;/b&gt; pumps" in card and "<b>Bold</b>" not in card

    # A colleague handed a task on the client reads the card, not the manager's deals.
    colleague = await crm.user("manager", name="Pavel")
    task = {"title": "Visit Acme", "party_id": party["id"], "assignee_id": colleague["id"]}
    assert (await crm.post("/api/tasks", manager, json=task)).status_code == 201
    await crm.sign_in(colleague)
    card = await crm.client.get(f"/app/parties/{party['id']}")
    assert card.status_code == 200 and "Acme" in card.text
    assert "Pumps for Acme" not in card.text and "125,000.00" not in card.text
    # Nor does the API's card (the timeline hook gets the reader).
    api = (await crm.get(f"/api/parties/{party['id']}/card", colleague)).json()
    assert api["timeline"] and not [i for i in api["timeline"] if i["source"] == "sales"]
    owner_view = (await crm.get(f"/api/parties/{party['id']}/card", manager)).json()
    assert [i for i in owner_view["timeline"] if i["source"] == "sales"]


def _unlabelled(text: str) -> list[str]:
    """Inputs a screen reader could not name: neither inside a ``<label>`` nor pointed at by
    one (``<label for=id>``); hidden fields and buttons need none."""
    labelled = set(re.findall(r'<label[^>]*\sfor="([^"]+)"', text))
    outside = re.sub(r"<label\b[^>]*>.*?</label>", "", text, flags=re.S)
    missing = []
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", outside):
        if re.search(r'type="(hidden|submit|button)"', tag):
            continue
        found = re.search(r'\sid="([^"]+)"', tag)
        if not found or found.group(1) not in labelled:
            missing.append(tag)
    return missing


async def test_every_input_of_the_forms_has_a_label(crm: Any) -> None:
    admin = await crm.user("admin")
    assert (await crm.put("/api/custom-fields/party", admin, json=SCHEMA)).status_code == 200
    party = (await crm.post("/api/parties", admin, json={"name": "Acme"})).json()
    contact = (await crm.post("/api/contacts", admin, json={"party_id": party["id"], "name": "Ivan"})).json()
    act = {"type": "call", "subject": "S", "starts_at": "2030-01-01T10:00:00+00:00", "party_id": party["id"]}
    activity = (await crm.post("/api/activities", admin, json=act)).json()
    task = (await crm.post("/api/tasks", admin, json={"title": "T", "party_id": party["id"]})).json()
    await crm.sign_in(admin)
    pages = [
        f"/app/parties/{party['id']}",
        "/app/parties/new",
        f"/app/parties/{party['id']}/edit",
        f"/app/parties/{party['id']}/contacts/new",
        f"/app/contacts/{contact['id']}/edit",
        f"/app/activities/{activity['id']}/edit",
        "/app/tasks/new",
        f"/app/tasks/{task['id']}",
    ]
    for url in pages:
        page = await crm.client.get(url)
        assert page.status_code == 200, url
        assert re.search(r"<(?:input|select|textarea)\b", page.text), url
        assert _unlabelled(page.text) == [], url
