"""Piccolo tables of the sales plugin (all prefixed ``sales_``).

Money is ``Numeric`` (Decimal in Python) beside a three-letter currency code. A deal's stage is
owned by the workflow instance attached to it (``instance_id``); ``sales_deal.stage`` and
``sales_stage_visit`` are a reporting projection of that instance's transitions, rebuilt in the
same transaction as every move (and again from the ``workflow.stage_entered`` event when the
instance is moved through the workflow API), so funnel and forecast reports are plain
``GROUP BY`` queries.
"""

from __future__ import annotations

from decimal import Decimal

from piccolo.columns import (
    JSON,
    BigInt,
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
from tessera.entities.tables import Contact, CrmUser, Party, Team

MONEY = (18, 2)


class LossReason(Table, tablename="sales_loss_reason"):
    """The managed list of reasons a deal is lost (price, competitor, no budget ...)."""

    name = Varchar(length=200, unique=True)
    active = Boolean(default=True)
    position = Integer(default=0)


class Deal(Table, tablename="sales_deal"):
    title = Varchar(length=300)
    party_id = ForeignKey(Party, on_delete=OnDelete.restrict, index=True)
    contact_id = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null, index=True)
    amount = Numeric(digits=MONEY, default=Decimal(0))
    currency = Varchar(length=3, default="RUB")
    expected_close = Date(null=True, default=None, index=True)
    #: Where the deal came from: web, call, referral, campaign, partner, other.
    source = Varchar(length=50, default="")
    #: Marketing campaign (a plain id: the marketing plugin is optional and linked by events).
    campaign_id = Integer(null=True, default=None, index=True)
    #: Workflow template key of the pipeline (``sales.b2b``, ``sales.cross_sell``).
    pipeline = Varchar(length=100, index=True)
    instance_id = Integer(null=True, default=None, index=True)
    #: Projection of the instance: current stage, when it began, its probability.
    stage = Varchar(length=100, default="", index=True)
    stage_entered_at = Timestamptz(null=True, default=None)
    #: When the stage's time norm runs out (from the instance); past it the deal is "stuck".
    stage_due_at = Timestamptz(null=True, default=None, index=True)
    probability = Integer(default=0)
    #: open | won | lost
    status = Varchar(length=10, default="open", index=True)
    loss_reason_id = ForeignKey(LossReason, null=True, on_delete=OnDelete.restrict)
    loss_comment = Text(default="")
    closed_at = Timestamptz(null=True, default=None, index=True)
    custom = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class StageVisit(Table, tablename="sales_stage_visit"):
    """One stay of a deal in a stage (projection of the workflow transitions)."""

    deal_id = ForeignKey(Deal, on_delete=OnDelete.cascade, index=True)
    pipeline = Varchar(length=100)
    stage = Varchar(length=100, index=True)
    seq = Integer(default=0)
    entered_at = Timestamptz(index=True)
    left_at = Timestamptz(null=True, default=None)
    #: Time spent in the stage once left (NULL while the deal is still there).
    seconds = Integer(null=True, default=None)
    #: Stage norm in seconds at entry (calendar), for "time in stage vs norm".
    norm_seconds = Integer(null=True, default=None)
    owner_id = Integer(null=True, default=None, index=True)
    team_id = Integer(null=True, default=None)


class Product(Table, tablename="sales_product"):
    sku = Varchar(length=100, unique=True)
    name = Varchar(length=300)
    unit = Varchar(length=30, default="шт")
    description = Text(default="")
    active = Boolean(default=True)


class PriceList(Table, tablename="sales_price_list"):
    name = Varchar(length=200)
    currency = Varchar(length=3)
    #: Client group the list applies to (party custom field ``sales_client_group``); "" = everyone.
    client_group = Varchar(length=100, default="")
    valid_from = Date()
    valid_to = Date(null=True, default=None)
    #: Discount in percent applied to every price of the list.
    discount_pct = Numeric(digits=(5, 2), default=Decimal(0))
    active = Boolean(default=True)


class Price(Table, tablename="sales_price"):
    price_list_id = ForeignKey(PriceList, on_delete=OnDelete.cascade, index=True)
    product_id = ForeignKey(Product, on_delete=OnDelete.cascade, index=True)
    price = Numeric(digits=MONEY)


class DealLine(Table, tablename="sales_deal_line"):
    deal_id = ForeignKey(Deal, on_delete=OnDelete.cascade, index=True)
    product_id = ForeignKey(Product, null=True, on_delete=OnDelete.set_null)
    name = Varchar(length=300)
    quantity = Numeric(digits=(14, 3), default=Decimal(1))
    unit_price = Numeric(digits=MONEY)
    discount_pct = Numeric(digits=(5, 2), default=Decimal(0))
    amount = Numeric(digits=MONEY)
    position = Integer(default=0)


class ProposalTemplate(Table, tablename="sales_proposal_template"):
    """A Jinja2 HTML template for commercial offers that the company edits."""

    name = Varchar(length=200)
    body = Text()
    is_default = Boolean(default=False)
    updated_at = Timestamptz(default=TimestamptzNow())


class Proposal(Table, tablename="sales_proposal"):
    """A commercial offer: a numbered, versioned snapshot of a deal's lines rendered as HTML
    (the PDF is rendered from the same HTML on request)."""

    deal_id = ForeignKey(Deal, on_delete=OnDelete.cascade, index=True)
    number = Varchar(length=50, index=True)
    version = Integer(default=1)
    template_id = ForeignKey(ProposalTemplate, null=True, on_delete=OnDelete.set_null)
    total = Numeric(digits=MONEY)
    currency = Varchar(length=3)
    #: Lines, party, contact and totals as they were when the proposal was made.
    snapshot = JSON(default={})
    html = Text()
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class SalesDocument(Table, tablename="sales_document"):
    """Orders, invoices, shipments and acts linked to a deal."""

    kind = Varchar(length=20, index=True)  # order | invoice | shipment | act
    number = Varchar(length=50)
    deal_id = ForeignKey(Deal, on_delete=OnDelete.restrict, index=True)
    party_id = ForeignKey(Party, on_delete=OnDelete.restrict, index=True)
    amount = Numeric(digits=MONEY)
    currency = Varchar(length=3)
    issued_on = Date()
    due_on = Date(null=True, default=None)
    status = Varchar(length=20, default="issued")
    comment = Text(default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class SalesPlan(Table, tablename="sales_plan"):
    """A target for a manager (user_id) or a team (team_id) or the company (neither) and a period."""

    user_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.cascade, index=True)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.cascade, index=True)
    period_start = Date()
    period_end = Date()
    pipeline = Varchar(length=100, default="")
    currency = Varchar(length=3, default="RUB")
    #: Money to close (won deals' amount) in the period.
    amount = Numeric(digits=MONEY, default=Decimal(0))
    #: Deals entering each stage in the period: ``{"proposal": 10, "won": 4}``.
    stage_targets = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow())


class CadenceRule(Table, tablename="sales_cadence_rule"):
    """ "Every current client of category A gets a call or meeting at least every 14 days"."""

    name = Varchar(length=200)
    party_status = Varchar(length=20, default="current")
    #: Party custom field ``sales_category``; "" = any category.
    category = Varchar(length=50, default="")
    #: The client's ABC class (custom field ``abc_class``, computed by the marketing plugin);
    #: "" = any client.
    client_class = Varchar(length=1, default="")
    activity_types = JSON(default=["call", "meeting"])
    every_days = Integer()
    active = Boolean(default=True)


class CadenceFlag(Table, tablename="sales_cadence_flag"):
    """The compliance job's verdict per rule and party (replaced at every run)."""

    rule_id = ForeignKey(CadenceRule, on_delete=OnDelete.cascade, index=True)
    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    owner_id = Integer(null=True, default=None, index=True)
    last_contact_at = Timestamptz(null=True, default=None)
    last_contact_type = Varchar(length=20, default="")
    due_at = Timestamptz()
    overdue = Boolean(default=False, index=True)
    checked_at = Timestamptz()


class ForecastSnapshot(Table, tablename="sales_forecast_snapshot"):
    """A forecast as it was made, kept to report its accuracy once the period closed."""

    period_start = Date(index=True)
    period_end = Date()
    method = Varchar(length=20)  # weighted | historical
    pipeline = Varchar(length=100, default="")
    currency = Varchar(length=3)
    amount = Numeric(digits=MONEY)
    made_at = Timestamptz()


class SalesStat(Table, tablename="sales_stat"):
    """Report summary maintained in the same transaction as every deal change (``stats.py``):
    one row per (kind, pipeline, day, stage, owner, team, currency) with counters, so funnel
    and forecast reports add up a few thousand rows instead of scanning every deal and stay.

    * ``stage``: cohort day (deal opened) x stage: ``n`` deals that entered it, ``n2`` stays
      that ended, ``n3`` of those longer than the norm, ``seconds`` spent in ended stays;
    * ``deal``: cohort day x status x currency: ``n`` deals, ``amount``;
    * ``history``: stage of closed deals (``day`` unused): ``n`` closed deals that went
      through it, ``n2`` of them won, ``seconds`` from entering it to winning (won deals);
    * ``open_close``: open deals by expected close day x currency: ``n``, ``amount`` =
      sum of amount x probability (percent points);
    * ``open_stage``: open deals by the day their current stage began x stage x currency:
      ``n``, ``amount``.

    Missing dimensions are 0 / "" / 1970-01-01 (never NULL, so the unique key matches).
    """

    kind = Varchar(length=10)
    pipeline = Varchar(length=100)
    day = Date()
    stage = Varchar(length=100, default="")
    owner_id = Integer(default=0)
    team_id = Integer(default=0)
    currency = Varchar(length=3, default="")
    n = BigInt(default=0)
    n2 = BigInt(default=0)
    n3 = BigInt(default=0)
    seconds = BigInt(default=0)
    amount = Numeric(digits=(20, 2), default=Decimal(0))


class ExchangeRate(Table, tablename="sales_exchange_rate"):
    """``rate`` units of ``base`` for one unit of ``currency``, in force from ``valid_from``
    until the next rate of the pair."""

    base = Varchar(length=3)
    currency = Varchar(length=3)
    valid_from = Date()
    rate = Numeric(digits=(18, 6))
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class SalesSetting(Table, tablename="sales_setting"):
    """Company settings of the sales plugin (``base_currency``)."""

    key = Varchar(length=100, unique=True)
    value = JSON(default={})


TABLES: list[type[Table]] = [
    LossReason,
    Deal,
    StageVisit,
    Product,
    PriceList,
    Price,
    DealLine,
    ProposalTemplate,
    Proposal,
    SalesDocument,
    SalesPlan,
    CadenceRule,
    CadenceFlag,
    ForecastSnapshot,
    SalesStat,
    ExchangeRate,
    SalesSetting,
]
