"""HTTP routes of surveys (``/api/marketing/surveys``, the public ``/api/marketing/survey-links``).

No ``from __future__ import annotations`` here: Litestar reads the handlers' annotations.
"""

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Router, get, post
from litestar.params import Parameter
from msgspec import Meta, Struct
from tessera.api.crud import entity_router
from tessera.entities.dto import Id, partial
from tessera.permissions import Principal

from tessera_marketing import surveys

IdQ = Annotated[int | None, Parameter(ge=1, le=2**31 - 1)]
Questions = Annotated[
    list[dict[str, Any]],
    Meta(
        examples=[
            [
                {
                    "key": "score",
                    "text": "How likely are you to recommend us?",
                    "type": "scale",
                    "min": 0,
                    "max": 10,
                },
                {
                    "key": "source",
                    "text": "Where did you hear of us?",
                    "type": "choice",
                    "options": [{"key": "expo", "label": "Exhibition"}, {"key": "web", "label": "Search"}],
                },
            ]
        ]
    ),
]
Answers = Annotated[dict[str, Any], Meta(examples=[{"score": 9, "source": "expo"}])]


class SurveyIn(Struct, kw_only=True, forbid_unknown_fields=True):
    key: Annotated[str, Meta(min_length=1, max_length=64, examples=["nps"])]
    name: Annotated[str, Meta(min_length=1, max_length=200, examples=["Client satisfaction"])]
    description: Annotated[str, Meta(max_length=5000)] = ""
    questions: Questions
    active: bool = True


SurveyPatch = partial(SurveyIn, "SurveyPatch")


class SurveyOut(Struct, kw_only=True):
    id: int
    key: str
    name: str
    description: str
    questions: list[dict[str, Any]]
    active: bool
    owner_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class ResponseIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    answers: Answers


class ResponseOut(Struct, kw_only=True):
    id: int
    survey_id: int
    party_id: int
    channel: str
    answers: dict[str, Any]
    filled_by: int | None
    submitted_at: dt.datetime


class ResponseRow(ResponseOut, kw_only=True):
    survey_key: str
    survey_name: str
    party_name: str
    link_id: int | None


class LinkIn(Struct, kw_only=True, forbid_unknown_fields=True):
    party_id: Id
    days: Annotated[int, Meta(ge=1, le=365)] = 14


class LinkOut(Struct, kw_only=True):
    id: int
    survey_id: int
    party_id: int
    expires_at: dt.datetime
    token: str
    url: str


class OptionCount(Struct, kw_only=True):
    key: str
    label: str
    count: int


class QuestionFigures(Struct, kw_only=True):
    key: str
    text: str
    type: str
    answered: int
    options: list[OptionCount]
    average: float | None
    minimum: float | None
    maximum: float | None


class SurveyReport(Struct, kw_only=True):
    survey_id: int
    key: str
    name: str
    questions: list[QuestionFigures]


class PublicSurvey(Struct, kw_only=True):
    name: str
    description: str
    questions: list[dict[str, Any]]
    expires_at: dt.datetime


class PublicAnswersIn(Struct, kw_only=True, forbid_unknown_fields=True):
    answers: Answers


def survey_filters(
    active: bool | None = None,
    q: Annotated[str | None, Parameter(max_length=200, description="Part of the name")] = None,
) -> list[Any]:
    from tessera_marketing.tables import Survey

    out: list[Any] = []
    if active is not None:
        out.append(Survey.active == active)
    if q:
        out.append(Survey.name.ilike(f"%{q.replace('%', '').replace('_', '')}%"))
    return out


def _base(request: Request[Any, Any, Any]) -> str:
    from tessera.config import Settings

    settings = getattr(request.app.state, "settings", None)
    if isinstance(settings, Settings) and settings.public_url:
        return settings.public_url
    return str(request.base_url)


@post("/{record_id:int}/responses", operation_id="answer_survey", status_code=201)
async def answer(principal: Principal, record_id: int, data: ResponseIn) -> ResponseOut:
    """Record a party's answers, filled by staff (on a call). Answers are checked against the
    questions: an unknown question or a bad answer is a 422 naming ``answers.<key>``."""
    row = await surveys.answer_on_call(principal, record_id, data.party_id, data.answers)
    return msgspec.convert(row, ResponseOut, strict=False)


@get("/{record_id:int}/responses", operation_id="list_survey_responses")
async def list_responses(
    principal: Principal,
    record_id: int,
    party_id: IdQ = None,
    before: IdQ = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> list[ResponseRow]:
    """The survey's responses on parties you read, newest first (``before``: page on by id)."""
    await surveys.service.get(surveys.SURVEY, principal, record_id)
    rows = await surveys.responses(principal, record_id, party_id, limit, before)
    return [msgspec.convert(r, ResponseRow, strict=False) for r in rows]


@post("/{record_id:int}/links", operation_id="create_survey_link", status_code=201)
async def create_link(
    request: Request[Any, Any, Any], principal: Principal, record_id: int, data: LinkIn
) -> LinkOut:
    """A signed public link for one client to answer once, valid ``days`` days."""
    row = await surveys.create_link(principal, record_id, data.party_id, data.days, _base(request))
    return msgspec.convert(row, LinkOut, strict=False)


@get("/{record_id:int}/report", operation_id="survey_report")
async def survey_report(principal: Principal, record_id: int) -> SurveyReport:
    """Per question, over the latest answers of the parties you read: parties that answered,
    counts per option, and average / minimum / maximum of numbers."""
    return msgspec.convert(await surveys.report(principal, record_id), SurveyReport, strict=False)


surveys_router = entity_router(
    spec=surveys.SURVEY,
    path="/surveys",
    tag="marketing",
    out=SurveyOut,
    create_body=SurveyIn,
    patch_body=SurveyPatch,
    filters=survey_filters,
    extra_handlers=[answer, list_responses, create_link, survey_report],
    name="survey",
)


@get("/survey-links/{link_id:int}", operation_id="open_survey_link", security=[{}])
async def open_link(
    link_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)], t: Annotated[str, Parameter(max_length=100)]
) -> PublicSurvey:
    """The questions behind a signed survey link (no sign-in: the signature is the
    credential). 404 for a forged link, 410 for a used or expired one."""
    link, survey = await surveys.open_link(link_id, t)
    return PublicSurvey(
        name=survey["name"],
        description=survey["description"],
        questions=survey["questions"],
        expires_at=link["expires_at"],
    )


@post(
    "/survey-links/{link_id:int}",
    operation_id="answer_survey_link",
    status_code=201,
    security=[{}],
    opt={"cross_site": True},
)
async def answer_link(
    link_id: Annotated[int, Parameter(ge=1, le=2**31 - 1)],
    t: Annotated[str, Parameter(max_length=100)],
    data: PublicAnswersIn,
) -> dict[str, Literal[True]]:
    """The client's answers through a signed link: accepted once per link, before it expires."""
    await surveys.answer_by_link(link_id, t, data.answers)
    return {"accepted": True}


def routers() -> list[Any]:
    return [surveys_router, Router(path="/", route_handlers=[open_link, answer_link], tags=["marketing"])]
