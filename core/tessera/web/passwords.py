"""Password pages: "Forgot password?" (ask for a reset link by e-mail), the reset page the
link opens (``/password-reset?token=...``) and "Change password" for the signed-in user.

They decode their forms through the API's own structs (``ResetRequestIn``,
``PasswordResetIn``, ``PasswordChangeIn``) and call the same service functions as the API
routes (``tessera.api.security.arrange_reset``, ``apply_password_reset``,
``apply_password_change``), so the rules (single-use expiring token, throttling,
other sessions ending) are the API's. The only thing a page adds is the new password typed
twice. docs/security.md, "Password changes and resets".
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import i18n
from tessera.api.security import (
    PasswordChangeIn,
    PasswordResetIn,
    ResetRequestIn,
    apply_password_change,
    apply_password_reset,
    arrange_reset,
)
from tessera.errors import DomainError
from tessera.i18n import N_
from tessera.web.forms import decode_form, field_errors
from tessera.web.pages import Form, check_csrf, current_principal, render, use_locale

#: The second copy of the new password: the page's own business, never sent to the service.
AGAIN = "new_password_again"
#: Shown beside the second copy when the two differ (translated when shown).
MISMATCH = N_("does not match the new password")
#: The service's refusals these pages show beside a field or above the form, in the catalogue
#: so that ``field_errors`` / ``i18n.translate_message`` find them (docs/i18n.md).
SERVICE_MESSAGES = (
    N_("is not your current password"),
    N_("The reset token is invalid, expired or already used"),
)


def _no_store(response: Response[Any]) -> Response[Any]:
    """A page showing a reset token is not kept by the browser's or a proxy's cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- forgot password


@get("/password-reset/request", include_in_schema=False)
async def reset_request_page(request: Request[Any, Any, Any]) -> Response[str]:
    return render(request, "password_reset_request.html", principal=None, sent=False, error=None)


@post("/password-reset/request", include_in_schema=False, status_code=200)
async def reset_request_submit(request: Request[Any, Any, Any], data: Form) -> Response[str]:
    """Same page and words whether or not the address belongs to an account."""
    use_locale(request)  # the field errors below are made before render() in this language
    try:
        body = decode_form(ResetRequestIn, data)
        await arrange_reset(request, body.email)
    except DomainError as exc:
        errors = (
            field_errors(exc, {"email"}) if exc.status == 422 else {"": i18n.translate_message(exc.detail)}
        )
        return render(
            request,
            "password_reset_request.html",
            status=exc.status,
            principal=None,
            sent=False,
            error=errors.pop("", None),
            errors=errors,
            form={"email": data.get("email", "")},
        )
    return render(request, "password_reset_request.html", principal=None, sent=True, error=None)


# --------------------------------------------------------------------------- reset with a token


@get("/password-reset", include_in_schema=False)
async def reset_page(request: Request[Any, Any, Any], token: str = "") -> Response[str]:
    return _no_store(render(request, "password_reset.html", principal=None, token=token, error=None))


@post("/password-reset", include_in_schema=False, status_code=303)
async def reset_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """The token comes in the form's hidden field (the address bar no longer shows it); on
    success every session of the account has ended and the sign-in page says so."""
    use_locale(request)
    sent = {k: v for k, v in data.items() if k != AGAIN}
    try:
        body = decode_form(PasswordResetIn, sent)
        if data.get(AGAIN, "") != body.new_password:
            return _reset_form(request, data, {AGAIN: i18n.gettext(MISMATCH)}, 422)
        await apply_password_reset(request, body)
    except DomainError as exc:
        errors = (
            field_errors(exc, {"new_password"})
            if exc.status == 422
            else {"": i18n.translate_message(exc.detail)}
        )
        return _reset_form(request, data, errors, exc.status)
    return Redirect("/login?done=password-reset", status_code=303)


def _reset_form(
    request: Request[Any, Any, Any], data: dict[str, str], errors: dict[str, str], status: int
) -> Response[str]:
    errors = dict(errors)
    return _no_store(
        render(
            request,
            "password_reset.html",
            status=status,
            principal=None,
            token=data.get("token", ""),
            error=errors.pop("", None),
            errors=errors,
        )
    )


# --------------------------------------------------------------------------- change password


@get("/app/password", include_in_schema=False)
async def change_page(request: Request[Any, Any, Any], done: str = "") -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    return render(request, "password_change.html", principal=principal, changed=done == "1", error=None)


@post("/app/password", include_in_schema=False, status_code=303)
async def change_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """Current password and the new one twice; the other sessions end, this one stays; the
    checkbox ``revoke_tokens`` also revokes every API token of the user."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login", status_code=303)
    check_csrf(principal, data)
    sent = {k: v for k, v in data.items() if k != AGAIN}
    fields = {"current_password", "new_password", "revoke_tokens"}
    try:
        body = decode_form(PasswordChangeIn, sent)
        if data.get(AGAIN, "") != body.new_password:
            errors = {AGAIN: i18n.gettext(MISMATCH)}
            status = 422
        else:
            await apply_password_change(request, principal, body)
            return Redirect("/app/password?done=1", status_code=303)
    except DomainError as exc:
        errors = field_errors(exc, fields) if exc.status == 422 else {"": i18n.translate_message(exc.detail)}
        status = exc.status
    return render(
        request,
        "password_change.html",
        status=status,
        principal=principal,
        changed=False,
        error=errors.pop("", None),
        errors=errors,
        form={"revoke_tokens": data.get("revoke_tokens", "")},
    )


HANDLERS = [reset_request_page, reset_request_submit, reset_page, reset_submit, change_page, change_submit]
