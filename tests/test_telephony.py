"""Telephony (issue 16.4): an Asterisk AMI link over real TCP (tests/ami_helpers.py) that
finds the caller by number in any formatting, pops the call up on the user's event stream,
records call activities and call-back tasks, reconnects by itself after an Asterisk restart and
reconciles the calls it missed meanwhile; the cloud PBX webhook; click-to-call."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from ami_helpers import AmiServer, eventually
from entity_helpers import field_errors
from tessera.config import Telephony
from tessera.entities.tables import Activity, Task, TelephonyCall
from tessera.telephony.ami import AmiLink
from tessera_sdk import AsyncClient


@pytest.fixture
async def pbx() -> AsyncIterator[AmiServer]:
    server = await AmiServer().start()
    yield server
    await server.stop()


def _configure(crm: Any, pbx: AmiServer | None = None, **extra: Any) -> Any:
    conf = Telephony(
        ami_host="127.0.0.1" if pbx else "",
        ami_port=pbx.port if pbx else 5038,
        ami_username="crm",
        ami_secret="s3cret",
        recording_url="https://pbx.example.com/rec/{file}",
        timeout=5,
        **extra,
    )
    settings = crm.settings.with_(telephony=conf)
    crm.app.state.settings = settings
    return settings


def _sse(text: str) -> list[dict[str, Any]]:
    """The ``call`` events of a server-sent events body."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if fields.get("event") == "call":
            out.append({"id": fields.get("id"), **json.loads(fields["data"])})
    return out


async def _call(call_id: str) -> dict[str, Any] | None:
    return await TelephonyCall.select().where(TelephonyCall.call_id == call_id).first()  # type: ignore[no-any-return]


async def _answered(call_id: str) -> dict[str, Any] | None:
    row = await _call(call_id)
    return row if row and row["answered_at"] else None


async def _ended(call_id: str) -> dict[str, Any] | None:
    row = await _call(call_id)
    return row if row and row["ended_at"] and row["activity_id"] else None


async def test_an_asterisk_call_lands_on_the_party_pops_up_and_survives_a_pbx_restart(
    crm: Any, pbx: AmiServer
) -> None:
    anna = await crm.user("manager", name="anna")
    r = await crm.put("/api/telephony/me", anna, json={"extension": "101"})
    assert r.status_code == 200, r.text
    r = await crm.post("/api/parties", anna, json={"name": "Acme", "phones": [{"number": "+74951234567"}]})
    party_id = r.json()["id"]
    await crm.post("/api/tasks", anna, json={"title": "Send the price list", "party_id": party_id})
    settings = _configure(crm, pbx)
    link = AmiLink(settings, reconnect_min_seconds=0.05)
    stop = asyncio.Event()
    running = asyncio.ensure_future(link.run(stop))
    try:
        await eventually(lambda: link.state == "connected" and pbx.logins == 1)

        # A customer calls from a number written the Russian way; extension 101 rings.
        await pbx.call_in("c1", "8 (495) 123-45-67")
        await pbx.ring("c1", "101")
        await eventually(lambda: _call("c1"))
        r = await eventually(lambda: _stream(crm, anna))  # the pop-up reaches Anna's event stream
        popup = r[0]
        assert popup["party"] == {"id": party_id, "name": "Acme", "url": f"/app/parties/{party_id}"}
        assert popup["title"] == "Call from Acme" and popup["open_card"] == "open card"
        assert [t["title"] for t in popup["tasks"]] == ["Send the price list"]
        r = await crm.get("/api/telephony/stream?wait=0", anna, headers={"Last-Event-ID": popup["id"]})
        assert _sse(r.text) == []  # resumed after the last event: nothing new

        await pbx.answer("c1", "101")
        await pbx.record("c1", "/var/spool/asterisk/monitor/c1.wav")
        await pbx.hangup("c1")
        call = await eventually(lambda: _ended("c1"))
        assert (call["status"], call["party_id"], call["direction"]) == ("completed", party_id, "in")
        activity = (
            await Activity.select().where(Activity.id == call["activity_id"]).first().output(load_json=True)
        )
        assert (activity["type"], activity["direction"], activity["party_id"], activity["outcome"]) == (
            "call",
            "in",
            party_id,
            "answered",
        )
        assert activity["custom"]["recording_url"] == "https://pbx.example.com/rec/c1.wav"
        assert activity["custom"]["call_number"] == "+74951234567"

        # A call rings, then Asterisk restarts: the call ends unanswered while the link is down
        # and another one starts and is answered. The link comes back by itself and reconciles.
        await pbx.call_in("c2", "+7 495 123 45 67")
        await pbx.ring("c2", "101")
        await eventually(lambda: _call("c2"))
        pbx.channels = [
            {
                "Channel": "PJSIP/trunk-c3",
                "Uniqueid": "c3",
                "Linkedid": "c3",
                "CallerIDNum": "84951234567",
                "Exten": "4950000000",
                "ChannelStateDesc": "Up",
                "BridgeId": "b-1",
                "Duration": "00:00:30",
            }
        ]
        await pbx.restart()
        await eventually(lambda: pbx.logins == 2 and link.state == "connected")
        missed = await eventually(lambda: _ended("c2"))
        assert missed["status"] == "missed"
        task = await Task.select().where(Task.id == missed["task_id"]).first()
        assert task["party_id"] == party_id and task["assignee_id"] == anna["id"]
        assert task["title"].startswith("Call back Acme")
        c3 = await eventually(lambda: _answered("c3"))
        assert (c3["status"], c3["source"], c3["party_id"]) == ("answered", "reconciled", party_id)
        await pbx.hangup("c3")  # events flow again after the restart
        assert (await eventually(lambda: _ended("c3")))["status"] == "completed"
    finally:
        stop.set()
        await running
    assert await Activity.count().where(Activity.type == "call") == 3


async def _stream(crm: Any, user: dict[str, Any]) -> list[dict[str, Any]]:
    r = await crm.get("/api/telephony/stream?wait=0", user)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    return _sse(r.text)


async def test_the_cloud_pbx_webhook_needs_its_secret_and_a_missed_call_asks_for_a_call_back(
    crm: Any,
) -> None:
    anna = await crm.user("manager", name="anna")
    r = await crm.post("/api/parties", anna, json={"name": "Acme", "phones": [{"number": "+74951234567"}]})
    party_id = r.json()["id"]
    event = {"event": "ringing", "call_id": "cloud-1", "number": "8 495 123-45-67"}
    _configure(crm)
    assert (await crm.post("/api/telephony/events", json=event)).status_code == 404  # not configured
    _configure(crm, webhook_secret="hush")
    r = await crm.post("/api/telephony/events", json=event, headers={"X-Tessera-Telephony-Secret": "nope"})
    assert r.status_code == 401
    hush = {"X-Tessera-Telephony-Secret": "hush"}
    r = await crm.post("/api/telephony/events", json={**event, "event": "rung"}, headers=hush)
    assert r.status_code in (400, 422)
    for step in ("ringing", "ended", "ended"):  # the end repeated by the PBX's retry
        r = await crm.post("/api/telephony/events", json={**event, "event": step}, headers=hush)
        assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["party_id"]) == ("missed", party_id)
    activities = await Activity.select().where(Activity.party_id == party_id, Activity.type == "call")
    assert [(a["outcome"], a["owner_id"]) for a in activities] == [("missed", anna["id"])]
    tasks = await Task.select().where(Task.party_id == party_id)
    assert len(tasks) == 1 and tasks[0]["assignee_id"] == anna["id"] and tasks[0]["priority"] == "high"


async def test_click_to_call_rings_the_users_extension_then_dials(crm: Any, pbx: AmiServer) -> None:
    anna = await crm.user("manager", name="anna")
    bob = await crm.user("manager", name="bob")
    _configure(crm, pbx)
    r = await crm.post("/api/parties", anna, json={"name": "Acme"})
    party_id = r.json()["id"]
    r = await crm.post("/api/telephony/calls", anna, json={"number": "8 (495) 123-45-67"})
    assert r.status_code == 422 and "extension" in field_errors(r)
    await crm.put("/api/telephony/me", anna, json={"extension": "101"})
    r = await crm.put("/api/telephony/me", bob, json={"extension": "101"})
    assert r.status_code == 422 and "extension" in field_errors(r)  # Anna's
    r = await crm.post("/api/telephony/calls", anna, json={"number": "not a phone"})
    assert r.status_code == 422 and "number" in field_errors(r)
    await crm.put("/api/telephony/me", bob, json={"extension": "102"})
    r = await crm.post("/api/telephony/calls", bob, json={"number": "84951234567", "party_id": party_id})
    assert r.status_code == 404  # not Bob's client
    transport = httpx.ASGITransport(app=crm.app)
    async with AsyncClient(
        "http://testserver", anna["token"], transport=transport
    ) as sdk:  # the SDK's typed call
        dialled = await sdk.dial("8 (495) 123-45-67", party_id=party_id)
    assert (dialled.extension, dialled.number) == ("101", "+74951234567")
    retried = {"Idempotency-Key": "dial-1"}
    for _ in range(2):  # a retried click: one call
        r = await crm.post("/api/telephony/calls", anna, json={"number": "84951234567"}, headers=retried)
        assert r.status_code == 202, r.text
    originate = [a for a in pbx.actions if a.get("Action") == "Originate"]
    assert len(originate) == 2
    assert (originate[0]["Channel"], originate[0]["Exten"]) == ("PJSIP/101", "+74951234567")


async def test_pages_offer_the_extension_form_call_buttons_and_the_popup_script(crm: Any) -> None:
    anna = await crm.user("manager", name="anna")
    r = await crm.post("/api/parties", anna, json={"name": "Acme", "phones": [{"number": "+74951234567"}]})
    party_id = r.json()["id"]
    crm.client.cookies.clear()
    r = await crm.client.post("/login", data={"email": anna["email"], "password": "correct-horse-battery"})
    assert r.status_code == 303
    page = await crm.client.get("/app/telephony")
    assert page.status_code == 200 and 'name="extension"' in page.text
    assert '<script src="/static/telephony/calls.js"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = await crm.client.post("/app/telephony", data={"csrf_token": csrf, "extension": "12a"})
    assert r.status_code == 422 and "field-error" in r.text
    r = await crm.client.post("/app/telephony", data={"csrf_token": csrf, "extension": "101"})
    assert r.status_code == 303
    assert (await crm.get("/api/telephony/me", anna)).json()["extension"] == "101"
    card = await crm.client.get(f"/app/parties/{party_id}")
    assert f'class="dial" data-number="+74951234567" data-party="{party_id}"' in card.text
    assert (await crm.client.get("/static/telephony/calls.js")).status_code == 200
    crm.client.cookies.clear()
