"""The signed-in user's own settings (``PATCH /api/auth/me``): for now the language of the
web UI (issue 15.1), which every user may change for themselves without ``user.manage``."""

from __future__ import annotations

from typing import Literal

from litestar import patch
from msgspec import Struct

from tessera.entities.tables import CrmUser
from tessera.permissions import Principal

Locale = Literal["", "ru", "uk", "en"]


class ProfilePatch(Struct, kw_only=True, forbid_unknown_fields=True):
    #: ``ru``, ``uk`` or ``en``; empty: follow the browser's ``Accept-Language``.
    locale: Locale


class ProfileOut(Struct, kw_only=True):
    user_id: int
    locale: str


async def set_locale(user_id: int, locale: str) -> None:
    """Store the user's language (already validated against ``tessera.i18n.LOCALES``)."""
    await CrmUser.update({CrmUser.locale: locale}).where(CrmUser.id == user_id)


@patch("/api/auth/me", operation_id="update_me", tags=["auth"])
async def update_me(principal: Principal, data: ProfilePatch) -> ProfileOut:
    """Change your own settings: ``locale`` is the language of the web pages (``ru``, ``uk``,
    ``en``; empty follows the browser). Another value is a 422 naming the field."""
    await set_locale(principal.user_id, data.locale)
    return ProfileOut(user_id=principal.user_id, locale=data.locale)


PROFILE_HANDLERS = [update_me]
