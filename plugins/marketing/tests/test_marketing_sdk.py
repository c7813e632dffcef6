"""The SDK's typed marketing methods against a running kernel with marketing and sales: a
segment counted and listed, a campaign with a cost line and a deal linked to it, its return, a
web form submitted as a site does and the lead it makes, a mailing previewed and sent, the
ABC/XYZ matrix."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

pytestmark = pytest.mark.plugins("marketing", "sales")


async def test_sdk_marketing_round_trip(api_client: Any) -> None:
    from tessera_sdk import models as m

    mk = api_client.marketing
    vip = await api_client.parties.create(
        {"name": "ООО Вип", "status": "current", "tags": ["vip"], "emails": [{"address": "vip@x.example"}]}
    )
    await api_client.parties.create({"name": "ООО Прочие", "status": "current"})
    rules = {"all": [{"field": "tag", "op": "has", "value": "vip"}]}
    assert await mk.count_rules(rules) == 1
    segment = await mk.segments.create(m.SegmentIn(name="VIP", rules=rules))
    assert isinstance(segment, m.SegmentOut) and await mk.count_members(segment.id) == 1
    page = await mk.members(segment.id)
    assert [p.name for p in page.items] == ["ООО Вип"] and page.next_cursor is None

    today = dt.date.today()
    campaign = await mk.campaigns.create(
        m.CampaignIn(name="Expo", channel="exhibition", starts_on=today, segment_id=segment.id)
    )
    cost = await mk.costs.create(m.CostIn(campaign_id=campaign.id, spent_on=today, amount="100.00"))
    assert isinstance(cost, m.CostOut) and [c.id async for c in mk.costs.list(campaign_id=campaign.id)] == [
        cost.id
    ]
    deal = await api_client.post(
        "/api/sales/deals",
        {"party_id": vip.id, "title": "Expo deal", "amount": "300", "campaign_id": campaign.id},
    )
    figures = await mk.campaign_return(campaign.id)
    assert isinstance(figures, m.CampaignFigures)
    assert (figures.responses, figures.leads, figures.cost, figures.roi) == (1, 1, "100.00", -1.0)
    assert deal["campaign_id"] == campaign.id
    assert [r.name for r in await mk.return_report()] == ["Expo"]
    assert [c.channel for c in await mk.channel_report()] == ["exhibition"]

    form = await mk.web_forms.create(
        m.WebFormIn(
            key="contact-us",
            name="Contact us",
            campaign_id=campaign.id,
            fields={"email": "email", "name": "name"},
            distribution=m.Distribution(mode="user", user_ids=[(await api_client.me()).user_id]),
        )
    )
    assert await mk.submit_form(form.key, {"email": "NEW@Mail.example", "name": "Новый клиент"})
    leads = [lead async for lead in mk.leads.list(form_id=form.id)]
    assert len(leads) == 1 and isinstance(leads[0], m.LeadOut) and leads[0].campaign_id == campaign.id

    mailing = await mk.mailings.create(
        m.MailingIn(
            name="News",
            subject="{{ party.name }}: news",
            html="<p>Hi {{ party.name }}</p>",
            segment_id=segment.id,
        )
    )
    preview = await mk.preview_mailing(mailing.id, vip.id)
    assert preview.subject == "ООО Вип: news" and "Hi ООО Вип" in preview.text
    progress = await mk.send_mailing(mailing.id)
    assert isinstance(progress, m.MailingProgress) and (progress.status, progress.queued) == ("sending", 1)
    assert (await mk.mailing_progress(mailing.id)).queued == 1

    settings = await mk.set_class_settings(m.ClassSettingsIn(a=70, b=20, x=10, y=25))
    assert (settings.a, settings.b) == (70, 20) and (await mk.class_settings()).a == 70
    assert isinstance(await mk.recompute_classes(), m.RecomputeOut)
    assert all(isinstance(c, m.MatrixCell) for c in await mk.class_matrix())
