"""Users, teams, roles and substitutions (absences): managed by holders of ``user.manage``;
every signed-in user may read names of users and teams (needed to assign work)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from tessera import auth
from tessera.entities import service
from tessera.entities.dto import Id, partial
from tessera.entities.tables import CrmUser, Role, Substitution, Team, UserRole
from tessera.errors import ValidationFailed
from tessera.permissions import SCOPES, Principal

Email = Annotated[str, Meta(min_length=3, max_length=254)]


class UserIn(Struct, kw_only=True, forbid_unknown_fields=True):
    email: Email
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    password: Annotated[str, Meta(min_length=8, max_length=200)] | None = None
    team_id: Id | None = None
    roles: list[str] = msgspec.field(default_factory=lambda: ["manager"])
    is_active: bool = True
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    #: Language of the web UI; empty: the browser's ``Accept-Language`` (docs/i18n.md).
    locale: Literal["", "ru", "uk", "en"] = ""


#: A PATCH that sets ``password`` ends all the user's web sessions; ``revoke_tokens: true``
#: revokes their API tokens in the same call (default: tokens keep working).
UserPatch = msgspec.defstruct(
    "UserPatch",
    [("revoke_tokens", bool | msgspec.UnsetType, msgspec.UNSET)],
    bases=(partial(UserIn, "UserPatchFields"),),
    kw_only=True,
    forbid_unknown_fields=True,
    module=__name__,
)


class UserOut(Struct, kw_only=True):
    id: int
    email: str
    name: str
    team_id: int | None
    roles: list[str]
    is_active: bool
    timezone: str
    locale: str = ""
    created_at: datetime


class TeamIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    description: str = ""


TeamPatch = partial(TeamIn, "TeamPatch")


class TeamOut(Struct, kw_only=True):
    id: int
    name: str
    description: str
    created_at: datetime


class RoleIn(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    permissions: list[str]
    scope: Literal["own", "team", "all"] = "own"
    description: str = ""


RolePatch = partial(RoleIn, "RolePatch")


class RoleOut(Struct, kw_only=True):
    id: int
    name: str
    permissions: list[str]
    scope: str
    description: str


class SubstitutionIn(Struct, kw_only=True, forbid_unknown_fields=True):
    absent_user_id: Id
    substitute_id: Id
    starts_at: datetime
    ends_at: datetime
    reason: Annotated[str, Meta(max_length=200)] = ""


SubstitutionPatch = partial(SubstitutionIn, "SubstitutionPatch")


class SubstitutionOut(Struct, kw_only=True):
    id: int
    absent_user_id: int
    substitute_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: int | None
    created_at: datetime


def everyone(principal: Principal) -> Any:
    return None


async def _role_ids(names: list[str]) -> list[int]:
    rows = await Role.select(Role.id, Role.name).where(Role.name.is_in(names)) if names else []
    found = {r["name"]: r["id"] for r in rows}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationFailed.field("roles", f"unknown roles: {', '.join(missing)}")
    return [found[n] for n in names]


async def prepare_user(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "email" in values:
        from tessera.entities.channels import normalise_email

        try:
            values["email"] = normalise_email(values["email"])
        except ValueError as exc:
            raise ValidationFailed.field("email", str(exc)) from exc
        clash = await CrmUser.select(CrmUser.id).where(CrmUser.email == values["email"]).first()
        if clash and (existing is None or clash["id"] != existing["id"]):
            raise ValidationFailed.field("email", "another user has this e-mail")
    if "timezone" in values:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationFailed.field("timezone", "is not an IANA time zone (e.g. Europe/Moscow)") from exc
    password = values.pop("password", None)
    revoke_tokens = bool(values.pop("revoke_tokens", False))
    if password:
        values["password_hash"] = auth.hash_password(password)
        if existing is not None:  # a new password ends the sessions (after_user_write)
            values["_password_changed"] = {"revoke_tokens": revoke_tokens}
    if values.get("team_id") is not None and not await Team.exists().where(Team.id == values["team_id"]):
        raise ValidationFailed.field("team_id", f"team {values['team_id']} does not exist")
    if "roles" in values:
        values["_role_ids"] = await _role_ids(values.pop("roles"))
    return values


async def after_user_write(
    principal: Principal, row: dict[str, Any], existing: dict[str, Any] | None, extras: dict[str, Any]
) -> None:
    if "_password_changed" in extras:
        await auth.password_changed(row["id"], revoke_tokens=extras["_password_changed"]["revoke_tokens"])
    if "_role_ids" in extras:
        await UserRole.delete().where(UserRole.user_id == row["id"])
        if extras["_role_ids"]:
            await UserRole.insert(*[UserRole(user_id=row["id"], role_id=r) for r in extras["_role_ids"]])


async def with_roles(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    links = (
        await UserRole.select(UserRole.user_id, UserRole.role_id.name).where(UserRole.user_id.is_in(ids))
        if ids
        else []
    )
    by_user: dict[int, list[str]] = {i: [] for i in ids}
    for link in links:
        by_user[link["user_id"]].append(link["role_id.name"])
    for r in rows:
        r["roles"] = sorted(by_user[r["id"]])
    return rows


async def prepare_role(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    from tessera.permissions import all_permissions

    if "permissions" in values:
        known = all_permissions(service.plugin_manager())
        # What the role already grants stays acceptable: the default roles name the permissions
        # of first-party plugins a deployment may not have enabled (yet).
        kept = set(existing["permissions"] or []) if existing else set()
        bad = [
            p
            for p in values["permissions"]
            if p != "*"
            and p not in kept
            and p not in known
            and not (p.endswith(".*") and any(k.startswith(p[:-1]) for k in known))
        ]
        if bad:
            raise ValidationFailed.field("permissions", f"unknown permissions: {', '.join(bad)}")
    if "scope" in values and values["scope"] not in SCOPES:
        raise ValidationFailed.field("scope", f"must be one of {', '.join(SCOPES)}")
    if "name" in values:
        clash = await Role.select(Role.id).where(Role.name == values["name"]).first()
        if clash and (existing is None or clash["id"] != existing["id"]):
            raise ValidationFailed.field("name", "another role has this name")
    return values


async def prepare_team(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    if "name" in values:
        clash = await Team.select(Team.id).where(Team.name == values["name"]).first()
        if clash and (existing is None or clash["id"] != existing["id"]):
            raise ValidationFailed.field("name", "another team has this name")
    return values


async def prepare_substitution(
    principal: Principal, values: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    merged = {**(existing or {}), **values}
    for field in ("starts_at", "ends_at"):
        if field in values and values[field].tzinfo is None:
            raise ValidationFailed.field(field, "must carry a time zone")
    if merged["ends_at"] <= merged["starts_at"]:
        raise ValidationFailed.field("ends_at", "must be after starts_at")
    if merged["absent_user_id"] == merged["substitute_id"]:
        raise ValidationFailed.field("substitute_id", "a user cannot substitute themselves")
    for field in ("absent_user_id", "substitute_id"):
        if field in values and not await CrmUser.exists().where(CrmUser.id == values[field]):
            raise ValidationFailed.field(field, f"user {values[field]} does not exist")
    if existing is None:
        values["created_by"] = principal.user_id
    return values


ADMIN_ONLY_WRITES: dict[str, str | None] = {"read": None, "write": "user.manage", "delete": "user.manage"}

USER = service.EntitySpec(
    changes_access=True,
    name="user",
    table=CrmUser,
    permission="user",
    permission_overrides=ADMIN_ONLY_WRITES,
    visibility=everyone,
    order_fields=("id", "name", "email"),
    prepare=prepare_user,
    after_write=after_user_write,
    custom_fields=False,
    hidden=("password_hash", "failed_logins", "locked_until"),
)
TEAM = service.EntitySpec(
    changes_access=True,
    name="team",
    table=Team,
    permission="user",
    permission_overrides=ADMIN_ONLY_WRITES,
    visibility=everyone,
    order_fields=("id", "name"),
    custom_fields=False,
    prepare=prepare_team,
)
ROLE = service.EntitySpec(
    changes_access=True,
    name="role",
    table=Role,
    permission="user",
    permission_overrides=ADMIN_ONLY_WRITES,
    visibility=everyone,
    order_fields=("id", "name"),
    custom_fields=False,
    prepare=prepare_role,
)
SUBSTITUTION = service.EntitySpec(
    changes_access=True,
    name="substitution",
    table=Substitution,
    permission="user",
    permission_overrides=ADMIN_ONLY_WRITES,
    visibility=everyone,
    order_fields=("id", "starts_at"),
    custom_fields=False,
    prepare=prepare_substitution,
)
