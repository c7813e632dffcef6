"""Piccolo tables of the marketing plugin (all prefixed ``marketing_``).

A segment keeps its rules as JSON (``segments.compile_rules`` turns them into SQL conditions on
``party``); a static segment's frozen members are rows of ``marketing_segment_member``. The
ABC/XYZ job keeps each client's current class in ``marketing_party_class`` (and on the party's
custom fields ``abc_class`` / ``xyz_class`` / ``abc_xyz_date``) and appends every change to
``marketing_class_history``.
"""

from __future__ import annotations

from decimal import Decimal

from piccolo.columns import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table
from tessera.entities.tables import CrmUser, Party, Team

MONEY = (18, 2)


class Segment(Table, tablename="marketing_segment"):
    name = Varchar(length=200)
    description = Text(default="")
    #: dynamic (evaluated when used) | static (frozen member list)
    kind = Varchar(length=10, default="dynamic")
    #: ``{"all": [...]}`` / ``{"any": [...]}`` of rules (docs/marketing.md)
    rules = JSON(default={})
    #: When a static segment's members were frozen.
    frozen_at = Timestamptz(null=True, default=None)
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class SegmentMember(Table, tablename="marketing_segment_member"):
    segment_id = ForeignKey(Segment, on_delete=OnDelete.cascade, index=True)
    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)


class Setting(Table, tablename="marketing_setting"):
    """Settings of the plugin (``classes``: the ABC/XYZ thresholds)."""

    key = Varchar(length=100, unique=True)
    value = JSON(default={})


class PartyClass(Table, tablename="marketing_party_class"):
    """A client's current ABC/XYZ class, revenue and coefficient of variation: the party's
    read-only custom fields ``abc_class``, ``xyz_class`` and ``abc_xyz_date`` (hook
    ``tessera_custom_field_values``), kept here so a recomputation never rewrites party rows.

    ``party_id`` carries no foreign key on PostgreSQL (migration 2026-12-08T00:00): each
    checked insert locks the party's row, a write to every party page on a first run at a
    million clients; rows of a deleted party go with its ``party.deleted`` event."""

    party_id = Integer(unique=True)
    abc_class = Varchar(length=1)
    xyz_class = Varchar(length=1)
    revenue = Numeric(digits=MONEY, default=Decimal(0))
    #: Coefficient of variation of the monthly revenue, in percent.
    cv_pct = Numeric(digits=(10, 2), null=True, default=None)
    #: The recomputation that last changed these figures.
    computed_on = Date()
    #: The day the client got its current classes (the custom field ``abc_xyz_date``).
    class_since = Date(null=True, default=None)


class ClassStage(Table, tablename="marketing_class_stage"):
    """Scratch rows of one recomputation (filled and emptied inside its transaction)."""

    party_id = Integer(index=True)
    abc_class = Varchar(length=1)
    xyz_class = Varchar(length=1)
    revenue = Numeric(digits=MONEY, default=Decimal(0))
    cv_pct = Numeric(digits=(10, 2), null=True, default=None)


class ClassHistory(Table, tablename="marketing_class_history"):
    """Every change of a client's class (the first classification included)."""

    party_id = Integer(index=True)  # no foreign key: see PartyClass
    abc_class = Varchar(length=1, default="")
    xyz_class = Varchar(length=1, default="")
    revenue = Numeric(digits=MONEY, default=Decimal(0))
    cv_pct = Numeric(digits=(10, 2), null=True, default=None)
    computed_on = Date()
    at = Timestamptz(default=TimestamptzNow())


class Campaign(Table, tablename="marketing_campaign"):
    name = Varchar(length=200)
    #: email | web | exhibition | event | ads | social | phone | print | referral | other
    channel = Varchar(length=20, default="other", index=True)
    #: planned | active | closed
    status = Varchar(length=10, default="planned", index=True)
    starts_on = Date()
    ends_on = Date(null=True, default=None)
    budget = Numeric(digits=MONEY, default=Decimal(0))
    segment_id = ForeignKey(Segment, null=True, on_delete=OnDelete.set_null)
    expected_responses = Integer(default=0)
    expected_leads = Integer(default=0)
    expected_revenue = Numeric(digits=MONEY, default=Decimal(0))
    description = Text(default="")
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class CampaignCost(Table, tablename="marketing_campaign_cost"):
    campaign_id = ForeignKey(Campaign, on_delete=OnDelete.cascade, index=True)
    spent_on = Date()
    amount = Numeric(digits=MONEY)
    description = Varchar(length=300, default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class WebForm(Table, tablename="marketing_web_form"):
    """A lead form on the company's site, posted to ``POST /api/marketing/forms/{key}``."""

    key = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    campaign_id = ForeignKey(Campaign, null=True, on_delete=OnDelete.set_null)
    #: The deal/lead source it stands for (web, landing, partner site ...).
    source = Varchar(length=50, default="web")
    #: form field -> target: name | company | email | phone | note | custom.<party field>
    fields = JSON(default={})
    #: Form fields a submission must fill (names of ``fields``).
    required = JSON(default=[])
    #: form field -> the label a visitor reads beside it (the embed snippet); default: its name.
    labels = JSON(default={})
    #: Origins (``https://example.com``) whose pages may post it from a browser (CORS).
    allowed_origins = JSON(default=[])
    #: A field hidden from people: a submission that fills it is spam.
    honeypot = Varchar(length=64, default="website_url")
    per_ip_per_hour = Integer(default=5)
    per_form_per_hour = Integer(default=500)
    #: {"mode": "user|round_robin|least_loaded|territory|team_list", "user_ids": [...],
    #: "team_id": n, "field": "region", "territories": {"north": user_id}}
    distribution = JSON(default={})
    last_assignee_id = Integer(null=True, default=None)
    active = Boolean(default=True)
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class RateBucket(Table, tablename="marketing_rate_bucket"):
    """Submissions per key and hour (a hashed client address and form, or a form): counted in
    the database, so the limits hold across every application node."""

    bucket = Varchar(length=150, unique=True)
    hits = Integer(default=0)
    window_start = Timestamptz(index=True)


class Lead(Table, tablename="marketing_lead"):
    """A response: a party touched by a campaign (a web form, a deal linked to the campaign, a
    lead logged by hand). A party's earliest lead with a campaign is its first touch."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    campaign_id = ForeignKey(Campaign, null=True, on_delete=OnDelete.set_null, index=True)
    #: form | deal | manual
    source = Varchar(length=20, default="manual")
    form_id = ForeignKey(WebForm, null=True, on_delete=OnDelete.set_null)
    #: new | contacted | qualified | disqualified
    status = Varchar(length=20, default="new", index=True)
    #: A team's lead list (distribution "team_list"): any member may take it.
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null, index=True)
    #: What the web form sent (mapped fields and the rest), for the manager.
    payload = JSON(default={})
    #: The sales deal that linked the party to the campaign (``source = deal``).
    deal_id = Integer(null=True, default=None)
    assignee_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    note = Text(default="")
    received_at = Timestamptz(default=TimestamptzNow(), index=True)
    created_by = Integer(null=True, default=None)


class Mailing(Table, tablename="marketing_mailing"):
    """A personalised e-mail to a segment, sent by background jobs through the kernel's SMTP."""

    name = Varchar(length=200)
    #: Jinja2 templates (sandboxed): ``{{ party.name }}``, ``{{ unsubscribe_url }}`` ...
    subject = Varchar(length=300)
    html = Text(default="")
    text = Text(default="")
    segment_id = ForeignKey(Segment, null=True, on_delete=OnDelete.set_null)
    campaign_id = ForeignKey(Campaign, null=True, on_delete=OnDelete.set_null)
    #: Promotional mailings skip the parties the suppression hook names.
    promotional = Boolean(default=True)
    #: draft | sending | sent | expired | cancelled
    status = Varchar(length=20, default="draft", index=True)
    per_minute = Integer(default=600)
    #: The send window: nothing goes out after this time (late recipients are marked ``late``).
    send_before = Timestamptz(null=True, default=None)
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class MailingRecipient(Table, tablename="marketing_mailing_recipient"):
    """The per-recipient ledger: ``sent`` is committed only after the SMTP server accepted the
    message."""

    mailing_id = ForeignKey(Mailing, on_delete=OnDelete.cascade, index=True)
    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    email = Varchar(length=254)
    #: queued | sending | sent | failed | late | skipped | bounced (a hard bounce or complaint later)
    status = Varchar(length=10, default="queued")
    message_id = Varchar(length=300, default="")
    sent_at = Timestamptz(null=True, default=None)
    error = Text(default="")


class Unsubscribe(Table, tablename="marketing_unsubscribe"):
    """An address that receives no more mailings: it unsubscribed (one-click), or a message to
    it bounced hard or drew a complaint (bounce processing, ``bounces.py``)."""

    email = Varchar(length=254, unique=True)
    party_id = Integer(null=True, default=None)
    mailing_id = Integer(null=True, default=None)
    at = Timestamptz(default=TimestamptzNow())
    #: unsubscribe | hard_bounce | complaint
    reason = Varchar(length=20, default="unsubscribe")
    #: The bounce's status code and text, or the complaint's feedback type.
    detail = Varchar(length=500, default="")


class Survey(Table, tablename="marketing_survey"):
    """A questionnaire: its ``questions`` are a JSON document checked with jsonschema
    (``surveys.QUESTIONS_SCHEMA``); the survey's ``key`` and each question's ``key`` are stable,
    so segment rules and facts (``survey.<key>.<question>``) keep naming the same thing."""

    key = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    description = Text(default="")
    questions = JSON(default=[])
    active = Boolean(default=True)
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class SurveyLink(Table, tablename="marketing_survey_link"):
    """A signed public link that lets one client answer one survey once, until it expires."""

    survey_id = ForeignKey(Survey, on_delete=OnDelete.cascade, index=True)
    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class SurveyResponse(Table, tablename="marketing_survey_response"):
    """One filled questionnaire of a party: by staff on a call, or by the client via a link."""

    survey_id = ForeignKey(Survey, on_delete=OnDelete.cascade, index=True)
    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    #: call (staff) | link (the client, through a signed link)
    channel = Varchar(length=10, default="call")
    link_id = Integer(null=True, default=None)
    answers = JSON(default={})
    filled_by = Integer(null=True, default=None)
    submitted_at = Timestamptz(default=TimestamptzNow(), index=True)


class SurveyAnswer(Table, tablename="marketing_survey_answer"):
    """The answers of a response, one row per question (per chosen option of a multiple
    choice), for segment rules and reports in SQL; ``latest`` marks the party's newest answer."""

    response_id = ForeignKey(SurveyResponse, on_delete=OnDelete.cascade, index=True)
    survey_id = Integer()
    party_id = Integer(index=True)
    question_key = Varchar(length=64)
    value_text = Varchar(length=2000, null=True, default=None)
    value_num = Numeric(digits=(18, 4), null=True, default=None)
    latest = Boolean(default=True)


class ProductGroup(Table, tablename="marketing_product_group"):
    """A group of products for the competitor matrix: our products in it by SKU (the purchases
    sales reports through ``tessera_marketing_product_purchases``), competitors' by record."""

    key = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    #: SKUs of our products in the group.
    skus = JSON(default=[])
    position = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class CompetitorProduct(Table, tablename="marketing_competitor_product"):
    """A competitor's product and its price (the competitor is a party with the relation
    ``competitor``)."""

    competitor_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    group_id = ForeignKey(ProductGroup, null=True, on_delete=OnDelete.set_null, index=True)
    name = Varchar(length=300)
    price = Numeric(digits=MONEY, null=True, default=None)
    currency = Varchar(length=3, default="RUB")
    unit = Varchar(length=30, default="")
    #: When the price was seen (a price list, a tender, a client's word).
    observed_on = Date(null=True, default=None)
    note = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class CompetitorSupply(Table, tablename="marketing_competitor_supply"):
    """A client buys a product group from a competitor (what the manager learnt)."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    competitor_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    group_id = ForeignKey(ProductGroup, on_delete=OnDelete.cascade, index=True)
    note = Varchar(length=500, default="")
    noted_on = Date(null=True, default=None)
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


TABLES: list[type[Table]] = [
    Segment,
    SegmentMember,
    Setting,
    PartyClass,
    ClassStage,
    ClassHistory,
    Campaign,
    CampaignCost,
    WebForm,
    RateBucket,
    Lead,
    Mailing,
    MailingRecipient,
    Unsubscribe,
    Survey,
    SurveyLink,
    SurveyResponse,
    SurveyAnswer,
    ProductGroup,
    CompetitorProduct,
    CompetitorSupply,
]
