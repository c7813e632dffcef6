"""Notes and attachments through the HTTP API, including the upload/download round trip."""

from __future__ import annotations

import hashlib

from entity_helpers import field_errors, new_party, table_counts


async def test_note_crud(crm, frozen_clock):
    alice = await crm.user("manager")
    party = await new_party(crm, alice)
    r = await crm.post(
        "/api/notes",
        alice,
        json={"party_id": party["id"], "body": "Prefers calls after 3pm", "subject_ref": "x:1"},
    )
    assert r.status_code == 201, r.text
    note = r.json()
    assert note["author_id"] == alice["id"]
    url = f"/api/notes/{note['id']}"
    assert (await crm.get(url, alice)).json() == note
    frozen_clock.advance(minutes=3)
    r = await crm.patch(url, alice, json={"body": "Prefers calls after 4pm", "version": 1})
    assert r.status_code == 200
    assert r.json()["body"] == "Prefers calls after 4pm"
    assert r.json()["updated_at"] > note["updated_at"]
    assert (await crm.patch(url, alice, json={"body": "stale", "version": 1})).status_code == 409

    r = await crm.get("/api/notes", alice, params={"party_id": party["id"]})
    assert [n["id"] for n in r.json()["items"]] == [note["id"]]
    r = await crm.get("/api/notes", alice, params={"subject_ref": "x:1"})
    assert [n["id"] for n in r.json()["items"]] == [note["id"]]
    r = await crm.get("/api/notes", alice, params={"subject_ref": "x:2"})
    assert r.json()["items"] == []
    assert (await crm.get("/api/notes/count", alice, params={"party_id": party["id"]})).json() == {"count": 1}


async def test_note_rules(crm):
    team = await crm.team()
    alice = await crm.user("manager", team_id=team["id"])
    head = await crm.user("head", team_id=team["id"])
    bob = await crm.user("manager")
    party = await new_party(crm, alice)
    bobs_party = await new_party(crm, bob)
    before = await table_counts()
    for body, field in [
        ({"party_id": party["id"], "body": ""}, "body"),
        ({"party_id": bobs_party["id"], "body": "peek"}, "party_id"),
        ({"party_id": party["id"], "body": "x", "author_id": bob["id"]}, "author_id"),
    ]:
        r = await crm.post("/api/notes", alice, json=body)
        assert r.status_code == 422, r.text
        assert field in field_errors(r)
    assert await table_counts() == before

    note = (await crm.post("/api/notes", alice, json={"party_id": party["id"], "body": "mine"})).json()
    # The head sees the note through the team but may not rewrite someone else's words.
    assert (await crm.get(f"/api/notes/{note['id']}", head)).status_code == 200
    r = await crm.patch(f"/api/notes/{note['id']}", head, json={"body": "rewritten"})
    assert r.status_code == 403
    assert (await crm.get(f"/api/notes/{note['id']}", alice)).json()["body"] == "mine"
    assert (await crm.get(f"/api/notes/{note['id']}", bob)).status_code == 404


async def test_attachment_upload_download_round_trip(crm, frozen_clock):
    alice = await crm.user("manager")
    party = await new_party(crm, alice)
    content = bytes(range(256)) * 100
    r = await crm.post(
        "/api/attachments/upload",
        alice,
        files={"file": ("contract.pdf", content, "application/pdf")},
        data={"party_id": str(party["id"]), "subject_ref": "deal:7"},
    )
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["filename"] == "contract.pdf"
    assert att["size"] == len(content)
    assert att["sha256"] == hashlib.sha256(content).hexdigest()
    assert att["content_type"] == "application/pdf"
    assert att["party_id"] == party["id"]
    assert att["uploaded_by_id"] == alice["id"]
    assert "storage_url" not in att

    r = await crm.get(f"/api/attachments/{att['id']}/content", alice)
    assert r.status_code == 200
    assert r.content == content
    assert r.headers["content-type"].startswith("application/pdf")
    assert "contract.pdf" in r.headers["content-disposition"]
    assert (await crm.get(f"/api/attachments/{att['id']}", alice)).json() == att
    r = await crm.get("/api/attachments", alice, params={"party_id": party["id"]})
    assert [a["id"] for a in r.json()["items"]] == [att["id"]]
    r = await crm.get("/api/attachments", alice, params={"subject_ref": "deal:7"})
    assert [a["id"] for a in r.json()["items"]] == [att["id"]]

    # Same bytes again: a second record, one stored file, both downloadable.
    r = await crm.post(
        "/api/attachments/upload", alice, files={"file": ("copy.pdf", content, "application/pdf")}
    )
    assert r.status_code == 201
    second = r.json()
    assert second["party_id"] is None
    assert (await crm.get(f"/api/attachments/{second['id']}/content", alice)).content == content

    bob = await crm.user("manager")
    assert (await crm.get(f"/api/attachments/{att['id']}/content", bob)).status_code == 404
    assert (await crm.get(f"/api/attachments/{att['id']}", bob)).status_code == 404


async def test_attachment_with_unicode_name_in_a_data_dir_with_spaces(crm, tmp_path):
    # Real installations live in folders like "C:/CRM data" or "/srv/crm files".
    crm.app.state.settings = crm.settings.with_(data_dir=tmp_path / "crm files ü")
    alice = await crm.user("manager")
    content = "Договор поставки".encode()
    r = await crm.post(
        "/api/attachments/upload", alice, files={"file": ("договор №1.txt", content, "text/plain")}
    )
    assert r.status_code == 201, r.text
    att = r.json()
    assert att["filename"] == "договор №1.txt"
    r = await crm.get(f"/api/attachments/{att['id']}/content", alice)
    assert r.status_code == 200, r.text
    assert r.content == content


async def test_attachment_upload_errors(crm):
    alice = await crm.user("manager")
    bob = await crm.user("manager")
    bobs = await new_party(crm, bob)
    before = await table_counts()
    # A multipart form without the file field.
    r = await crm.post("/api/attachments/upload", alice, files={"party_id": (None, "1")})
    assert r.status_code == 422, r.text
    assert "file" in field_errors(r)
    # Not multipart at all: a JSON 4xx, not a crash.
    r = await crm.post("/api/attachments/upload", alice, data={"party_id": "1"})
    assert 400 <= r.status_code < 500
    assert r.json()["status"] == r.status_code
    r = await crm.post(
        "/api/attachments/upload",
        alice,
        files={"file": ("a.txt", b"x", "text/plain")},
        data={"party_id": "abc"},
    )
    assert r.status_code == 422
    assert "party_id" in field_errors(r)
    r = await crm.post(
        "/api/attachments/upload",
        alice,
        files={"file": ("a.txt", b"x", "text/plain")},
        data={"party_id": str(bobs["id"])},
    )
    assert r.status_code == 422
    assert "party_id" in field_errors(r)
    r = await crm.post("/api/attachments/upload", alice, files={"file": ("..", b"x", "text/plain")})
    assert r.status_code == 422
    assert await table_counts() == before
    assert (await crm.get("/api/attachments/999999/content", alice)).status_code == 404


async def test_deleting_an_attachment(crm):
    admin = await crm.user("admin")
    r = await crm.post("/api/attachments/upload", admin, files={"file": ("a.txt", b"abc", "text/plain")})
    att = r.json()
    assert (await crm.delete(f"/api/attachments/{att['id']}", admin)).status_code == 204
    assert (await crm.get(f"/api/attachments/{att['id']}/content", admin)).status_code == 404
    manager = await crm.user("manager")
    r = await crm.post("/api/attachments/upload", manager, files={"file": ("b.txt", b"abc", "text/plain")})
    assert (await crm.delete(f"/api/attachments/{r.json()['id']}", manager)).status_code == 403
