"""Commercial offers (proposals) generated from a deal: HTML from a Jinja2 template the company
can replace, PDF rendered from the same HTML with fpdf2 and the Roboto font (Cyrillic glyphs,
shipped on PyPI by ``font-roboto``), numbered ``КП-<year>-<seq>`` and versioned per deal.

A proposal stores a snapshot of the deal's lines and totals, so re-downloading its PDF later
shows what was offered then, not what the deal says now.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from tessera import audit, clock, events
from tessera.entities import service
from tessera.entities.tables import Contact, CrmUser, Party
from tessera.errors import NotFound, ValidationFailed
from tessera.permissions import Principal
from tessera.workflow import engine, templates
from tessera.workflow.tables import WorkflowInstance

from tessera_sales import services
from tessera_sales.pipelines import PROPOSAL_ISSUED
from tessera_sales.tables import Proposal, ProposalTemplate

COMPANY_NAME = "Tessera CRM"


def default_template() -> str:
    return files("tessera_sales").joinpath("templates/proposal.html").read_text(encoding="utf-8")


def _fmt_money(value: Any) -> str:
    amount = services.money(value)
    whole, _, cents = f"{amount:,.2f}".partition(".")
    return f"{whole.replace(',', ' ')},{cents}"


def _fmt_qty(value: Any) -> str:
    number = Decimal(str(value)).normalize()
    text = format(number, "f")
    return text.replace(".", ",")


def _environment() -> jinja2.sandbox.SandboxedEnvironment:
    # Sandboxed: the template is company-editable text stored in the database.
    env = jinja2.sandbox.SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["money"] = _fmt_money
    env.filters["qty"] = _fmt_qty
    return env


def check_template(body: str) -> None:
    """422 naming ``body`` when the template does not compile."""
    try:
        _environment().from_string(body)
    except jinja2.TemplateSyntaxError as exc:
        raise ValidationFailed.field("body", f"line {exc.lineno}: {exc.message}") from exc


def render_html(body: str, context: dict[str, Any]) -> str:
    try:
        return _environment().from_string(body).render(**context)
    except jinja2.TemplateError as exc:
        raise ValidationFailed.field("template", f"the proposal template failed: {exc}") from exc


def _font_path(bold: bool = False) -> str:
    import font_roboto

    return str(
        Path(font_roboto.__file__).parent / "files" / ("Roboto-Bold.ttf" if bold else "Roboto-Regular.ttf")
    )


def render_pdf(html: str) -> bytes:
    """The proposal's HTML as a PDF (A4) with a Unicode font."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.add_font("Roboto", "", _font_path())
    pdf.add_font("Roboto", "B", _font_path(bold=True))
    pdf.add_font("Roboto", "I", _font_path())
    pdf.add_font("Roboto", "BI", _font_path(bold=True))
    pdf.set_font("Roboto", size=10)
    pdf.add_page()
    pdf.write_html(html, font_family="Roboto")
    return bytes(pdf.output())


async def _template_row(template_id: int | None) -> dict[str, Any] | None:
    if template_id is not None:
        row = await ProposalTemplate.select().where(ProposalTemplate.id == template_id).first()
        if row is None:
            raise ValidationFailed.field("template_id", f"no proposal template {template_id}")
        return row
    return await ProposalTemplate.select().where(ProposalTemplate.is_default == True).first()  # noqa: E712


async def _next_number(year: int) -> str:
    prefix = f"КП-{year}-"
    rows = await Proposal.select(Proposal.number).where(
        Proposal.number.like(f"{prefix}%"), Proposal.version == 1
    )
    taken = [
        int(r["number"].removeprefix(prefix)) for r in rows if r["number"].removeprefix(prefix).isdigit()
    ]
    return f"{prefix}{max(taken, default=0) + 1:05d}"


async def create_proposal(
    principal: Principal, deal_id: int, template_id: int | None = None
) -> dict[str, Any]:
    """Generate the next version of the deal's proposal (the first one takes a new number),
    add it to the deal's history and tick the stage's "proposal issued" requirement."""
    deal = await services.get_deal_for_write(principal, deal_id)
    lines = (await services.deal_lines([deal_id]))[deal_id]
    if not lines:
        raise ValidationFailed.field("lines", "the deal has no product lines to offer")
    template = await _template_row(template_id)
    body = template["body"] if template else default_template()
    party = await Party.select(Party.id, Party.name).where(Party.id == deal["party_id"]).first()
    contact = (
        await Contact.select(Contact.id, Contact.name).where(Contact.id == deal["contact_id"]).first()
        if deal["contact_id"]
        else None
    )
    manager = (
        await CrmUser.select(CrmUser.id, CrmUser.name, CrmUser.email)
        .where(CrmUser.id == deal["owner_id"])
        .first()
    )
    total = sum((line["amount"] for line in lines), Decimal("0.00"))
    now = clock.now()
    async with events.unit_of_work():
        previous = (
            await Proposal.select(Proposal.number, Proposal.version)
            .where(Proposal.deal_id == deal_id)
            .order_by(Proposal.version, ascending=False)
            .first()
        )
        if previous:
            number, version = previous["number"], previous["version"] + 1
        else:
            number, version = await _next_number(now.year), 1
        snapshot = {
            "deal": {"id": deal_id, "title": deal["title"]},
            "party": {"id": party["id"], "name": party["name"]} if party else {"id": None, "name": ""},
            "contact": {"id": contact["id"], "name": contact["name"]} if contact else None,
            "manager": {"name": manager["name"], "email": manager["email"]}
            if manager
            else {"name": "", "email": ""},
            "lines": [
                {
                    "product_id": line["product_id"],
                    "name": line["name"],
                    "quantity": str(line["quantity"]),
                    "unit_price": str(line["unit_price"]),
                    "discount_pct": str(line["discount_pct"]),
                    "amount": str(line["amount"]),
                }
                for line in lines
            ],
            "total": str(total),
            "currency": deal["currency"],
            "date": now.date().isoformat(),
        }
        html = render_html(body, _context(snapshot, number, version))
        rows = await Proposal.insert(
            Proposal(
                deal_id=deal_id,
                number=number,
                version=version,
                template_id=template["id"] if template else None,
                total=total,
                currency=deal["currency"],
                snapshot=snapshot,
                html=html,
                created_by=principal.user_id,
                created_at=now,
            )
        ).returning(Proposal.id)
        proposal_id = rows[0]["id"]
        await audit.record(
            "proposal",
            "sales.deal",
            deal_id,
            {"proposal": [None, f"{number} v{version}"]},
            user_id=principal.user_id,
        )
        await _tick_issued(principal, deal)
        await events.emit(
            "sales.proposal.created",
            "sales.proposal",
            proposal_id,
            {
                "id": proposal_id,
                "deal_id": deal_id,
                "number": number,
                "version": version,
                "total": str(total),
            },
        )
    return await get_proposal(principal, proposal_id)


def _context(snapshot: dict[str, Any], number: str, version: int) -> dict[str, Any]:
    return {
        **snapshot,
        "number": number,
        "version": version,
        "company": COMPANY_NAME,
        "date": dt.date.fromisoformat(snapshot["date"]).strftime("%d.%m.%Y"),
        "lines": [
            {**line, **{k: Decimal(line[k]) for k in ("quantity", "unit_price", "discount_pct", "amount")}}
            for line in snapshot["lines"]
        ],
        "total": Decimal(snapshot["total"]),
    }


async def _tick_issued(principal: Principal, deal: dict[str, Any]) -> None:
    if deal["status"] != "open" or deal["instance_id"] is None:
        return
    instance = await WorkflowInstance.select().where(WorkflowInstance.id == deal["instance_id"]).first()
    if instance is None or instance["status"] not in ("running", "suspended"):
        return
    definition = await engine.definition_of(instance)
    stage = templates.stage_map(definition).get(instance["current_stage"], {})
    if any(r["key"] == PROPOSAL_ISSUED for r in stage.get("required", [])):
        await engine.tick_checklist(
            engine.engine_principal(principal.user_id), instance["id"], PROPOSAL_ISSUED
        )


async def get_proposal(principal: Principal, proposal_id: int) -> dict[str, Any]:
    row = await Proposal.select().where(Proposal.id == proposal_id).first().output(load_json=True)
    if row is None:
        raise NotFound(f"proposal {proposal_id} not found")
    await services.get_deal(principal, row["deal_id"])  # 404 when the deal is hidden
    row["total"] = services.money(row["total"])
    return row


async def list_proposals(principal: Principal, deal_id: int) -> list[dict[str, Any]]:
    await services.get_deal(principal, deal_id)
    rows = (
        await Proposal.select(
            Proposal.id,
            Proposal.number,
            Proposal.version,
            Proposal.total,
            Proposal.currency,
            Proposal.created_at,
        )
        .where(Proposal.deal_id == deal_id)
        .order_by(Proposal.version)
    )
    for r in rows:
        r["total"] = services.money(r["total"])
    return rows


async def proposal_pdf(principal: Principal, proposal_id: int) -> tuple[str, bytes]:
    row = await get_proposal(principal, proposal_id)
    filename = f"{row['number']}-v{row['version']}.pdf"
    return filename, render_pdf(row["html"])


async def save_template(
    name: str, body: str, is_default: bool, template_id: int | None = None
) -> dict[str, Any]:
    check_template(body)
    from tessera import db

    async with db.transaction():
        if is_default:
            await ProposalTemplate.update({ProposalTemplate.is_default: False}).where(
                ProposalTemplate.is_default == True  # noqa: E712
            )
        values = {"name": name, "body": body, "is_default": is_default, "updated_at": clock.now()}
        if template_id is None:
            rows = await ProposalTemplate.insert(ProposalTemplate(**values)).returning(ProposalTemplate.id)
            template_id = rows[0]["id"]
            await audit.record("create", "sales.proposal_template", template_id, audit.diff(None, values))
        else:
            before = await ProposalTemplate.select().where(ProposalTemplate.id == template_id).first()
            updated = (
                await ProposalTemplate.update({getattr(ProposalTemplate, k): v for k, v in values.items()})
                .where(ProposalTemplate.id == template_id)
                .returning(ProposalTemplate.id)
            )
            if not updated:
                raise NotFound(f"proposal template {template_id} not found")
            await audit.record(
                "update",
                "sales.proposal_template",
                template_id,
                audit.diff({k: (before or {}).get(k) for k in values}, values),
            )
    row = await ProposalTemplate.select().where(ProposalTemplate.id == template_id).first()
    assert row is not None
    return row


__all__ = ["create_proposal", "default_template", "proposal_pdf", "render_pdf", "save_template", "service"]
