"""With the plugin disabled nothing of it exists."""

from __future__ import annotations


async def test_sales_disabled_answers_404_and_runs_no_job(crm):
    from tessera import scheduler

    admin = await crm.user("admin")
    assert (await crm.get("/api/sales/deals", admin)).status_code == 404
    assert (await crm.get("/api/sales/reports/funnel", admin)).status_code == 404
    names = set(scheduler.collect_jobs(crm.pm))
    assert not any(n.startswith("sales.") for n in names)
