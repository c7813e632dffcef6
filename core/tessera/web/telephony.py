"""The signed-in user's phone extension page (``/app/telephony``): calls to it pop up on the
user's pages, click-to-call rings it first. The same rules as ``PUT /api/telephony/me``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from tessera import i18n
from tessera.api.telephony import ExtensionIn, _save_extension
from tessera.errors import DomainError
from tessera.telephony import calls
from tessera.web.forms import decode_form, field_errors
from tessera.web.pages import Form, check_csrf, current_principal, render, use_locale


@get("/app/telephony", include_in_schema=False)
async def extension_page(request: Request[Any, Any, Any], done: str = "") -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    extension = await calls.extension_of(principal.user_id)
    return render(
        request,
        "telephony.html",
        principal=principal,
        form={"extension": extension},
        saved=done == "1",
        errors={},
    )


@post("/app/telephony", include_in_schema=False, status_code=303)
async def extension_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    check_csrf(principal, data)
    use_locale(request)
    try:
        body = decode_form(ExtensionIn, {"extension": data.get("extension", "").strip()})
        await _save_extension(principal, principal.user_id, body.extension)
    except DomainError as exc:
        errors = (
            field_errors(exc, {"extension"})
            if exc.status == 422
            else {"extension": i18n.translate_message(exc.detail)}
        )
        return render(
            request,
            "telephony.html",
            status=exc.status,
            principal=principal,
            form={"extension": data.get("extension", "")},
            saved=False,
            errors=errors,
        )
    return Redirect("/app/telephony?done=1", status_code=303)


HANDLERS = [extension_page, extension_submit]
