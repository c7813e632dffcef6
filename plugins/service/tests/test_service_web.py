"""The service pages for a signed-in agent (new ticket from the client card, reply, pause,
resolve, close: the card shows the exchange) and the client's one-time satisfaction survey."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from service_helpers import post

pytestmark = pytest.mark.plugins("service")


async def test_agent_works_a_ticket_from_the_client_card(crm: Any, frozen_clock: Any, desk: Any) -> None:
    party = desk["party"]
    await crm.sign_in(desk["seller"])
    tab = await crm.page(f"/service/parties/{party['id']}/tickets")
    assert f"/service/tickets/new?party_id={party['id']}" in tab
    form = await crm.page(f"/service/tickets/new?party_id={party['id']}")
    token = crm.csrf(form)
    # Without the CSRF token the form is refused.
    r = await crm.client.post("/service/tickets/new", data={"party_id": str(party["id"]), "subject": "x"})
    assert r.status_code == 403
    # A missing subject is shown beside the field, the input kept.
    r = await crm.client.post(
        "/service/tickets/new",
        data={"csrf_token": token, "party_id": str(party["id"]), "subject": "", "description": "keep me"},
    )
    assert r.status_code == 422 and 'id="error-subject"' in r.text and "keep me" in r.text
    r = await crm.client.post(
        "/service/tickets/new",
        data={
            "csrf_token": token,
            "party_id": str(party["id"]),
            "subject": "Invoice is wrong",
            "description": "The amount is doubled",
            "priority": "p1",
            "category": "claim",
            "channel": "phone",
        },
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    page = await crm.page(url)
    assert "Invoice is wrong" in page and "P1 urgent" in page and "Claim" in page
    assert "First response due" in page
    r = await crm.client.post(
        f"{url}/messages", data={"csrf_token": token, "body": "We are checking it", "kind": "reply"}
    )
    assert r.status_code == 303
    r = await crm.client.post(f"{url}/status", data={"csrf_token": token, "status": "waiting"})
    assert r.status_code == 303
    page = await crm.page(url)
    assert "The clock is paused" in page and "Waiting on the client" in page
    # An impossible move says why beside the status forms.
    r = await crm.client.post(f"{url}/status", data={"csrf_token": token, "status": "new"})
    assert r.status_code == 409 and "reopen it instead" in html.unescape(r.text)
    r = await crm.client.post(f"{url}/status", data={"csrf_token": token, "status": "resolved"})
    assert r.status_code == 303
    r = await crm.client.post(f"{url}/status", data={"csrf_token": token, "status": "closed"})
    assert r.status_code == 303 and "survey=" in r.headers["location"]
    closed = await crm.page(r.headers["location"])
    assert "/service/csat/" in closed
    card = await crm.page(f"/app/parties/{party['id']}")
    for text in ("Invoice is wrong", "We are checking it", "Waiting on the client", "Resolved", "Closed"):
        assert text in card, text
    queue = await crm.page("/service/tickets")
    assert "Invoice is wrong" in queue
    assert "Invoice is wrong" not in await crm.page("/service/tickets?open_only=true")
    assert "Invoice is wrong" in await crm.page("/service/tickets?status=closed&priority=p1")
    await crm.page("/service/tickets?priority=p9", status=422)  # refused beside the filter, not ignored
    # Another manager's session does not open it.
    await crm.sign_in(desk["other_seller"])
    await crm.page(url, status=404)
    assert "Invoice is wrong" not in await crm.page("/service/tickets")


async def _closed_survey(crm: Any, desk: Any) -> tuple[dict[str, Any], str]:
    ticket = await post(
        crm, "/api/service/tickets", desk["seller"], {"party_id": desk["party"]["id"], "subject": "Broken"}
    )
    url = f"/api/service/tickets/{ticket['id']}/status"
    closed = await post(crm, url, desk["seller"], {"status": "closed"}, 200)
    assert closed["survey_link"].startswith("/service/csat/")
    return ticket, closed["survey_link"]


async def test_satisfaction_link_works_once(crm: Any, frozen_clock: Any, desk: Any) -> None:
    ticket, link = await _closed_survey(crm, desk)
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "en"
    page = await crm.page(link)  # no sign-in
    assert "How satisfied are you" in page and ticket["number"] in page
    bad = await crm.client.post(link, data={"score": "9"})
    assert bad.status_code == 422 and 'id="error-score"' in bad.text
    r = await crm.client.post(link, data={"score": "4", "comment": "Quick and polite"})
    assert r.status_code == 200 and "Thank you for your answer" in r.text
    again = await crm.client.post(link, data={"score": "1", "comment": "changed my mind"})
    assert again.status_code == 409 and "already been answered" in again.text
    assert (await crm.client.get(link)).status_code == 409
    await crm.page("/service/csat/not-a-token", status=404)
    # The answer is on the ticket and the client card.
    await crm.sign_in(desk["seller"])
    assert "4/5" in await crm.page(f"/service/tickets/{ticket['id']}")
    card = await crm.page(f"/app/parties/{desk['party']['id']}")
    assert "Satisfaction 4/5" in card and "Quick and polite" in card
    assert "4.0/5 (1)" in card and "Open tickets" in card  # the card's service block
    assert "Risk of losing the client" not in card  # a 4/5 is no warning sign


async def test_a_poor_satisfaction_answer_marks_the_client_at_risk_on_the_card(
    crm: Any, frozen_clock: Any, desk: Any
) -> None:
    _, link = await _closed_survey(crm, desk)
    crm.client.cookies.clear()
    assert (await crm.client.post(link, data={"score": "2", "comment": "Slow"})).status_code == 200
    await crm.sign_in(desk["seller"])
    card = await crm.page(f"/app/parties/{desk['party']['id']}")
    assert "Risk of losing the client" in card and "low satisfaction: 2.0/5 recently" in card


async def test_satisfaction_link_is_refused_after_expiry(crm: Any, frozen_clock: Any, desk: Any) -> None:
    _, link = await _closed_survey(crm, desk)
    frozen_clock.advance(days=14, seconds=1)
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "en"
    r = await crm.client.post(link, data={"score": "5"})
    assert r.status_code == 409 and "expired" in r.text
    assert "expired" in await crm.page(link, status=409)


async def test_reopened_ticket_gets_a_fresh_survey_on_close(crm: Any, frozen_clock: Any, desk: Any) -> None:
    ticket, first = await _closed_survey(crm, desk)
    url = f"/api/service/tickets/{ticket['id']}/status"
    frozen_clock.advance(hours=1)
    await post(crm, url, desk["seller"], {"status": "in_progress"}, 200)
    second = (await post(crm, url, desk["seller"], {"status": "closed"}, 200))["survey_link"]
    assert second != first
    frozen_clock.advance(days=1)
    assert (await crm.client.post(second, data={"score": "5"})).status_code == 200
    assert (await crm.client.post(first, data={"score": "3"})).status_code == 200


async def test_queue_list_shows_the_sla_countdown(crm: Any, frozen_clock: Any, desk: Any) -> None:
    late = await post(
        crm,
        "/api/service/tickets",
        desk["seller"],
        {"party_id": desk["party"]["id"], "subject": "Late one", "priority": "p1"},
    )
    paused = await post(
        crm,
        "/api/service/tickets",
        desk["seller"],
        {"party_id": desk["party"]["id"], "subject": "Paused one", "priority": "p1"},
    )
    await post(crm, f"/api/service/tickets/{paused['id']}/status", desk["seller"], {"status": "waiting"}, 200)
    frozen_clock.advance(hours=5)  # first response was due at 13:00: an hour late
    await crm.sign_in(desk["seller"])
    page = await crm.page("/service/tickets?open_only=true")
    row = page[page.index("Late one") :]
    assert "1:00 late" in row[: row.index("</tr>")]
    row = page[page.index("Paused one") :]
    assert "paused" in row[: row.index("</tr>")]
    assert late["number"] in page


async def test_files_attached_to_a_ticket_are_listed_there_and_downloadable(
    crm: Any, frozen_clock: Any, desk: Any
) -> None:
    ticket = await post(
        crm, "/api/service/tickets", desk["seller"], {"party_id": desk["party"]["id"], "subject": "Scan it"}
    )
    url = f"/service/tickets/{ticket['id']}"
    await crm.sign_in(desk["seller"])
    token = crm.csrf(await crm.page(url))
    empty = await crm.client.post(
        f"{url}/attachments", data={"csrf_token": token}, files={"file": ("", b"", "text/plain")}
    )
    assert empty.status_code == 422 and 'id="error-file"' in empty.text
    r = await crm.client.post(
        f"{url}/attachments",
        data={"csrf_token": token},
        files={"file": ("invoice-scan.txt", b"amount doubled", "text/plain")},
    )
    assert r.status_code == 303, r.text
    page = await crm.page(url)
    assert "invoice-scan.txt" in page and "File attached: invoice-scan.txt" in page
    link = re.search(r'href="(/app/attachments/\d+)">invoice-scan.txt', page)
    assert link
    assert (await crm.client.get(link.group(1))).content == b"amount doubled"
    # Through the API: the kernel's attachments with the ticket's subject_ref.
    listed = await crm.get(
        "/api/attachments", desk["seller"], params={"subject_ref": f"service.ticket:{ticket['id']}"}
    )
    assert [a["filename"] for a in listed.json()["items"]] == ["invoice-scan.txt"]
    # Another client's manager sees neither the ticket nor its file.
    await crm.sign_in(desk["other_seller"])
    await crm.page(url, status=404)
    assert (await crm.client.get(link.group(1))).status_code == 404
