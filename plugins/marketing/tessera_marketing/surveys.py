"""Surveys: questionnaires as JSON documents, answered by staff on a call or by the client
through a signed public link; answers kept on the party for segments, reports and facts.

A survey has a stable ``key`` and ``questions``, a list checked with jsonschema
(``QUESTIONS_SCHEMA``), each with its own stable ``key`` and a ``type``:

* ``choice`` (one of ``options``), ``choices`` (several of ``options``; each option has a
  ``key`` and a ``label``);
* ``scale`` (a whole number from ``min`` to ``max``, e.g. 0-10), ``number``;
* ``yes_no``; ``text``.

Each response is stored whole (``marketing_survey_response.answers``) and as one row per answer
in ``marketing_survey_answer`` (one per chosen option of a ``choices`` question), the party's
newest answer to each question marked ``latest``: the segment rule ``survey.<key>.<question>``
and the reports read those rows in SQL. A survey's key never changes, and a question that has
answers cannot be removed or change its type (segment rules and facts keep their meaning).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import jsonschema
from tessera import audit, clock, db
from tessera.entities import service
from tessera.entities.parties import PARTY
from tessera.errors import DomainError, FieldError, NotFound, ValidationFailed
from tessera.i18n import N_
from tessera.permissions import Principal

from tessera_marketing.tables import Survey, SurveyAnswer, SurveyLink, SurveyResponse

KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TYPES = ("choice", "choices", "scale", "number", "yes_no", "text")
TYPE_LABELS = {
    "choice": N_("One choice"),
    "choices": N_("Several choices"),
    "scale": N_("Scale"),
    "number": N_("Number"),
    "yes_no": N_("Yes or no"),
    "text": N_("Text"),
}
CHANNEL_LABELS = {"call": N_("On a call"), "link": N_("By link")}
MAX_TEXT = 2000
_KEY_PATTERN = "^[a-z][a-z0-9_]{0,63}$"

QUESTIONS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "minItems": 1,
    "maxItems": 100,
    "items": {
        "type": "object",
        "required": ["key", "text", "type"],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "pattern": _KEY_PATTERN},
            "text": {"type": "string", "minLength": 1, "maxLength": 1000},
            "type": {"enum": list(TYPES)},
            "required": {"type": "boolean"},
            "options": {
                "type": "array",
                "minItems": 2,
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["key", "label"],
                    "additionalProperties": False,
                    "properties": {
                        "key": {"type": "string", "pattern": _KEY_PATTERN},
                        "label": {"type": "string", "minLength": 1, "maxLength": 300},
                    },
                },
            },
            "min": {"type": "number"},
            "max": {"type": "number"},
        },
        "allOf": [
            {
                "if": {"properties": {"type": {"enum": ["choice", "choices"]}}},
                "then": {"required": ["options"]},
                "else": {"not": {"required": ["options"]}},
            },
            {"if": {"properties": {"type": {"const": "scale"}}}, "then": {"required": ["min", "max"]}},
        ],
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(QUESTIONS_SCHEMA)


def _everyone(principal: Principal | None) -> Any:
    return None


def _path(base: str, parts: Any) -> str:
    out = base
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check_questions(questions: Any, path: str = "questions") -> list[dict[str, Any]]:
    """The questions of a survey, checked with jsonschema, keys unique; 422 naming the path."""
    errors = sorted(_VALIDATOR.iter_errors(questions), key=lambda e: list(e.absolute_path))
    if errors:
        error = jsonschema.exceptions.best_match(errors) or errors[0]
        raise ValidationFailed.field(_path(path, error.absolute_path), error.message[:300])
    seen: set[str] = set()
    for i, question in enumerate(questions):
        if question["key"] in seen:
            raise ValidationFailed.field(
                f"{path}[{i}].key", f"another question has the key {question['key']!r}"
            )
        seen.add(question["key"])
        options = [o["key"] for o in question.get("options", [])]
        if len(set(options)) != len(options):
            raise ValidationFailed.field(f"{path}[{i}].options", "option keys must differ")
        low, high = question.get("min"), question.get("max")
        if low is not None and high is not None and low >= high:
            raise ValidationFailed.field(f"{path}[{i}].max", "must be greater than min")
        if question["type"] == "scale" and (int(low) != low or int(high) != high or high - low > 100):
            raise ValidationFailed.field(
                f"{path}[{i}].max", "a scale runs between whole numbers, 100 steps at most"
            )
    return list(questions)


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _prepare_survey(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if existing is not None and "key" in values and values["key"] != existing["key"]:
        raise ValidationFailed.field("key", "cannot change: segment rules and facts name the survey by it")
    if "key" in values:
        if not KEY.match(values["key"] or ""):
            raise ValidationFailed.field(
                "key", "1-64 lower-case letters, digits and _, starting with a letter"
            )
        if await Survey.exists().where(Survey.key == values["key"]):
            raise ValidationFailed.field("key", "another survey has this key")
    if "questions" in values or existing is None:
        questions = check_questions(values.get("questions"))
        if existing is not None:
            await _check_kept(existing, questions)
    if existing is None:
        values.setdefault("owner_id", principal.user_id or None)
    return values


async def _check_kept(existing: dict[str, Any], questions: list[dict[str, Any]]) -> None:
    """A question with answers keeps its key and type."""
    answered = {
        r["question_key"]
        for r in await SurveyAnswer.select(SurveyAnswer.question_key)
        .where(SurveyAnswer.survey_id == existing["id"])
        .distinct()
    }
    old = {q["key"]: q for q in _loaded(existing["questions"]) or []}
    new = {q["key"]: q for q in questions}
    for key in sorted(answered):
        if key not in new:
            raise ValidationFailed.field("questions", f"question {key!r} has answers: it cannot be removed")
        if old.get(key, {}).get("type") not in (None, new[key]["type"]):
            raise ValidationFailed.field("questions", f"question {key!r} has answers: its type cannot change")


SURVEY = service.EntitySpec(
    name="marketing.survey",
    table=Survey,
    permission="marketing.survey",
    visibility=_everyone,
    custom_fields=False,
    prepare=_prepare_survey,
    order_fields=("id", "name"),
    permission_overrides={
        "read": "marketing.survey.read",
        "write": "marketing.survey.manage",
        "delete": "marketing.survey.manage",
    },
)


# --------------------------------------------------------------------------- answers


def _number(value: Any, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationFailed.field(path, "must be a number")
    try:
        number = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        raise ValidationFailed.field(path, "must be a number") from None
    if not number.is_finite() or abs(number) >= Decimal(10) ** 12:
        raise ValidationFailed.field(path, "must be a number")
    return number


def normalise_answers(
    questions: list[dict[str, Any]], answers: Any, path: str = "answers"
) -> tuple[dict[str, Any], list[tuple[str, str | None, Decimal | None]]]:
    """The answers checked against the questions: ``({key: value}, rows)``, rows being
    ``(question_key, text, number)`` for ``marketing_survey_answer``. 422 naming every refused
    answer (one error per question, so a form shows each beside its question)."""
    if not isinstance(answers, dict):
        raise ValidationFailed.field(path, "must be an object {question key: answer}")
    by_key = {q["key"]: q for q in questions}
    for key in answers:
        if key not in by_key:
            raise ValidationFailed.field(f"{path}.{key}", "no such question in this survey")
    clean: dict[str, Any] = {}
    rows: list[tuple[str, str | None, Decimal | None]] = []
    refused: list[FieldError] = []
    for question in questions:
        key = question["key"]
        value = answers.get(key)
        if value is None or value == "" or value == []:
            if question.get("required"):
                refused.append(FieldError(f"{path}.{key}", "an answer is required"))
            continue
        try:
            clean[key], found = _answer(question, value, f"{path}.{key}")
        except ValidationFailed as exc:
            refused.extend(exc.errors)
            continue
        rows.extend(found)
    if refused:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in refused), refused)
    if not clean:
        raise ValidationFailed.field(path, "answer at least one question")
    return clean, rows


def _answer(
    question: dict[str, Any], value: Any, where: str
) -> tuple[Any, list[tuple[str, str | None, Decimal | None]]]:
    """One answer checked: its stored value and its rows; 422 naming ``where``."""
    key, kind = question["key"], question["type"]
    options = [o["key"] for o in question.get("options", [])]
    if kind == "choice":
        if value not in options:
            raise ValidationFailed.field(where, f"must be one of {', '.join(options)}")
        return value, [(key, value, None)]
    if kind == "choices":
        if not isinstance(value, list) or any(v not in options for v in value):
            raise ValidationFailed.field(where, f"must be a list of {', '.join(options)}")
        picked = [o for o in options if o in value]
        return picked, [(key, v, None) for v in picked]
    if kind in ("scale", "number"):
        number = _number(value, where)
        low, high = question.get("min"), question.get("max")
        if kind == "scale" and number != number.to_integral_value():
            raise ValidationFailed.field(where, "must be a whole number")
        if (low is not None and number < Decimal(str(low))) or (
            high is not None and number > Decimal(str(high))
        ):
            raise ValidationFailed.field(where, f"must be from {low} to {high}")
        plain = int(number) if number == number.to_integral_value() else float(number)
        return plain, [(key, str(plain), number)]
    if kind == "yes_no":
        if isinstance(value, str) and value in ("yes", "no"):
            value = value == "yes"
        if not isinstance(value, bool):
            raise ValidationFailed.field(where, "must be true or false")
        return value, [(key, "yes" if value else "no", Decimal(int(value)))]
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValidationFailed.field(where, f"must be a text of at most {MAX_TEXT} characters")
    return value.strip(), [(key, value.strip(), None)]


async def record_response(
    survey: dict[str, Any],
    party_id: int,
    answers: Any,
    channel: str,
    filled_by: int | None,
    link_id: int | None = None,
) -> dict[str, Any]:
    """Store a response and its answer rows (the party's older answers to the same questions
    stop being ``latest``). Call inside a transaction."""
    clean, rows = normalise_answers(_loaded(survey["questions"]), answers)
    now = clock.now()
    inserted = await SurveyResponse.insert(
        SurveyResponse(
            survey_id=survey["id"],
            party_id=party_id,
            channel=channel,
            link_id=link_id,
            answers=clean,
            filled_by=filled_by,
            submitted_at=now,
        )
    ).returning(SurveyResponse.id)
    response_id = inserted[0]["id"]
    await SurveyAnswer.update({SurveyAnswer.latest: False}).where(
        SurveyAnswer.party_id == party_id,
        SurveyAnswer.survey_id == survey["id"],
        SurveyAnswer.question_key.is_in(list(clean)),
        SurveyAnswer.latest == True,  # noqa: E712 (a SQL condition)
    )
    await SurveyAnswer.insert(
        *[
            SurveyAnswer(
                response_id=response_id,
                survey_id=survey["id"],
                party_id=party_id,
                question_key=key,
                value_text=text,
                value_num=number,
                latest=True,
            )
            for key, text, number in rows
        ]
    )
    await audit.record(
        "answer",
        "marketing.survey",
        survey["id"],
        detail=f"party {party_id}, {channel}, response {response_id}",
        user_id=filled_by,
    )
    return {
        "id": response_id,
        "survey_id": survey["id"],
        "party_id": party_id,
        "channel": channel,
        "answers": clean,
        "filled_by": filled_by,
        "submitted_at": now,
    }


async def answer_on_call(principal: Principal, survey_id: int, party_id: int, answers: Any) -> dict[str, Any]:
    """Staff fill the survey for a party they read (on a call)."""
    principal.require("marketing.survey.answer")
    async with db.transaction():
        survey = await service.get(SURVEY, principal, survey_id)
        await service.require_visible(PARTY, principal, party_id, "party_id")
        if not survey["active"]:
            raise ValidationFailed.field("survey_id", "the survey is closed")
        return await record_response(survey, party_id, answers, "call", principal.user_id or None)


async def responses(
    principal: Principal,
    survey_id: int | None = None,
    party_id: int | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Responses on parties the caller reads, newest first (``before``: an id, for paging)."""
    principal.require("marketing.survey.read")
    from tessera_marketing.services import visible_parties

    query = SurveyResponse.select(
        *SurveyResponse.all_columns(),
        SurveyResponse.survey_id.key,
        SurveyResponse.survey_id.name,
        SurveyResponse.party_id.name,
    )
    if survey_id is not None:
        query = query.where(SurveyResponse.survey_id == survey_id)
    if party_id is not None:
        query = query.where(SurveyResponse.party_id == party_id)
    if before is not None:
        query = query.where(SurveyResponse.id < before)
    parties = visible_parties(principal)
    if parties is not None:
        query = query.where(SurveyResponse.party_id.is_in(parties))
    rows = await query.order_by(SurveyResponse.id, ascending=False).limit(limit).output(load_json=True)
    return [
        {
            **r,
            "survey_key": r.pop("survey_id.key"),
            "survey_name": r.pop("survey_id.name"),
            "party_name": r.pop("party_id.name"),
        }
        for r in rows
    ]


# --------------------------------------------------------------------------- signed links


def _sign(secret: bytes, link: dict[str, Any]) -> str:
    expires = link["expires_at"]
    stamp = int(expires.timestamp()) if isinstance(expires, dt.datetime) else expires
    message = f"survey:{link['id']}:{link['survey_id']}:{link['party_id']}:{stamp}"
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()[:40]


async def _secret() -> bytes:
    from tessera_marketing.mailings import _secret as secret

    return await secret()


def link_url(base: str, link_id: int, token: str) -> str:
    return f"{base.rstrip('/')}/marketing/survey/{link_id}?{urlencode({'t': token})}"


async def create_link(
    principal: Principal, survey_id: int, party_id: int, days: int, base: str
) -> dict[str, Any]:
    """A signed link for one client to answer the survey once before it expires."""
    principal.require("marketing.survey.answer")
    async with db.transaction():
        survey = await service.get(SURVEY, principal, survey_id)
        await service.require_visible(PARTY, principal, party_id, "party_id")
        if not survey["active"]:
            raise ValidationFailed.field("survey_id", "the survey is closed")
        expires = (clock.now() + dt.timedelta(days=days)).replace(microsecond=0)
        rows = await SurveyLink.insert(
            SurveyLink(
                survey_id=survey_id,
                party_id=party_id,
                expires_at=expires,
                created_by=principal.user_id or None,
                created_at=clock.now(),
            )
        ).returning(SurveyLink.id)
        link = {"id": rows[0]["id"], "survey_id": survey_id, "party_id": party_id, "expires_at": expires}
        token = _sign(await _secret(), link)
        await audit.record(
            "link", "marketing.survey", survey_id, detail=f"party {party_id}, link {link['id']}"
        )
    return {**link, "token": token, "url": link_url(base, link["id"], token)}


class LinkGone(DomainError):
    """The link was used already or has expired."""

    status = 410


async def open_link(link_id: int, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The link and its survey when the token is genuine (404 otherwise); 410 when it was used
    or has expired."""
    link = await SurveyLink.select().where(SurveyLink.id == link_id).first()
    if link is None or not hmac.compare_digest(_sign(await _secret(), link), token or ""):
        raise NotFound("No such link")
    if link["used_at"] is not None:
        raise LinkGone("This link has been used already")
    if link["expires_at"] <= clock.now():
        raise LinkGone("This link has expired")
    survey = await Survey.select().where(Survey.id == link["survey_id"]).first()
    if survey is None or not survey["active"]:
        raise LinkGone("This survey is closed")
    survey["questions"] = _loaded(survey["questions"])
    return link, survey


async def answer_by_link(link_id: int, token: str, answers: Any) -> dict[str, Any]:
    """The client's answers through a signed link: one response per link, before it expires
    (the link is taken by one conditional UPDATE, so two submissions cannot both count)."""
    link, survey = await open_link(link_id, token)
    normalise_answers(survey["questions"], answers)  # a 422 leaves the link usable
    async with db.transaction():
        now = clock.now()
        taken = (
            await SurveyLink.update({SurveyLink.used_at: now})
            .where(SurveyLink.id == link_id, SurveyLink.used_at.is_null(), SurveyLink.expires_at > now)
            .returning(SurveyLink.id)
        )
        if not taken:
            raise LinkGone("This link has been used already")
        return await record_response(survey, link["party_id"], answers, "link", None, link_id)


# --------------------------------------------------------------------------- reports, facts


async def report(principal: Principal, survey_id: int) -> dict[str, Any]:
    """Per question, over the latest answers of the parties the caller reads: how many parties
    answered; per option (choice, choices, yes/no) how many chose it; for numbers the average,
    minimum and maximum."""
    survey = await service.get(SURVEY, principal, survey_id)
    from piccolo.query.functions.aggregate import Avg, Count, Max, Min

    from tessera_marketing.services import visible_parties

    parties = visible_parties(principal)
    latest = (SurveyAnswer.survey_id == survey_id) & (SurveyAnswer.latest == True)  # noqa: E712
    if parties is not None:
        latest = latest & SurveyAnswer.party_id.is_in(parties)
    counts = (
        await SurveyAnswer.select(SurveyAnswer.question_key, SurveyAnswer.value_text, Count(alias="n"))
        .where(latest)
        .group_by(SurveyAnswer.question_key, SurveyAnswer.value_text)
    )
    numbers = SurveyAnswer.select(
        SurveyAnswer.question_key,
        Avg(SurveyAnswer.value_num, alias="avg"),
        Min(SurveyAnswer.value_num, alias="min"),
        Max(SurveyAnswer.value_num, alias="max"),
        Count(distinct=[SurveyAnswer.party_id], alias="parties"),
    ).where(latest)
    stats = {r["question_key"]: r for r in await numbers.group_by(SurveyAnswer.question_key)}
    per_value: dict[str, dict[str, int]] = {}
    for r in counts:
        per_value.setdefault(r["question_key"], {})[r["value_text"]] = int(r["n"])
    out = []
    for question in _loaded(survey["questions"]):
        key, kind = question["key"], question["type"]
        row = stats.get(key) or {}
        item: dict[str, Any] = {
            "key": key,
            "text": question["text"],
            "type": kind,
            "answered": int(row.get("parties") or 0),
            "options": [],
            "average": None,
            "minimum": None,
            "maximum": None,
        }
        values = per_value.get(key, {})
        if kind in ("choice", "choices"):
            item["options"] = [
                {"key": o["key"], "label": o["label"], "count": values.get(o["key"], 0)}
                for o in question["options"]
            ]
        elif kind == "yes_no":
            item["options"] = [{"key": k, "label": k, "count": values.get(k, 0)} for k in ("yes", "no")]
        elif kind in ("scale", "number") and row.get("avg") is not None:
            item["average"] = round(float(row["avg"]), 2)
            item["minimum"] = float(row["min"])
            item["maximum"] = float(row["max"])
        out.append(item)
    return {"survey_id": survey_id, "key": survey["key"], "name": survey["name"], "questions": out}


def _names_of(survey: dict[str, Any]) -> dict[str, str]:
    return {
        f"survey.{survey['key']}.{q['key']}": f"{survey['name']}: {q['text']}"
        for q in _loaded(survey["questions"]) or []
    }


async def load_fact_names() -> dict[str, str]:
    """``survey.<survey key>.<question key>`` -> the survey's name and the question's text, read
    from the database when asked (so every node knows every survey)."""
    rows = await Survey.select(Survey.key, Survey.name, Survey.questions).order_by(Survey.id)
    return {name: text for survey in rows for name, text in _names_of(survey).items()}


async def facts(party_id: int) -> dict[str, Any]:
    """The party's latest answer to each survey question, as ``{fact name: value}``."""
    rows_s = await Survey.select(Survey.id, Survey.key, Survey.name, Survey.questions).output(load_json=True)
    surveys = {r["id"]: r for r in rows_s}
    rows = (
        await SurveyResponse.select(SurveyResponse.survey_id, SurveyResponse.answers)
        .where(SurveyResponse.party_id == party_id)
        .order_by(SurveyResponse.submitted_at)
        .order_by(SurveyResponse.id)
        .output(load_json=True)
    )
    out: dict[str, Any] = {}
    for r in rows:  # oldest first: a newer answer to a question overwrites an older one
        survey = surveys.get(r["survey_id"])
        if survey is None:
            continue
        for key, value in (r["answers"] or {}).items():
            out[f"survey.{survey['key']}.{key}"] = value
    return out


async def timeline(party_id: int, principal: Any = None) -> list[dict[str, Any]]:
    """The party's filled surveys on its card (for readers of surveys)."""
    if principal is not None and not principal.can("marketing.survey.read"):
        return []
    rows = await SurveyResponse.select(
        SurveyResponse.id,
        SurveyResponse.submitted_at,
        SurveyResponse.channel,
        SurveyResponse.filled_by,
        SurveyResponse.survey_id,
        SurveyResponse.survey_id.name,
    ).where(SurveyResponse.party_id == party_id)
    from tessera.i18n import gettext as _

    return [
        {
            "kind": "marketing.survey",
            "at": r["submitted_at"],
            "id": r["survey_id"],
            "user_id": r["filled_by"],
            "title": r["survey_id.name"],
            "detail": _(CHANNEL_LABELS.get(r["channel"], r["channel"])),
        }
        for r in rows
    ]


# --------------------------------------------------------------------------- segment rules

#: operators of a ``survey.<survey>.<question>`` rule, per question type
SURVEY_OPS: dict[str, tuple[str, ...]] = {
    "choice": ("answered", "not_answered", "eq", "ne", "in"),
    "choices": ("answered", "not_answered", "eq", "ne", "in"),
    "yes_no": ("answered", "not_answered", "eq"),
    "scale": ("answered", "not_answered", "eq", "ne", "in", "gt", "gte", "lt", "lte"),
    "number": ("answered", "not_answered", "eq", "ne", "gt", "gte", "lt", "lte"),
    "text": ("answered", "not_answered", "eq", "contains"),
}
_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


async def rule_schema() -> dict[str, dict[str, Any]]:
    """``{survey key: {"id": .., "questions": {question key: question}}}`` for the compiler."""
    rows = await Survey.select(Survey.id, Survey.key, Survey.name, Survey.questions).output(load_json=True)
    return {r["key"]: {"id": r["id"], "questions": {q["key"]: q for q in r["questions"] or []}} for r in rows}


def rule_sql(
    schema: dict[str, dict[str, Any]], field: str, op: Any, value: Any, path: str, pg: bool
) -> tuple[str, list[Any]]:
    """The SQL condition on ``party`` of the segment rule ``{"field": "survey.<s>.<q>", ...}``:
    the party's latest answer to the question matches; 422 naming the rule's path otherwise."""
    parts = field.split(".")
    if len(parts) != 3:
        raise ValidationFailed.field(
            f"{path}.field", f"write survey.<survey key>.<question key>, not {field!r}"
        )
    survey = schema.get(parts[1])
    if survey is None:
        raise ValidationFailed.field(f"{path}.field", f"unknown survey {parts[1]!r}")
    question = survey["questions"].get(parts[2])
    if question is None:
        raise ValidationFailed.field(f"{path}.field", f"survey {parts[1]!r} has no question {parts[2]!r}")
    kind = question["type"]
    ops = SURVEY_OPS[kind]
    if op not in ops:
        raise ValidationFailed.field(f"{path}.op", f"{field} takes the operators {', '.join(ops)}")
    vpath = f"{path}.value"
    true = "TRUE" if pg else "1"
    base = (
        'SELECT 1 FROM "marketing_survey_answer" sv_a WHERE sv_a."party_id" = "party"."id" '
        f'AND sv_a."survey_id" = {{}} AND sv_a."question_key" = {{}} AND sv_a."latest" = {true}'
    )
    args: list[Any] = [survey["id"], question["key"]]
    if op == "answered":
        return f"EXISTS ({base})", args
    if op == "not_answered":
        return f"NOT EXISTS ({base})", args
    options = [o["key"] for o in question.get("options", [])]

    def text(v: Any, where: str) -> str:
        if kind in ("choice", "choices"):
            if v not in options:
                raise ValidationFailed.field(where, f"must be one of {', '.join(options)}")
            return str(v)
        if not isinstance(v, str) or not v or len(v) > 300:
            raise ValidationFailed.field(where, "must be a non-empty text")
        return v

    def number(v: Any, where: str) -> Any:
        n = _number(v, where)
        return n if pg else float(n)

    if kind == "yes_no":
        if not isinstance(value, bool):
            raise ValidationFailed.field(vpath, "must be true or false")
        return f'EXISTS ({base} AND sv_a."value_text" = {{}})', [*args, "yes" if value else "no"]
    numeric = kind in ("scale", "number")
    column = 'sv_a."value_num"' if numeric else 'sv_a."value_text"'
    convert = number if numeric else text
    if op == "contains":
        t = text(value, vpath)
        like = "%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        fn = "ILIKE" if pg else "LIKE"
        return f"EXISTS ({base} AND {column} {fn} {{}} ESCAPE '\\')", [*args, like]
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > 500:
            raise ValidationFailed.field(vpath, "must be a list of 1 to 500 values")
        values = [convert(v, f"{vpath}[{i}]") for i, v in enumerate(value)]
        marks = ", ".join("{}" for _ in values)
        return f"EXISTS ({base} AND {column} IN ({marks}))", [*args, *values]
    converted = convert(value, vpath)
    if op == "ne":
        # Answered, and not with this value (for several choices: this option not among them).
        return (
            f"EXISTS ({base}) AND NOT EXISTS ({base} AND {column} = {{}})",
            [*args, *args, converted],
        )
    return f"EXISTS ({base} AND {column} {_COMPARE[op]} {{}})", [*args, converted]


def uses_surveys(rules: Any) -> bool:
    """Whether a rule document names a survey field (the compiler then loads the surveys)."""
    return '"survey.' in json.dumps(rules, default=str)
