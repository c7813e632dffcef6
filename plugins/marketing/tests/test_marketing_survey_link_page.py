"""The page of a signed survey link (issue 18, items 5 and 8): the client, not signed in, sees
the questionnaire rendered from the survey's JSON definition in their browser's language (each
question type, required marks), bad answers are refused each beside its question with what
they chose kept, good answers are accepted once (a thank-you page, then "used"), and a forged
or expired link says so."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.plugins("marketing")

QUESTIONS = [
    {
        "key": "score",
        "text": "How likely are you to recommend us?",
        "type": "scale",
        "min": 0,
        "max": 10,
        "required": True,
    },
    {
        "key": "source",
        "text": "Where did you hear of us?",
        "type": "choice",
        "options": [{"key": "expo", "label": "Exhibition"}, {"key": "web", "label": "Search engine"}],
        "required": True,
    },
    {
        "key": "needs",
        "text": "What do you need?",
        "type": "choices",
        "options": [{"key": "cable", "label": "Cable"}, {"key": "fibre", "label": "Fibre"}],
    },
    {"key": "staff", "text": "How many people work with you?", "type": "number", "min": 1, "max": 5000},
    {"key": "competitor", "text": "Do you also buy from a competitor?", "type": "yes_no"},
    {"key": "comment", "text": "Anything else?", "type": "text"},
]


def _errors(text: str) -> dict[str, str]:
    return dict(re.findall(r'<span class="field-error" id="error-([^"]+)">([^<]*)</span>', text))


async def test_the_client_answers_through_the_link_page_once(crm: Any, frozen_clock: Any) -> None:
    from tessera_marketing.tables import SurveyResponse

    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Client by link"})).json()
    survey = await crm.post(
        "/api/marketing/surveys", admin, json={"key": "nps", "name": "Our service", "questions": QUESTIONS}
    )
    assert survey.status_code == 201, survey.text
    link = await crm.post(
        f"/api/marketing/surveys/{survey.json()['id']}/links",
        admin,
        json={"party_id": party["id"], "days": 7},
    )
    assert link.status_code == 201, link.text
    parts = urlsplit(link.json()["url"])
    url = f"{parts.path}?{parts.query}"

    # The client opens it signed out, their browser in Ukrainian.
    crm.client.cookies.clear()
    crm.client.headers["Accept-Language"] = "uk-UA,uk;q=0.9"
    page = await crm.page(url)
    assert '<html lang="uk">' in page and "<h1>Our service</h1>" in page
    assert "На питання, позначені *, потрібно відповісти." in page
    assert re.search(r"How likely are you to recommend us\?\s*<span aria-hidden=\"true\">\*</span>", page)
    assert "Where did you hear of us? <span" in page and "Anything else?</legend>" in page
    radios = re.findall(r'<input type="radio" name="q\.score" value="(\d+)"', page)
    assert radios == [str(v) for v in range(11)]
    assert 'name="q.source" value="expo"' in page and "Search engine" in page
    assert 'name="q.needs.fibre"' in page and 'name="q.staff"' in page and 'name="q.comment"' in page
    assert "Від 0 (найменше) до 10 (найбільше)" in page and "Так" in page and "Ні" in page
    assert 'name="csrf_token"' not in page

    # Bad answers: each refused beside its question, in Ukrainian; what was chosen is kept.
    r = await crm.client.post(url, data={"q.staff": "many", "q.needs.fibre": "on", "q.comment": "hi"})
    assert r.status_code == 422
    assert _errors(r.text) == {
        "score": "Будь ласка, дайте відповідь на це питання.",
        "source": "Будь ласка, дайте відповідь на це питання.",
        "staff": "Введіть число, наприклад 12 або 12,5.",
    }
    assert 'name="q.needs.fibre" checked' in r.text and ">hi</textarea>" in r.text
    r = await crm.client.post(url, data={"q.score": "11", "q.source": "expo", "q.staff": "0"})
    assert r.status_code == 422
    assert _errors(r.text) == {
        "score": "Оберіть значення від 0 до 10.",
        "staff": "Оберіть значення від 1 до 5000.",
    }
    assert await SurveyResponse.count() == 0

    # Good answers: the thank-you page; the answers are the client's; the link is used.
    r = await crm.client.post(
        url,
        data={
            "q.score": "9",
            "q.source": "web",
            "q.needs.cable": "on",
            "q.staff": "40",
            "q.competitor": "no",
        },
    )
    assert r.status_code == 200 and "Дякуємо!" in r.text and 'data-survey-outcome="thanks"' in r.text
    stored = await SurveyResponse.select().output(load_json=True)
    assert len(stored) == 1 and stored[0]["party_id"] == party["id"] and stored[0]["channel"] == "link"
    assert stored[0]["answers"] == {
        "score": 9,
        "source": "web",
        "needs": ["cable"],
        "staff": 40,
        "competitor": False,
    }
    again = await crm.client.get(url)
    assert again.status_code == 410 and "Посилання більше не працює" in again.text
    r = await crm.client.post(url, data={"q.score": "3", "q.source": "expo"})
    assert r.status_code == 410 and await SurveyResponse.count() == 1

    # A forged link and an expired one, in English.
    crm.client.headers["Accept-Language"] = "en"
    forged = await crm.client.get(url[:-4] + "abcd")
    assert forged.status_code == 404 and "This link is not valid" in forged.text
    second = await crm.post(
        f"/api/marketing/surveys/{survey.json()['id']}/links",
        admin,
        json={"party_id": party["id"], "days": 1},
    )
    parts = urlsplit(second.json()["url"])
    crm.client.cookies.clear()
    frozen_clock.advance(days=2)
    expired = await crm.client.get(f"{parts.path}?{parts.query}")
    assert expired.status_code == 410 and "This link has been used already or has expired." in expired.text


async def test_survey_editor_errors_preview_and_answers(crm: Any) -> None:
    """The editor refuses a bad questions document beside the box, naming the question in the
    admin's language; the preview shows the questionnaire as a client would; the answers table
    heads its columns with the questions' texts."""
    import json

    admin = await crm.user("admin")
    party = (await crm.post("/api/parties", admin, json={"name": "Answered by phone"})).json()
    csrf = await crm.sign_in(admin, language="ru")
    broken = [QUESTIONS[0], {**QUESTIONS[1], "key": "Source"}]
    r = await crm.client.post(
        "/marketing/surveys",
        data={"csrf_token": csrf, "key": "nps", "name": "Our service", "questions": json.dumps(broken)},
    )
    assert r.status_code == 422
    assert _errors(r.text) == {"questions": "Вопрос 2: ключ — строчные латинские буквы, цифры и _, с буквы"}
    r = await crm.client.post(
        "/marketing/surveys",
        data={"csrf_token": csrf, "key": "nps", "name": "Our service", "questions": "[{"},
    )
    assert r.status_code == 422 and _errors(r.text)["questions"].startswith("это не JSON-документ")
    r = await crm.client.post(
        "/marketing/surveys",
        data={"csrf_token": csrf, "key": "nps", "name": "Our service", "questions": json.dumps(QUESTIONS)},
    )
    assert r.status_code == 303
    survey_url = r.headers["location"]
    preview = await crm.page(f"{survey_url}/preview")
    assert "Так клиент увидит опрос по ссылке." in preview
    assert (
        'name="q.source" value="expo"' in preview
        and 'name="csrf_token"' not in preview.split("data-survey-form")[1]
    )
    sid = int(survey_url.rsplit("/", 1)[1])
    r = await crm.post(
        f"/api/marketing/surveys/{sid}/responses",
        admin,
        json={"party_id": party["id"], "answers": {"score": 8, "source": "expo", "competitor": True}},
    )
    assert r.status_code == 201, r.text
    page = await crm.page(survey_url)
    heads = re.findall(r'<th scope="col" title="([^"]+)">', page)
    assert heads == [q["text"] for q in QUESTIONS]
    assert "Answered by phone" in page and "Exhibition" in page and ">Да<" in page
