"""Survey pages (mounted under ``/marketing/``): the survey list and editor (questions as a
JSON document), each survey's answers and report, the form staff fill for a client on a call
(opened from the client card), and the public page of a signed survey link.

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

import json
import re
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect
from tessera import i18n
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.errors import DomainError, ValidationFailed
from tessera.i18n import N_
from tessera.i18n import gettext as _
from tessera.web.forms import human
from tessera.web.plugin_pages import Form, check_csrf, current_principal, error_page, render

from tessera_marketing import surveys

i18n.register_labels("marketing.survey.type", surveys.TYPE_LABELS)
i18n.register_labels("marketing.survey.channel", surveys.CHANNEL_LABELS)
SURVEY_FIELDS = frozenset({"key", "name", "description", "questions"})
EXAMPLE = [
    {"key": "score", "text": "How likely are you to recommend us?", "type": "scale", "min": 0, "max": 10},
    {
        "key": "source",
        "text": "Where did you hear of us?",
        "type": "choice",
        "options": [{"key": "expo", "label": "Exhibition"}, {"key": "web", "label": "Search engine"}],
    },
]


#: The questions document's refusals (jsonschema's and ``surveys.check_questions``'), matched
#: by their start or a part, in words an admin reads.
QUESTION_MESSAGES = [
    (re.compile(r"^'(options)' is a required property"), N_("give its options (at least two)")),
    (re.compile(r"^'(min|max)' is a required property"), N_("a scale needs its min and max")),
    (re.compile(r"^'\w+' is a required property"), N_("every question needs a key, a text and a type")),
    (re.compile(r" is not one of \["), N_("the type is one of choice, choices, scale, number, yes_no, text")),
    (re.compile(r" does not match "), N_("a key is lower-case Latin letters, digits and _, from a letter")),
    (re.compile(r"^Additional properties are not allowed"), N_("has a property a question does not take")),
    (
        re.compile(r"should be non-empty|is too short|\[\] should"),
        N_("too few: a survey needs a question, a choice two options"),
    ),
    (re.compile(r"^another question has the key"), N_("another question has this key")),
    (re.compile(r"^option keys must differ"), N_("option keys must differ")),
    (re.compile(r"^must be greater than min"), N_("max must be greater than min")),
    (
        re.compile(r"^a scale runs between whole numbers"),
        N_("a scale runs between whole numbers, 100 steps at most"),
    ),
    (re.compile(r"has answers: it cannot be removed"), N_("a question that has answers cannot be removed")),
    (re.compile(r"has answers: its type cannot change"), N_("a question that has answers keeps its type")),
    (re.compile(r"^not JSON"), N_("this is not a JSON document; check the commas, quotes and brackets")),
    (re.compile(r" is not of type "), N_("a value has the wrong kind (text, number, list)")),
]


def _survey_errors(exc: DomainError) -> dict[str, str]:
    """The editor's errors beside its fields: an error inside the questions document beside
    the questions box, naming the question ("Question 2: ...") in the reader's language."""
    out: dict[str, str] = {}
    for error in exc.errors:
        match = re.match(r"^questions(?:\[(\d+)\])?", error.field)
        if match is None:
            key = error.field if error.field in SURVEY_FIELDS else ""
            text = human(error.message)
        else:
            key = "questions"
            text = next(
                (_(msg) for pattern, msg in QUESTION_MESSAGES if pattern.search(error.message)),
                human(error.message),
            )
            if match.group(1) is not None:
                text = _("Question %(n)s: %(reason)s", n=int(match.group(1)) + 1, reason=text)
        out[key] = f"{out[key]}; {text}" if key in out else text
    return out or {"": i18n.translate_message(exc.detail)}


def _survey_values(data: dict[str, str], creating: bool) -> dict[str, Any]:
    try:
        questions = json.loads(data.get("questions") or "null")
    except json.JSONDecodeError as exc:
        raise ValidationFailed.field("questions", f"not JSON: {exc.msg} (line {exc.lineno})") from None
    values: dict[str, Any] = {
        "name": (data.get("name") or "").strip(),
        "description": data.get("description") or "",
        "questions": questions,
        "active": data.get("active") == "on" or (creating and "active" not in data),
    }
    if not values["name"]:
        raise ValidationFailed.field("name", "must not be blank")
    if creating:
        values["key"] = (data.get("key") or "").strip()
    return values


@get("/surveys")
async def surveys_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Surveys with their number of responses, and a form for a new one."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _list_view(
        request, principal, {"questions": json.dumps(EXAMPLE, ensure_ascii=False, indent=2)}
    )


async def _list_view(
    request: Request[Any, Any, Any],
    principal: Any,
    form: dict[str, Any],
    errors: Any = None,
    status: int = 200,
) -> Response[Any]:
    try:
        page = await service.list_page(surveys.SURVEY, principal, [], limit=200)
    except DomainError as exc:
        return error_page(request, principal, exc)
    from tessera import db

    counts = {
        int(r["survey_id"]): int(r["n"])
        for r in await db.raw(
            "SELECT survey_id, COUNT(*) AS n FROM marketing_survey_response GROUP BY survey_id"
        )
    }
    return render(
        request,
        "marketing/surveys.html",
        status=status,
        principal=principal,
        surveys=page.items,
        counts=counts,
        form=form,
        errors=errors or {},
        can_manage=principal.can("marketing.survey.manage"),
    )


@post("/surveys", status_code=303)
async def create_survey(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        row = await service.create(surveys.SURVEY, principal, _survey_values(data, True))
    except DomainError as exc:
        if exc.status in (401, 403, 404):
            return error_page(request, principal, exc)
        return await _list_view(request, principal, data, _survey_errors(exc), exc.status)
    return Redirect(f"/marketing/surveys/{row['id']}", status_code=303)


async def _survey_view(
    request: Request[Any, Any, Any],
    principal: Any,
    survey_id: int,
    form: dict[str, Any] | None = None,
    errors: Any = None,
    status: int = 200,
) -> Response[Any]:
    try:
        survey = await service.get(surveys.SURVEY, principal, survey_id)
        figures = await surveys.report(principal, survey_id)
        rows = await surveys.responses(principal, survey_id, limit=200)
    except DomainError as exc:
        return error_page(request, principal, exc)
    questions = surveys._loaded(survey["questions"])
    if form is None:
        form = {
            "name": survey["name"],
            "description": survey["description"],
            "questions": json.dumps(questions, ensure_ascii=False, indent=2),
            "active": "on" if survey["active"] else "",
        }
    return render(
        request,
        "marketing/survey.html",
        status=status,
        principal=principal,
        survey=survey,
        questions=questions,
        figures=figures,
        responses=rows,
        form=form,
        errors=errors or {},
        can_manage=principal.can("marketing.survey.manage"),
        show=_show,
    )


def _show(question: dict[str, Any], value: Any) -> str:
    """An answer as a person reads it (option labels, yes / no)."""
    labels = {o["key"]: o["label"] for o in question.get("options", [])}
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, list):
        return ", ".join(labels.get(v, v) for v in value)
    return str(labels.get(value, value)) if isinstance(value, str) else str(value)


@get("/surveys/{survey_id:int}")
async def survey_page(request: Request[Any, Any, Any], survey_id: int) -> Response[Any]:
    """A survey: its editor, the report over the latest answers, and the responses."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _survey_view(request, principal, survey_id)


@post("/surveys/{survey_id:int}", status_code=303)
async def save_survey(request: Request[Any, Any, Any], survey_id: int, data: Form) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    try:
        await service.update(surveys.SURVEY, principal, survey_id, _survey_values(data, False))
    except DomainError as exc:
        if exc.status in (401, 403, 404):
            return error_page(request, principal, exc)
        return await _survey_view(request, principal, survey_id, data, _survey_errors(exc), exc.status)
    return Redirect(f"/marketing/surveys/{survey_id}", status_code=303)


@get("/surveys/{survey_id:int}/preview")
async def preview_page(request: Request[Any, Any, Any], survey_id: int) -> Response[Any]:
    """The questionnaire as a client sees it through a link (nothing can be sent from here)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        survey = await service.get(surveys.SURVEY, principal, survey_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return render(
        request,
        "marketing/survey_fill.html",
        principal=principal,
        survey=survey,
        questions=surveys._loaded(survey["questions"]),
        party=None,
        form={},
        errors={},
        link=None,
        public=True,
        preview=True,
        action=f"/marketing/surveys/{survey_id}",
    )


def answers_of(questions: list[dict[str, Any]], data: dict[str, str]) -> dict[str, Any]:
    """The answers of a filled HTML form (``q.<key>``; ``q.<key>.<option>`` for several
    choices); checked by ``surveys.normalise_answers`` afterwards."""
    out: dict[str, Any] = {}
    for question in questions:
        key = question["key"]
        if question["type"] == "choices":
            out[key] = [o["key"] for o in question["options"] if data.get(f"q.{key}.{o['key']}")]
        else:
            value = (data.get(f"q.{key}") or "").strip()
            if value:
                out[key] = value
    return out


#: The answer checks' refusals (``surveys.normalise_answers``) in words a client reads.
ANSWER_MESSAGES = {
    "an answer is required": N_("Please answer this question."),
    "must be one of": N_("Choose one of the options."),
    "must be a list of": N_("Choose among the options."),
    "must be a whole number": N_("Enter a whole number."),
    "must be a number": N_("Enter a number, e.g. 12 or 12.5."),
    "must be from": N_("Choose a value from %(low)s to %(high)s."),
    "must be true or false": N_("Answer yes or no."),
    "must be a text of at most": N_("Write at most %(n)s characters."),
    "answer at least one question": N_("Answer at least one question."),
    "no such question in this survey": N_("The survey has changed: open it again."),
}


def answer_message(question: dict[str, Any] | None, message: str) -> str:
    """A refused answer in the reader's language (the API's English message otherwise)."""
    for start, text in ANSWER_MESSAGES.items():
        if message.startswith(start):
            low = (question or {}).get("min", "")
            high = (question or {}).get("max", "")
            return _(text, low=low, high=high, n=surveys.MAX_TEXT) if "%(" in text else _(text)
    return i18n.translate_message(message)


def _form_errors(exc: DomainError, questions: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Each refused answer beside its question (``""``: about the whole form)."""
    by_key = {q["key"]: q for q in questions or []}
    out: dict[str, str] = {}
    for error in exc.errors:
        name = error.field.split(".", 1)[1] if error.field.startswith("answers.") else ""
        out[name] = answer_message(by_key.get(name), str(error.message))
    return out or {"": i18n.translate_message(exc.detail)}


async def _fill_view(
    request: Request[Any, Any, Any],
    principal: Any,
    survey_id: int,
    party_id: int,
    form: dict[str, Any] | None = None,
    errors: Any = None,
    link: dict[str, Any] | None = None,
    status: int = 200,
) -> Response[Any]:
    try:
        principal.require("marketing.survey.answer")
        survey = await service.get(surveys.SURVEY, principal, survey_id)
        party = await service.get(PARTY, principal, party_id)
    except DomainError as exc:
        return error_page(request, principal, exc)
    return render(
        request,
        "marketing/survey_fill.html",
        status=status,
        principal=principal,
        survey=survey,
        questions=surveys._loaded(survey["questions"]),
        party=party,
        form=form or {},
        errors=errors or {},
        link=link,
        public=False,
        action=f"/marketing/surveys/{survey_id}/fill?party_id={party_id}",
    )


@get("/surveys/{survey_id:int}/fill")
async def fill_page(request: Request[Any, Any, Any], survey_id: int, party_id: int) -> Response[Any]:
    """The survey for one client, filled by staff on a call (from the client card)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return await _fill_view(request, principal, survey_id, party_id)


@post("/surveys/{survey_id:int}/fill", status_code=303)
async def fill_submit(
    request: Request[Any, Any, Any], survey_id: int, party_id: int, data: Form
) -> Response[Any]:
    """Save the answers (or, with ``action=link``, make a signed link for the client)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    survey = None
    try:
        if data.get("action") == "link":
            from tessera_marketing.routes_surveys import _base

            link = await surveys.create_link(principal, survey_id, party_id, 14, _base(request))
            return await _fill_view(request, principal, survey_id, party_id, link=link)
        survey = await service.get(surveys.SURVEY, principal, survey_id)
        answers = answers_of(surveys._loaded(survey["questions"]), data)
        await surveys.answer_on_call(principal, survey_id, party_id, answers)
    except DomainError as exc:
        if exc.status in (401, 403, 404):
            return error_page(request, principal, exc)
        questions = surveys._loaded(survey["questions"]) if survey is not None else []
        return await _fill_view(
            request, principal, survey_id, party_id, data, _form_errors(exc, questions), status=exc.status
        )
    return Redirect(f"/app/parties/{party_id}", status_code=303)


def _public(
    request: Request[Any, Any, Any],
    link_id: int,
    token: str,
    survey: dict[str, Any],
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    return render(
        request,
        "marketing/survey_fill.html",
        principal=None,
        status=status,
        survey=survey,
        questions=survey["questions"],
        party=None,
        form=form or {},
        errors=errors or {},
        link=None,
        public=True,
        action=f"/marketing/survey/{link_id}?t={token}",
    )


def _gone(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """Why the link does not work: used or expired (410), or not a genuine link (404)."""
    return render(request, "marketing/survey_public.html", principal=None, status=exc.status, gone=exc.status)


@get("/survey/{link_id:int}")
async def public_page(request: Request[Any, Any, Any], link_id: int, t: str = "") -> Response[Any]:
    """A signed survey link (no sign-in): the questionnaire in the client's language (their
    browser's), or why the link no longer works."""
    try:
        _link, survey = await surveys.open_link(link_id, t[:100])
    except DomainError as exc:
        return _gone(request, exc)
    return _public(request, link_id, t[:100], survey)


@post("/survey/{link_id:int}", status_code=200)
async def public_submit(
    request: Request[Any, Any, Any], link_id: int, data: Form, t: str = ""
) -> Response[Any]:
    """The client's answers, checked as the API checks them (``surveys.answer_by_link``): each
    refused answer beside its question, the rest kept; once accepted, a thank-you page, and the
    link is used. No CSRF token: the request is bound to the signed link, which a cross-site
    page cannot know."""
    token = t[:100]
    try:
        _link, survey = await surveys.open_link(link_id, token)
    except DomainError as exc:
        return _gone(request, exc)
    try:
        await surveys.answer_by_link(link_id, token, answers_of(survey["questions"], data))
    except ValidationFailed as exc:
        errors = _form_errors(exc, survey["questions"])
        return _public(request, link_id, token, survey, data, errors, status=422)
    except DomainError as exc:
        return _gone(request, exc)
    return render(request, "marketing/survey_public.html", principal=None, gone=0, survey=survey)


async def card_widget(party_id: int, principal: Any) -> list[dict[str, Any]]:
    """The client card's "Surveys" block: the surveys the client answered (newest first) and
    links to fill an active survey on a call."""
    if not principal.can("marketing.survey.read"):
        return []
    done = await surveys.responses(principal, party_id=party_id, limit=20)
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for r in done:
        if r["survey_id"] in seen:
            continue
        seen.add(r["survey_id"])
        rows.append(
            {
                "label": r["survey_name"],
                "value": f"{r['submitted_at']:%Y-%m-%d} · {_(surveys.CHANNEL_LABELS.get(r['channel'], ''))}",
                "href": f"/marketing/surveys/{r['survey_id']}",
            }
        )
    if principal.can("marketing.survey.answer"):
        from tessera_marketing.tables import Survey

        for s in (
            await Survey.select(Survey.id, Survey.name)
            .where(Survey.active == True)  # noqa: E712
            .order_by(Survey.id)
            .limit(10)
        ):
            rows.append(
                {
                    "label": _("Fill in"),
                    "value": s["name"],
                    "href": f"/marketing/surveys/{s['id']}/fill?party_id={party_id}",
                }
            )
    return [{"title": _("Surveys"), "rows": rows, "empty": _("No surveys answered.")}]


HANDLERS = [
    surveys_page,
    create_survey,
    survey_page,
    save_survey,
    preview_page,
    fill_page,
    fill_submit,
    public_page,
    public_submit,
]
