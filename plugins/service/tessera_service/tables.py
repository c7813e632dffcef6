"""Piccolo tables of the service plugin (all prefixed ``service_``).

A ticket keeps its SLA state on its own row (due times, pause bookkeeping, when it was first
answered, resolved, warned and breached, how far it escalated), so the scheduled scan is one
indexed query over open tickets and every warning/escalation is claimed by a conditional
``UPDATE`` (once, even with two workers).
"""

from __future__ import annotations

from decimal import Decimal

from piccolo.columns import (
    JSON,
    Boolean,
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


class Queue(Table, tablename="service_queue"):
    """A ticket queue: worked by a team, led by a lead (first escalation level)."""

    name = Varchar(length=200, unique=True)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null, index=True)
    lead_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    #: Second escalation level; when empty, the head of the lead's team.
    manager_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    #: Business calendar (``tessera.workflow.business_time.BusinessCalendar.from_json``).
    calendar = JSON(default={})
    #: round_robin | least_loaded
    assignment = Varchar(length=20, default="round_robin")
    #: Last user given a ticket by round-robin.
    last_assignee_id = Integer(null=True, default=None)
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class SlaPolicy(Table, tablename="service_sla_policy"):
    """Targets in business hours for tickets of a priority (and category, "" = any)."""

    name = Varchar(length=200)
    #: p1 | p2 | p3 | p4, "" = any
    priority = Varchar(length=10, default="")
    category = Varchar(length=100, default="")
    #: The client's ABC class (``custom.abc_class``, kept by the marketing plugin): A | B | C,
    #: "" = any client. Lets key clients get faster targets without an agreement each.
    client_class = Varchar(length=1, default="")
    first_response_hours = Numeric(digits=(10, 2))
    resolution_hours = Numeric(digits=(10, 2))
    #: Share of the target at which the assignee is warned (0.8 = 80 %).
    warn_share = Numeric(digits=(4, 3), default=Decimal("0.8"))
    #: The policy for tickets of clients without a valid agreement.
    is_default = Boolean(default=False)
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Agreement(Table, tablename="service_agreement"):
    """A client's entitlement to an SLA policy from ``valid_from`` until ``valid_until``."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    policy_id = ForeignKey(SlaPolicy, on_delete=OnDelete.restrict)
    name = Varchar(length=200, default="")
    valid_from = Timestamptz()
    valid_until = Timestamptz(null=True, default=None)
    hours_included = Numeric(digits=(10, 2), null=True, default=None)
    #: The client's own calendar (their holidays); empty = the queue's.
    calendar = JSON(default={})
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Ticket(Table, tablename="service_ticket"):
    number = Varchar(length=30, default="", index=True)
    party_id = ForeignKey(Party, on_delete=OnDelete.restrict, index=True)
    contact_id = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)
    #: phone | email | web | chat | in_person
    channel = Varchar(length=20, default="web")
    #: request | incident | claim (and any category a company uses)
    category = Varchar(length=100, default="request", index=True)
    #: p1 (urgent) ... p4 (low)
    priority = Varchar(length=10, default="p3", index=True)
    queue_id = ForeignKey(Queue, null=True, on_delete=OnDelete.set_null, index=True)
    assignee_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null, index=True)
    subject = Varchar(length=300)
    description = Text(default="")
    #: new | in_progress | waiting | resolved | closed
    status = Varchar(length=20, default="new", index=True)
    related_entity = Varchar(length=60, default="")
    related_id = Integer(null=True, default=None)
    #: Message-ID of the e-mail that opened it (dedup of inbound mail).
    message_id = Varchar(length=300, default="", index=True)
    policy_id = ForeignKey(SlaPolicy, null=True, on_delete=OnDelete.set_null)
    agreement_id = ForeignKey(Agreement, null=True, on_delete=OnDelete.set_null)
    first_response_due = Timestamptz(null=True, default=None)
    resolution_due = Timestamptz(null=True, default=None, index=True)
    paused_since = Timestamptz(null=True, default=None)
    #: Business seconds spent paused (waiting on the client).
    paused_total = Integer(default=0)
    first_responded_at = Timestamptz(null=True, default=None)
    resolved_at = Timestamptz(null=True, default=None)
    closed_at = Timestamptz(null=True, default=None)
    #: When the assignee is warned (``warn_share`` of the pending target); shifted by pauses.
    warn_due = Timestamptz(null=True, default=None)
    warned_at = Timestamptz(null=True, default=None)
    breached_at = Timestamptz(null=True, default=None)
    #: 0 none, 1 queue lead, 2 the lead's manager
    escalation_level = Integer(default=0)
    #: When a breached ticket still open goes up to the lead's manager.
    next_escalation_at = Timestamptz(null=True, default=None)
    reopened = Integer(default=0)
    #: The ticket's run of the life-cycle process (``workflow_instance.id``; a reopened closed
    #: ticket gets a new run). A plain integer: the kernel's table is not the plugin's to cascade.
    process_id = Integer(null=True, default=None)
    custom = JSON(default={})
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class TicketMessage(Table, tablename="service_ticket_message"):
    """A reply to the client, the client's message, or an internal note."""

    ticket_id = ForeignKey(Ticket, on_delete=OnDelete.cascade, index=True)
    author_user_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    author_contact_id = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)
    #: reply (to the client) | client (from the client) | note (internal) | event (escalation, hand-off)
    kind = Varchar(length=10, default="reply")
    body = Text()
    message_id = Varchar(length=300, default="", index=True)
    at = Timestamptz(default=TimestamptzNow())


class Csat(Table, tablename="service_csat"):
    """The satisfaction survey of a closed ticket: a one-time, expiring link."""

    ticket_id = ForeignKey(Ticket, on_delete=OnDelete.cascade, index=True)
    party_id = Integer(null=True, default=None, index=True)
    token_hash = Varchar(length=64, unique=True)
    expires_at = Timestamptz()
    score = Integer(null=True, default=None)
    comment = Text(default="")
    answered_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


TABLES: list[type[Table]] = [Queue, SlaPolicy, Agreement, Ticket, TicketMessage, Csat]
