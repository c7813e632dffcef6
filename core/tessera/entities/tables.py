"""Piccolo tables of the kernel.

Conventions: every ForeignKey states ``on_delete``; times are ``Timestamptz`` (UTC); records a
user edits carry ``version`` for optimistic locking and ``custom`` for custom fields; list
fields that are filtered on (kinds, tags) are arrays, rich sub-records (phones, addresses) JSON.
"""

from __future__ import annotations

from decimal import Decimal

from piccolo.columns import (
    JSON,
    Array,
    BigInt,
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


class Team(Table, tablename="team"):
    name = Varchar(length=200, unique=True)
    description = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class CrmUser(Table, tablename="crm_user"):
    email = Varchar(length=254, unique=True)
    name = Varchar(length=200)
    password_hash = Varchar(length=255, default="")
    is_active = Boolean(default=True)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null)
    timezone = Varchar(length=64, default="UTC")
    #: Language of the web UI (``ru``, ``uk``, ``en``); empty: ``Accept-Language`` (tessera.i18n).
    locale = Varchar(length=10, default="")
    failed_logins = Integer(default=0)
    locked_until = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class Role(Table, tablename="role"):
    name = Varchar(length=100, unique=True)
    description = Text(default="")
    #: Permission names; ``*`` grants every permission.
    permissions = Array(base_column=Varchar(length=100))
    #: Record visibility: own, team or all.
    scope = Varchar(length=10, default="own")


class UserRole(Table, tablename="user_role"):
    user_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade)
    role_id = ForeignKey(Role, on_delete=OnDelete.cascade)


class Substitution(Table, tablename="substitution"):
    """While ``starts_at <= now < ends_at`` the substitute sees and works the absent user's
    records and tasks."""

    absent_user_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade)
    substitute_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade)
    starts_at = Timestamptz()
    ends_at = Timestamptz()
    reason = Varchar(length=200, default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class Party(Table, tablename="party"):
    kind = Varchar(length=20, default="organisation")  # organisation | person
    name = Varchar(length=300, index=True)
    #: client, partner, supplier, competitor (a party may be several at once).
    relations = Array(base_column=Varchar(length=20))
    status = Varchar(length=20, default="potential", index=True)  # potential | current | former
    status_changed_at = Timestamptz(default=TimestamptzNow())
    # No single-column indexes: (owner_id, status) and (team_id, status) lead with these
    # columns and serve every lookup by owner or team (lists, the foreign keys' SET NULL);
    # two more B-trees per party were a sixth of an import's SQLite time.
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null)
    tax_id = Varchar(length=50, default="")
    website = Varchar(length=300, default="")
    addresses = JSON(default=[])
    phones = JSON(default=[])
    emails = JSON(default=[])
    tags = Array(base_column=Varchar(length=100))
    #: Space-separated E.164 digits and lower-cased e-mails, for exact lookups and dedup.
    contact_index = Text(default="")
    custom = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class PartyStatusChange(Table, tablename="party_status_change"):
    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    from_status = Varchar(length=20, null=True, default=None)
    to_status = Varchar(length=20)
    changed_at = Timestamptz(default=TimestamptzNow())
    changed_by = Integer(null=True, default=None)
    comment = Text(default="")


class Contact(Table, tablename="contact"):
    """A person at an organisation party."""

    party_id = ForeignKey(Party, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=300)
    position = Varchar(length=200, default="")
    role = Varchar(length=100, default="")  # decision maker, accountant, ...
    phones = JSON(default=[])
    emails = JSON(default=[])
    preferred_channel = Varchar(length=20, default="")
    contact_index = Text(default="")
    custom = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Activity(Table, tablename="activity"):
    """A call, meeting, e-mail, letter, seminar, mailing, claim or note: planned or done."""

    type = Varchar(length=20, index=True)
    status = Varchar(length=20, default="planned")  # planned | done | cancelled
    subject = Varchar(length=500)
    description = Text(default="")
    party_id = ForeignKey(Party, null=True, on_delete=OnDelete.cascade, index=True)
    contact_id = ForeignKey(Contact, null=True, on_delete=OnDelete.set_null)
    owner_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null)
    direction = Varchar(length=10, default="")  # in | out
    starts_at = Timestamptz(index=True)
    duration_minutes = Integer(default=0)
    outcome = Text(default="")
    agreements = Text(default="")
    custom = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class ActivityParticipant(Table, tablename="activity_participant"):
    activity_id = ForeignKey(Activity, on_delete=OnDelete.cascade, index=True)
    user_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.cascade)
    contact_id = ForeignKey(Contact, null=True, on_delete=OnDelete.cascade)


class Task(Table, tablename="task"):
    title = Varchar(length=500)
    description = Text(default="")
    party_id = ForeignKey(Party, null=True, on_delete=OnDelete.cascade, index=True)
    author_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    assignee_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    controller_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null, index=True)
    team_id = ForeignKey(Team, null=True, on_delete=OnDelete.set_null)
    deadline = Timestamptz(null=True, default=None, index=True)
    priority = Varchar(length=10, default="normal")  # low | normal | high | urgent
    status = Varchar(length=20, default="open", index=True)  # open | in_progress | done | cancelled
    result = Text(default="")
    #: Set when the overdue task was escalated to its controller (once per deadline).
    escalated_at = Timestamptz(null=True, default=None)
    completed_at = Timestamptz(null=True, default=None)
    #: When the current assignee accepted the task; NULL while a task someone else gave them
    #: (a hand-off, a workflow stage) waits for their acceptance.
    accepted_at = Timestamptz(null=True, default=None)
    #: Where the task came from (a workflow instance, a plugin record): "workflow:42".
    source = Varchar(length=100, default="")
    custom = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class TaskHandoff(Table, tablename="task_handoff"):
    """One link in a task's chain of executors."""

    task_id = ForeignKey(Task, on_delete=OnDelete.cascade, index=True)
    from_user_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    to_user_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    at = Timestamptz(default=TimestamptzNow())
    comment = Text(default="")


class Note(Table, tablename="note"):
    party_id = ForeignKey(Party, null=True, on_delete=OnDelete.cascade, index=True)
    #: Optional record the note is about, as "entity:id" (activity:5, sales.deal:3).
    subject_ref = Varchar(length=100, default="")
    body = Text()
    author_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    version = Integer(default=1)


class Attachment(Table, tablename="attachment"):
    party_id = ForeignKey(Party, null=True, on_delete=OnDelete.cascade, index=True)
    subject_ref = Varchar(length=100, default="")
    filename = Varchar(length=300)
    content_type = Varchar(length=200, default="application/octet-stream")
    size = Integer(default=0)
    sha256 = Varchar(length=64)
    #: file:// path in the data dir, or an s3:// URL.
    storage_url = Text()
    uploaded_by_id = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())


class AuditLog(Table, tablename="audit_log"):
    """Append-only: who changed what, when, old -> new. User ids are plain integers so the
    log outlives the users it mentions."""

    at = Timestamptz(default=TimestamptzNow(), index=True)
    user_id = Integer(null=True, default=None, index=True)
    action = Varchar(length=20)  # create | update | delete | login | login_failed | export | ...
    entity = Varchar(length=60, index=True)
    entity_id = Integer(null=True, default=None, index=True)
    #: Set on an entry about the records ``entity_id`` .. ``entity_id_last`` of ``entity`` (an
    #: import writes one per contiguous range of the ids it created): the filter by record id
    #: finds it for every record of the range (``audit_visibility.about_record``).
    entity_id_last = Integer(null=True, default=None, index=True)
    changes = JSON(default={})
    detail = Text(default="")


class ApiToken(Table, tablename="api_token"):
    user_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade)
    name = Varchar(length=200)
    #: SHA-256 of the token (tokens are 256-bit random, so a fast hash is enough).
    token_hash = Varchar(length=64, unique=True)
    prefix = Varchar(length=12)
    scopes = Array(base_column=Varchar(length=100))
    expires_at = Timestamptz(null=True, default=None)
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class WebSession(Table, tablename="web_session"):
    session_hash = Varchar(length=64, unique=True)
    user_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade)
    csrf_token = Varchar(length=64)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()


class PasswordReset(Table, tablename="password_reset"):
    """A single-use, expiring password reset token; only its SHA-256 is stored."""

    user_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade)
    token_hash = Varchar(length=64, unique=True)
    #: The administrator who created it; None when the user asked for it.
    created_by = ForeignKey(CrmUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class LoginThrottle(Table, tablename="login_throttle"):
    """Failed sign-ins per key (a hash of client address + login, or of the login alone),
    kept alike whether or not the account exists, so a lockout reveals nothing."""

    key_hash = Varchar(length=64, unique=True)
    failures = Integer(default=0)
    window_started_at = Timestamptz(default=TimestamptzNow())
    locked_until = Timestamptz(null=True, default=None)


class CustomFieldSchema(Table, tablename="custom_field_schema"):
    """Admin-declared custom fields of one entity type (JSON-schema ``properties``)."""

    entity_type = Varchar(length=60, unique=True)
    properties = JSON(default={})
    required = Array(base_column=Varchar(length=100))
    updated_at = Timestamptz(default=TimestamptzNow())
    updated_by = Integer(null=True, default=None)


class Job(Table, tablename="job"):
    name = Varchar(length=150, unique=True)
    plugin = Varchar(length=60, default="")
    schedule = Varchar(length=100)
    enabled = Boolean(default=True)
    next_run_at = Timestamptz(null=True, default=None)
    last_run_at = Timestamptz(null=True, default=None)


class JobRun(Table, tablename="job_run"):
    job_name = Varchar(length=150, index=True)
    node = Varchar(length=200, default="")
    scheduled_for = Timestamptz(null=True, default=None)
    started_at = Timestamptz(default=TimestamptzNow())
    finished_at = Timestamptz(null=True, default=None)
    outcome = Varchar(length=20, default="running")  # running | ok | error | timeout
    error = Text(default="")


class BackgroundJob(Table, tablename="background_job"):
    """A one-off job code enqueued (``tessera.jobs.enqueue``) in the transaction of the change
    that asks for it; claimed once by a worker, retried with back-off, visible through the API."""

    kind = Varchar(length=150, index=True)
    payload = JSON(default={})
    status = Varchar(length=20, default="queued", index=True)  # queued|running|done|failed|cancelled
    #: When it may run next (first run, or after a back-off).
    run_at = Timestamptz(default=TimestamptzNow(), index=True)
    attempts = Integer(default=0)
    max_attempts = Integer(default=5)
    #: Enqueuing the same key again returns the existing job instead of adding one.
    dedup_key = Varchar(length=200, null=True, default=None, unique=True)
    claimed_by = Varchar(length=200, default="")
    lease_until = Timestamptz(null=True, default=None)
    progress = JSON(default={})
    result = JSON(null=True, default=None)
    error = Text(default="")
    created_by = Integer(null=True, default=None, index=True)
    created_at = Timestamptz(default=TimestamptzNow())
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)


class DomainEvent(Table, tablename="domain_event"):
    """Outbox of domain events: written in the same transaction as the change, delivered to
    plugins and the search index after commit, re-delivered by the worker after a crash."""

    name = Varchar(length=100, index=True)
    entity = Varchar(length=60)
    entity_id = Integer(null=True, default=None)
    payload = JSON(default={})
    user_id = Integer(null=True, default=None)
    occurred_at = Timestamptz(default=TimestamptzNow())
    dispatched_at = Timestamptz(null=True, default=None, index=True)
    attempts = Integer(default=0)
    last_error = Text(default="")


class Notification(Table, tablename="notification"):
    """A message in a user's inbox: escalations, hand-offs, deviations."""

    user_id = ForeignKey(CrmUser, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=60)
    title = Varchar(length=500)
    body = Text(default="")
    #: The record it is about, as "entity:id" ("task:12", "workflow_instance:3").
    ref = Varchar(length=100, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    read_at = Timestamptz(null=True, default=None)


class IdempotencyRecord(Table, tablename="idempotency_record"):
    """The first response to a create carrying an ``Idempotency-Key`` header, replayed on retry.
    Unique per (user_id, path, key): an index made by a hand-written migration
    (``tessera_2026_11_26t16_45_00_000000``), as Piccolo columns cannot declare it."""

    key = Varchar(length=200)
    user_id = Integer()
    path = Varchar(length=300)
    status_code = Integer()
    body = Text()
    created_at = Timestamptz(default=TimestamptzNow())


class SavedView(Table, tablename="saved_view"):
    """A list's filters and order saved under a title (``tessera.web.saved_views``): seen by its
    owner, and by the members of ``team_id`` when shared. User and team ids are plain integers
    (migration ``tessera_2026_12_05t18_10_00_000000``); a view of a removed user is not shown."""

    owner_id = Integer(index=True)
    team_id = Integer(null=True, default=None, index=True)
    #: The list it belongs to (``parties``, ``tasks``, ``sales.deals`` ...).
    list_name = Varchar(length=60, index=True)
    title = Varchar(length=200)
    #: The list page's query string (filters and ``order``), checked like the page's.
    query = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class SavedReport(Table, tablename="saved_report"):
    """A report-builder definition saved by a user (``tessera.reports.builder``), seen by its
    owner and shared with roles and teams. Ids are plain integers (migration
    ``tessera_2026_12_06t01_00_00_000000``)."""

    owner_id = Integer(index=True)
    name = Varchar(length=200)
    #: The builder definition (entity, filters, group-by, measures) as JSON text.
    definition = Text(default="{}")
    #: Role names and team ids it is shared with (JSON lists).
    shared_roles = Text(default="[]")
    shared_teams = Text(default="[]")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class ReportSchedule(Table, tablename="report_schedule"):
    """A saved report sent on a cron schedule (``tessera.reports.schedules``) to users and the
    members of roles, each with their own visibility (migration ``2026_12_06t01_10``)."""

    saved_report_id = Integer(index=True)
    owner_id = Integer(index=True)
    cron = Varchar(length=100)
    format = Varchar(length=10, default="xlsx")
    #: User ids and role names (JSON lists).
    recipient_users = Text(default="[]")
    recipient_roles = Text(default="[]")
    active = Boolean(default=True)
    next_run_at = Timestamptz(null=True, default=None, index=True)
    last_run_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class ReportDelivery(Table, tablename="report_delivery"):
    """One recipient's copy of a scheduled report: queued (with its e-mail job) or skipped."""

    schedule_id = Integer(index=True)
    user_id = Integer(null=True, default=None)
    email = Varchar(length=254, default="")
    rows = Integer(default=0)
    #: queued | skipped
    status = Varchar(length=20, default="queued")
    job_id = Integer(null=True, default=None)
    detail = Text(default="")
    at = Timestamptz(default=TimestamptzNow(), index=True)


class Kpi(Table, tablename="kpi"):
    """An indicator defined as a report measure (``tessera.reports.kpis``): ``report_key`` and
    ``measure`` of a registered report, ``params`` fixed filters (JSON), and the report's
    dimensions naming a person and a team (migration ``2026_12_06t01_20``)."""

    name = Varchar(length=200)
    report_key = Varchar(length=100)
    measure = Varchar(length=100)
    params = Text(default="{}")
    person_dimension = Varchar(length=100, default="owner")
    team_dimension = Varchar(length=100, default="team")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class KpiTarget(Table, tablename="kpi_target"):
    """The plan of a KPI for a person, a team or the company (both empty) in a month."""

    kpi_id = Integer(index=True)
    user_id = Integer(null=True, default=None, index=True)
    team_id = Integer(null=True, default=None, index=True)
    #: ``YYYY-MM``
    period = Varchar(length=7, index=True)
    target = Numeric(digits=(18, 2), default=Decimal(0))


class Dashboard(Table, tablename="dashboard"):
    """A dashboard of report, saved-report and KPI tiles (``tessera.reports.dashboards``), seen
    by its owner and shared with roles and teams (migration ``2026_12_06t01_30``)."""

    owner_id = Integer(index=True)
    name = Varchar(length=200)
    #: [{"kind": "report", "key", "params"} | {"kind": "saved", "id"} | {"kind": "kpi", "id"}]
    tiles = Text(default="[]")
    shared_roles = Text(default="[]")
    shared_teams = Text(default="[]")
    created_at = Timestamptz(default=TimestamptzNow())


class ActivitySummary(Table, tablename="activity_summary"):
    """Activities counted per UTC day, owner, team, type and status (``tessera.reports.summary``,
    migration ``2026_12_06t03_00``): kept exact by database triggers on ``activity`` (every
    insert, change and delete, cascades included, in the writing transaction) and rebuilt from
    the activities by the nightly job ``reports.reconcile_summary``. Reports grouped by what it
    holds read a few rows per owner and day instead of every activity. A missing owner or
    team is 0 (so the unique key matches); ``day`` is the day's midnight UTC."""

    day = Timestamptz()
    owner_id = Integer(default=0)
    team_id = Integer(default=0)
    type = Varchar(length=20)
    status = Varchar(length=20)
    n = BigInt(default=0)
    minutes = BigInt(default=0)


KERNEL_TABLES: list[type[Table]] = [
    Team,
    CrmUser,
    Role,
    UserRole,
    Substitution,
    Party,
    PartyStatusChange,
    Contact,
    Activity,
    ActivityParticipant,
    Task,
    TaskHandoff,
    Note,
    Attachment,
    AuditLog,
    ApiToken,
    WebSession,
    LoginThrottle,
    PasswordReset,
    CustomFieldSchema,
    Job,
    JobRun,
    DomainEvent,
    Notification,
    BackgroundJob,
    IdempotencyRecord,
    SavedView,
    SavedReport,
    ReportSchedule,
    ReportDelivery,
    Kpi,
    KpiTarget,
    Dashboard,
    ActivitySummary,
]


class WebhookSubscription(Table, tablename="webhook_subscription"):
    """An outbound webhook (``tessera.webhooks``): events of the listed types are POSTed, signed
    with ``secret`` (HMAC-SHA256), to ``url``."""

    url = Varchar(length=2000)
    #: Event names (``party.created``), prefixes (``party.*``) or ``*``.
    event_types = JSON(default=[])
    #: Signing key; needed in clear to sign, returned only once, at creation.
    secret = Varchar(length=200, secret=True)
    active = Boolean(default=True)
    description = Text(default="")
    created_by = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class WebhookDelivery(Table, tablename="webhook_delivery"):
    """One event for one subscription: the delivery log, updated on every attempt."""

    subscription_id = Integer(index=True)
    #: ``"<subscription id>:<event id>"``: one delivery (and one job) per pair.
    key = Varchar(length=200, unique=True)
    event_id = Integer(index=True)
    event_type = Varchar(length=100)
    status = Varchar(length=20, default="pending")  # pending|retrying|delivered|failed
    attempts = Integer(default=0)
    last_status_code = Integer(null=True, default=None)
    last_error = Text(default="")
    job_id = Integer(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    last_attempt_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)


class MailMailbox(Table, tablename="mail_mailbox"):
    """Poll state of one configured IMAP mailbox (``tessera.mail_in``): the UID checkpoint
    (valid while the folder's UIDVALIDITY is unchanged) and the last error, with back-off."""

    name = Varchar(length=100, unique=True)
    uidvalidity = BigInt(default=0)
    #: Highest UID imported (or quarantined): the next poll fetches UIDs above it only.
    last_uid = BigInt(default=0)
    last_poll_at = Timestamptz(null=True, default=None)
    last_success_at = Timestamptz(null=True, default=None)
    #: A readable reason of the last failed poll ("login refused ..."); empty after a good one.
    last_error = Text(default="")
    #: Failed polls in a row; the next poll waits longer each time (capped at an hour).
    failures = Integer(default=0)
    next_poll_at = Timestamptz(null=True, default=None)
    #: A UID whose fetch failed, and how many polls in a row it did: at the third it is
    #: quarantined unfetched and the mailbox moves on.
    stuck_uid = BigInt(default=0)
    stuck_failures = Integer(default=0)


class MailMessage(Table, tablename="mail_message"):
    """One incoming message, stored once whatever the number of polls and nodes: ``message_id``
    is unique (a second worker's insert of the same message does nothing)."""

    #: The Message-ID without ``<>`` (``sha256:<hex>`` of the raw message when it has none).
    message_id = Varchar(length=500, unique=True)
    mailbox = Varchar(length=100, index=True)
    uid = BigInt(default=0)
    uidvalidity = BigInt(default=0)
    #: The Message-ID of the thread's first message (References' first, else In-Reply-To,
    #: else a known message's thread, else its own).
    thread_id = Varchar(length=500, index=True)
    in_reply_to = Varchar(length=500, default="")
    reference_ids = JSON(default=[])
    from_address = Varchar(length=320, index=True, default="")
    from_name = Varchar(length=300, default="")
    to_addresses = JSON(default=[])
    cc_addresses = JSON(default=[])
    subject = Varchar(length=500, default="")
    body_text = Text(default="")
    #: The HTML part after sanitising (nh3): no scripts, styles or event handlers.
    body_html = Text(default="")
    sent_at = Timestamptz(null=True, default=None)
    received_at = Timestamptz(default=TimestamptzNow())
    #: matched | unknown (sender in triage) | created | linked | ignored | failed (quarantine)
    status = Varchar(length=20, default="matched", index=True)
    party_ids = JSON(default=[])
    contact_ids = JSON(default=[])
    activity_ids = JSON(default=[])
    #: [{filename, content_type, size, sha256, error}] of the message's attachments.
    attachments = JSON(default=[])
    #: The raw message, content-addressed under ``data_dir/attachments/mail``.
    raw_sha256 = Varchar(length=64, default="")
    raw_size = Integer(default=0)
    error = Text(default="")
    triaged_by = Integer(null=True, default=None)
    triaged_at = Timestamptz(null=True, default=None)


class TelephonyCall(Table, tablename="telephony_call"):
    """One phone call seen by the PBX link (tessera.telephony): from the first ring to its end.
    ``call_id`` (Asterisk's Linkedid, a cloud PBX's call id) is unique, so an event seen twice
    (a reconnection, a retried webhook) changes nothing."""

    call_id = Varchar(length=200, unique=True)
    #: in | out
    direction = Varchar(length=10, default="in")
    #: The customer's number as the PBX gave it, and in E.164 when it parses.
    number = Varchar(length=100, default="")
    number_e164 = Varchar(length=30, default="", index=True)
    #: The user's extension that rang or dialled.
    extension = Varchar(length=50, default="")
    user_id = Integer(null=True, default=None)
    party_id = Integer(null=True, default=None)
    contact_id = Integer(null=True, default=None)
    #: ringing | answered | completed | missed
    status = Varchar(length=20, default="ringing", index=True)
    started_at = Timestamptz(default=TimestamptzNow())
    answered_at = Timestamptz(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    recording_url = Varchar(length=2000, default="")
    #: ami | webhook | reconciled (ended while the AMI link was down)
    source = Varchar(length=20, default="ami")
    activity_id = Integer(null=True, default=None)
    task_id = Integer(null=True, default=None)


class TelephonyPopup(Table, tablename="telephony_popup"):
    """An incoming-call pop-up waiting for a user's event stream (``GET /api/telephony/stream``):
    written by whichever process saw the ring, read by the server that holds the user's page."""

    user_id = Integer(index=True)
    call_id = Varchar(length=200)
    payload = JSON(default={})
    created_at = Timestamptz(default=TimestamptzNow())


class TelephonyExtension(Table, tablename="telephony_extension"):
    """A user's phone extension on the PBX: whose page a ring pops up on, whose phone
    click-to-call rings first."""

    user_id = Integer(unique=True)
    extension = Varchar(length=50, unique=True)
    updated_at = Timestamptz(default=TimestamptzNow())


class ExternalRef(Table, tablename="external_ref"):
    """A record's id in another system (the accounting system's counterparty code): exchanges
    find the record again by it, so importing the same file twice changes nothing."""

    #: The other system (``1c``, ``accounting``).
    system = Varchar(length=50)
    entity = Varchar(length=50, default="party")
    external_id = Varchar(length=200)
    entity_id = Integer(index=True)
    created_at = Timestamptz(default=TimestamptzNow())
