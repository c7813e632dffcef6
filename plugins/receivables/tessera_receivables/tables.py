"""Piccolo tables of the receivables plugin (all prefixed ``receivables_``).

Money is ``Numeric(18, 2)`` read back as ``Decimal``; every amount carries its currency. An
invoice keeps its open ``balance`` on its row (amount minus allocations), so ageing "as of
today" is one scan of open invoices; ageing as of an earlier day adds back the allocations of
payments made after it (``Allocation.paid_on`` is the payment's day, copied so that sum needs
no join).
"""

from __future__ import annotations

from decimal import Decimal

from piccolo.columns import (
    JSON,
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
from tessera.entities.tables import Party

MONEY = (18, 2)


class Invoice(Table, tablename="receivables_invoice"):
    """A receivable: what the client owes on one invoice, and what of it is still open."""

    party_id = ForeignKey(Party, on_delete=OnDelete.restrict, index=True)
    number = Varchar(length=60, default="")
    issue_date = Date()
    due_date = Date(index=True)
    currency = Varchar(length=3, default="RUB")
    amount = Numeric(digits=MONEY, default=Decimal("0"))
    balance = Numeric(digits=MONEY, default=Decimal("0"))
    #: open | paid | cancelled
    status = Varchar(length=20, default="open", index=True)
    #: Set once by the overdue scan (``receivables.overdue_scan``) when the due date passed.
    overdue_at = Timestamptz(null=True, default=None)
    #: The accounting system's id (``sales:<id>`` for invoices taken from the sales plugin);
    #: unique when not empty: imports are idempotent on it.
    external_id = Varchar(length=200, default="")
    #: api | import | sales
    source = Varchar(length=20, default="api")
    deal_id = Integer(null=True, default=None)
    notes = Text(default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Payment(Table, tablename="receivables_payment"):
    """Money received from a client (``payment``) or a credit note given to it
    (``credit_note``); what is not allocated to invoices yet is a prepayment (``unallocated``)."""

    party_id = ForeignKey(Party, on_delete=OnDelete.restrict, index=True)
    #: payment | credit_note
    kind = Varchar(length=20, default="payment")
    reference = Varchar(length=100, default="")
    paid_on = Date(index=True)
    currency = Varchar(length=3, default="RUB")
    amount = Numeric(digits=MONEY, default=Decimal("0"))
    unallocated = Numeric(digits=MONEY, default=Decimal("0"))
    external_id = Varchar(length=200, default="")
    source = Varchar(length=20, default="api")
    notes = Text(default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Allocation(Table, tablename="receivables_allocation"):
    """Part of a payment (or credit note) applied to an invoice."""

    payment_id = ForeignKey(Payment, on_delete=OnDelete.cascade, index=True)
    invoice_id = ForeignKey(Invoice, on_delete=OnDelete.cascade, index=True)
    amount = Numeric(digits=MONEY, default=Decimal("0"))
    #: The payment's day (ageing as of a day adds back what was paid after it).
    paid_on = Date(index=True)
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class CollectionCase(Table, tablename="receivables_case"):
    """The collection of one client's overdue debt: opened by the overdue scan, walked through
    the dunning steps, paused by open claims and promises, closed when nothing is overdue."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    #: active | paused | closed
    status = Varchar(length=20, default="active", index=True)
    opened_at = Timestamptz(default=TimestamptzNow())
    closed_at = Timestamptz(null=True, default=None)
    #: The day dunning counts from (the first overdue day of the oldest overdue invoice).
    overdue_since = Date(null=True, default=None)
    #: Dunning steps done, in order (``reminder``, ``call``, ``letter``, ``escalation``).
    steps_done = JSON(default=[])
    #: Why it is paused: ticket | promise ("" = not paused).
    pause_reason = Varchar(length=20, default="")
    paused_at = Timestamptz(null=True, default=None)
    #: Days spent paused in total (the step days move on by them).
    paused_days = Integer(default=0)
    #: The dunning template followed (``receivables.dunning.standard`` / ``.gentle``).
    template = Varchar(length=100, default="")
    #: The case's run of its dunning process (``workflow_instance.id``; ``None`` for a client
    #: without an account manager, whose case the plugin walks alone).
    process_id = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Promise(Table, tablename="receivables_promise"):
    """A client's promise to pay ``amount`` by ``promised_on`` (recorded from a call)."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    case_id = ForeignKey(CollectionCase, null=True, on_delete=OnDelete.set_null, index=True)
    amount = Numeric(digits=MONEY, default=Decimal("0"))
    currency = Varchar(length=3, default="RUB")
    promised_on = Date(index=True)
    #: open | kept | broken
    status = Varchar(length=20, default="open", index=True)
    #: The client's open balance in the currency when the promise was made.
    balance_then = Numeric(digits=MONEY, default=Decimal("0"))
    notes = Text(default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    resolved_at = Timestamptz(null=True, default=None)
    version = Integer(default=1)


class CollectionContact(Table, tablename="receivables_contact"):
    """One collection contact with the client (a reminder sent, a call task, a letter, an
    escalation, a promise, a bounced channel): the client card's timeline shows them."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    case_id = ForeignKey(CollectionCase, null=True, on_delete=OnDelete.set_null, index=True)
    #: reminder | call | letter | escalation | promise | promise_kept | promise_broken | bounce |
    #: paused | resumed | closed
    kind = Varchar(length=30)
    channel = Varchar(length=20, default="")
    amount = Numeric(digits=MONEY, null=True, default=None)
    currency = Varchar(length=3, default="")
    detail = Text(default="")
    user_id = Integer(null=True, default=None)
    at = Timestamptz(default=TimestamptzNow(), index=True)


class PartyProfile(Table, tablename="receivables_party"):
    """What collection learnt about a client: its payment reliability (0-100)."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, unique=True)
    reliability = Integer(default=80)
    #: Channels that bounced (fallback to the next preferred one).
    bounced = JSON(default=[])
    #: The client's open service tickets (ids): dunning pauses while there is one.
    open_tickets = JSON(default=[])
    updated_at = Timestamptz(default=TimestamptzNow())


TABLES: list[type[Table]] = [
    Invoice,
    Payment,
    Allocation,
    CollectionCase,
    Promise,
    CollectionContact,
    PartyProfile,
]
