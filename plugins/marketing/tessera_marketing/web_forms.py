"""The web forms page (``/marketing/forms``): each form with its leads count and the HTML
snippet to paste into the company's site (the honeypot field hidden from people).

No ``from __future__ import annotations``: Litestar reads the handlers' annotations.
"""

from typing import Any

from litestar import Request, Response, get
from litestar.response import Redirect
from tessera import db
from tessera.entities import service
from tessera.errors import DomainError
from tessera.web.plugin_pages import current_principal, error_page, render

from tessera_marketing import forms

INPUT_TYPES = {"email": "email", "phone": "tel"}


def snippet(form: dict[str, Any], base: str) -> str:
    """The HTML form a site embeds (plain HTML: it works without JavaScript or CORS)."""
    lines = [f'<form method="post" action="{base.rstrip("/")}/api/marketing/forms/{form["key"]}">']
    for name, target in (form["fields"] or {}).items():
        if target == "note":
            lines.append(f'  <label>{name} <textarea name="{name}"></textarea></label>')
        else:
            kind = INPUT_TYPES.get(target, "text")
            lines.append(f'  <label>{name} <input type="{kind}" name="{name}"></label>')
    lines.append(
        f'  <input type="text" name="{form["honeypot"]}" tabindex="-1" autocomplete="off" '
        'style="position:absolute;left:-9999px" aria-hidden="true">'
    )
    lines.append('  <button type="submit">Send</button>')
    lines.append("</form>")
    return "\n".join(lines)


@get("/forms")
async def forms_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Web forms with their embed snippets (marketing.form.manage)."""
    principal = await current_principal(request)
    if principal is None:
        return Redirect("/login")
    try:
        page = await service.list_page(forms.FORM, principal, [], limit=200)
    except DomainError as exc:
        return error_page(request, principal, exc)
    counts = {
        int(r["form_id"]): int(r["n"])
        for r in await db.raw(
            "SELECT form_id, COUNT(*) AS n FROM marketing_lead WHERE form_id IS NOT NULL GROUP BY form_id"
        )
    }
    base = str(request.base_url)
    from tessera.config import Settings

    settings = getattr(request.app.state, "settings", None)
    if isinstance(settings, Settings) and settings.public_url:
        base = settings.public_url
    return render(
        request,
        "marketing/forms.html",
        principal=principal,
        forms=page.items,
        counts=counts,
        snippets={f["id"]: snippet(f, base) for f in page.items},
    )
