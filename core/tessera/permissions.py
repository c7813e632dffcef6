"""Roles -> permissions, and record visibility (own, team, all; substitutes see what the
absent user sees). Visibility is always expressed as a SQL ``WHERE`` built here, so lists,
counts, searches, reports and exports apply the very same rule inside the query."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pluggy
from piccolo.columns import Column
from piccolo.columns.combination import Or, Where, WhereRaw

from tessera import clock
from tessera.cache import ReadCache
from tessera.entities.tables import CrmUser, Role, Substitution, UserRole
from tessera.errors import NotFound, PermissionDenied
from tessera.plugins import call_each

SCOPES = ("own", "team", "all")

KERNEL_PERMISSIONS: dict[str, str] = {
    "party.read": "Read parties (clients, partners, suppliers) and their contacts",
    "party.write": "Create and change parties and contacts",
    "party.delete": "Delete parties and contacts",
    "party.export": "Export parties to a file",
    "activity.read": "Read activities (calls, meetings, letters ...)",
    "activity.write": "Log and plan activities",
    "activity.delete": "Delete activities",
    "task.read": "Read tasks",
    "task.write": "Create, hand off and complete tasks",
    "task.delete": "Delete tasks",
    "note.read": "Read notes and attachments",
    "note.write": "Write notes and upload attachments",
    "search.use": "Use full-text search",
    "user.manage": "Manage users, teams, roles and substitutions",
    "customfield.manage": "Declare custom fields",
    "audit.read": "Read the audit log",
    "job.manage": "See and switch scheduled jobs",
    "webhook.manage": "Create, change and delete outbound webhooks and read their delivery log",
    "mail.triage": "Sort incoming e-mail from unknown senders: create a party, link to one, ignore",
    "mail.manage": "See the IMAP mailboxes' poll state and errors, and quarantined messages",
    "accounting.exchange": "Exchange counterparties and documents with the accounting system",
    "workflow.read": "Read process instances and deviations",
    "workflow.manage": "Create process templates; suspend, resume, stop and reassign instances",
    "report.export": "Export report results to CSV or XLSX files",
    "report.kpi.manage": "Define KPIs and set their targets for people, teams and the company",
}

DEFAULT_ROLES: list[dict[str, Any]] = [
    {"name": "admin", "description": "Everything, every record", "permissions": ["*"], "scope": "all"},
    {
        "name": "head",
        "description": "Head of a sales team: the team's records, exports",
        "permissions": [
            "party.*",
            "activity.*",
            "task.*",
            "note.*",
            "search.use",
            "workflow.read",
            "audit.read",
            "report.export",
            "sales.*",
            "service.*",
            "marketing.*",
            "receivables.*",
            "knowledge_base.*",
        ],
        "scope": "team",
    },
    {
        "name": "manager",
        "description": "Account manager: own clients only, no export",
        "permissions": [
            "party.read",
            "party.write",
            "activity.read",
            "activity.write",
            "task.read",
            "task.write",
            "note.read",
            "note.write",
            "search.use",
            "workflow.read",
            "sales.deal.read",
            "sales.deal.write",
            "service.ticket.read",
            "service.ticket.write",
            "knowledge_base.read",
            # Marketing surveys: a manager fills them for clients on a call and sends links.
            "marketing.survey.read",
            "marketing.survey.answer",
            # Web-form leads are handed to managers: they read their leads (the inbox), take a
            # team list's lead, hand one on and move its status.
            "marketing.lead.read",
            "marketing.lead.write",
        ],
        "scope": "own",
    },
    {
        # Scope "all" shows every audit entry; without record permissions nothing else is read.
        "name": "auditor",
        "description": "Reads the whole audit log, and no record",
        "permissions": ["audit.read"],
        "scope": "all",
    },
]


def all_permissions(pm: pluggy.PluginManager) -> dict[str, str]:
    merged = dict(KERNEL_PERMISSIONS)
    for _plugin, declared in call_each(pm, "tessera_permissions"):
        merged.update(declared or {})
    return merged


def grants(granted: frozenset[str] | set[str], permission: str) -> bool:
    """``*`` grants everything; ``sales.*`` grants every ``sales.`` permission."""
    if "*" in granted or permission in granted:
        return True
    parts = permission.split(".")
    return any(".".join(parts[:i]) + ".*" in granted for i in range(1, len(parts)))


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may see."""

    user_id: int
    name: str
    email: str
    permissions: frozenset[str]
    scope: str
    #: Owners whose records are visible; ``None`` means every record.
    user_ids: frozenset[int] | None
    team_ids: frozenset[int] = field(default_factory=frozenset)
    #: Absent users this principal substitutes right now.
    acting_for: frozenset[int] = field(default_factory=frozenset)
    team_id: int | None = None
    #: Scopes of the API token used, or ``None`` for a full session.
    token_scopes: frozenset[str] | None = None
    csrf_token: str | None = None

    @property
    def sees_all(self) -> bool:
        return self.user_ids is None

    def can(self, permission: str) -> bool:
        if not grants(self.permissions, permission):
            return False
        return self.token_scopes is None or grants(self.token_scopes, permission)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise PermissionDenied(f"Permission {permission!r} is required", missing_permission=permission)

    def owner_where(self, owner: Column, team: Column | None = None) -> Where | Or | WhereRaw | None:
        """Condition "record owned by someone I may see (or in a team I see)"; None = all."""
        if self.user_ids is None:
            return None
        condition: Any = owner.is_in(list(self.user_ids)) if self.user_ids else WhereRaw("1 = 0")
        if team is not None and self.team_ids:
            condition = condition | team.is_in(list(self.team_ids))
        return condition

    def member_where(
        self, record_id: Column, link_record: Column, link_user: Column
    ) -> Where | WhereRaw | None:
        """Condition "a user whose records I see takes part in the record" through a link table
        (``link_record`` -> the record, ``link_user`` -> the user), as a sub-select; None = all.
        Meeting participants read the activity they take part in, whoever owns it."""
        if self.user_ids is None:
            return None
        if not self.user_ids:
            return WhereRaw("1 = 0")
        link_table = link_record._meta.table
        members = link_table.select(link_record).where(link_user.is_in(sorted(self.user_ids)))
        return record_id.is_in(members)

    def shared_party_sql(self) -> tuple[str, list[int]] | None:
        """Implicit sharing (a hand-off carries access): the SQL of a sub-select of the ids of
        the parties on which a user whose records I see holds an open task (as its assignee or
        controller) or is the responsible or controller of a running or suspended process
        instance, and its arguments; None = I see every party. The access lasts while the
        task or the stage is open, and reads the party (and its contacts) only."""
        if self.user_ids is None:
            return None
        users = sorted(self.user_ids) or [-1]
        marks = ", ".join("{}" for _ in users)
        sql = (
            f"SELECT vis_t.party_id FROM task vis_t WHERE vis_t.party_id IS NOT NULL"
            f" AND vis_t.status IN ('open', 'in_progress')"
            f" AND (vis_t.assignee_id IN ({marks}) OR vis_t.controller_id IN ({marks}))"
            f" UNION SELECT vis_w.party_id FROM workflow_instance vis_w WHERE vis_w.party_id IS NOT NULL"
            f" AND vis_w.status IN ('running', 'suspended')"
            f" AND (vis_w.responsible_id IN ({marks}) OR vis_w.controller_id IN ({marks}))"
        )
        return sql, users * 4

    def shared_party_where(self, party_id: Column) -> WhereRaw | None:
        """Condition "``party_id`` names a party shared with me" (``shared_party_sql``); one
        sub-select, so lists, counts, search and exports stay one query."""
        shared = self.shared_party_sql()
        if shared is None:
            return None
        from tessera import db

        sql, args = shared
        column = f'"{party_id._meta.table._meta.tablename}"."{party_id._meta.db_column_name}"'
        if db.is_postgres():
            # An array computed once (an InitPlan) is an index condition, so PostgreSQL still
            # ORs it with the owner index (BitmapOr); ``IN (sub-select)`` inside an OR is a
            # filter on every row instead: 2.5 s against 40 ms at 1M parties.
            return WhereRaw(f"{column} = ANY(ARRAY({sql}))", *args)
        # SQLite plans ``IN (sub-select)`` inside an OR as a MULTI-INDEX OR over both indexes.
        return WhereRaw(f"{column} IN ({sql})", *args)

    def check_visible_owner(self, owner_id: int | None, team_id: int | None = None) -> bool:
        if self.user_ids is None:
            return True
        return (owner_id in self.user_ids) or (team_id is not None and team_id in self.team_ids)


def widest(scopes: list[str]) -> str:
    return max(scopes, key=SCOPES.index) if scopes else "own"


async def _roles_of(user_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = await UserRole.select(
        UserRole.user_id, UserRole.role_id.name, UserRole.role_id.permissions, UserRole.role_id.scope
    ).where(UserRole.user_id.is_in(user_ids))
    out: dict[int, list[dict[str, Any]]] = {uid: [] for uid in user_ids}
    for row in rows:
        out[row["user_id"]].append(
            {
                "name": row["role_id.name"],
                "permissions": row["role_id.permissions"] or [],
                "scope": row["role_id.scope"],
            }
        )
    return out


async def _team_members(team_ids: set[int]) -> set[int]:
    if not team_ids:
        return set()
    rows = await CrmUser.select(CrmUser.id).where(CrmUser.team_id.is_in(list(team_ids)))
    return {r["id"] for r in rows}


async def build_principal(
    user_id: int, token_scopes: frozenset[str] | None = None, csrf_token: str | None = None
) -> Principal:
    principal, _ = await _build_principal(user_id)
    return replace(principal, token_scopes=token_scopes, csrf_token=csrf_token)


#: Seconds a request may use a principal built by an earlier request of the same user. Building
#: one costs four queries, more than a typical API call's own work (bench/run.py); a change made
#: through the API in this process (users, teams, roles, substitutions) is seen at once
#: (``forget_principals``), one made by another process within this many seconds.
PRINCIPAL_TTL = 2.0


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    built_at: datetime  # the application clock (tests move it)
    #: When a substitution of this user starts or ends: the principal changes then.
    changes_at: datetime | None


_principals: ReadCache[int, _Cached] = ReadCache(PRINCIPAL_TTL)


#: ``{"is_active", "team_id"}`` of users read lately, kept as long as principals are: the
#: workflow engine and the task service ask about the same few people at every stage and
#: task write (one query each, bench/workflow.py). ``forget_principals`` clears it.
recent_users: ReadCache[int, dict[str, Any]] = ReadCache(PRINCIPAL_TTL)


def forget_principals() -> None:
    """Drop every cached principal (a user, team, role or substitution changed)."""
    _principals.clear()
    recent_users.clear()


async def cached_principal(
    user_id: int, token_scopes: frozenset[str] | None = None, csrf_token: str | None = None
) -> Principal:
    """``build_principal`` for a request: reuses this user's principal for ``PRINCIPAL_TTL``
    seconds unless access data changed in this process or a substitution began or ended."""
    now = clock.now()
    hit = _principals.get(user_id)
    if hit is None or now < hit.built_at or (hit.changes_at is not None and now >= hit.changes_at):
        principal, changes_at = await _build_principal(user_id)
        hit = _principals.put(user_id, _Cached(principal, now, changes_at))
    return replace(hit.principal, token_scopes=token_scopes, csrf_token=csrf_token)


async def _build_principal(user_id: int) -> tuple[Principal, datetime | None]:
    """The principal, and when it next changes by itself (a substitution starts or ends)."""
    user = await CrmUser.select().where(CrmUser.id == user_id).first()
    if user is None or not user["is_active"]:
        raise NotFound("User not found or inactive")
    now = clock.now()
    subs = await Substitution.select(
        Substitution.absent_user_id, Substitution.starts_at, Substitution.ends_at
    ).where(Substitution.substitute_id == user_id, Substitution.ends_at > now)
    acting_for = {s["absent_user_id"] for s in subs if s["starts_at"] <= now}
    boundaries = [s["starts_at"] if s["starts_at"] > now else s["ends_at"] for s in subs]
    roles = await _roles_of([user_id, *acting_for])
    permissions: set[str] = set()
    for role in roles[user_id]:
        permissions.update(role["permissions"])
    scope = widest([r["scope"] for r in roles[user_id]])

    # Visibility: the union of what the user and every absent user they stand in for see.
    people = [(user_id, user["team_id"], scope)]
    if acting_for:
        absent = await CrmUser.select(CrmUser.id, CrmUser.team_id).where(CrmUser.id.is_in(list(acting_for)))
        for a in absent:
            people.append((a["id"], a["team_id"], widest([r["scope"] for r in roles[a["id"]]])))
    if any(p_scope == "all" for _, _, p_scope in people):
        user_ids: frozenset[int] | None = None
        team_ids: frozenset[int] = frozenset()
    else:
        teams = {team for _, team, p_scope in people if p_scope == "team" and team is not None}
        users = {uid for uid, _, _ in people} | await _team_members(teams)
        user_ids, team_ids = frozenset(users), frozenset(teams)
    return Principal(
        user_id=user_id,
        name=user["name"],
        email=user["email"],
        permissions=frozenset(permissions),
        scope=scope,
        user_ids=user_ids,
        team_ids=team_ids,
        acting_for=frozenset(acting_for),
        team_id=user["team_id"],
    ), min(boundaries, default=None)


async def ensure_default_roles() -> None:
    """Create the default roles when missing (idempotent; never overwrites an admin's edits)."""
    existing = {r["name"] for r in await Role.select(Role.name)}
    for role in DEFAULT_ROLES:
        if role["name"] not in existing:
            await Role.insert(Role(**role))
