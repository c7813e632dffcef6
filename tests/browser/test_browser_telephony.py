"""Telephony's JavaScript in a real browser (issue 16.4, web/static/telephony/calls.js): an
incoming call that the test AMI server (tests/ami_helpers.py, real TCP) sends to the AMI link
pops up "Call from <party>" with "open card" on the signed-in user's page, the link opens the
card, and the card's Call button makes the server send ``Originate`` with the user's extension
to that AMI server. Its own ``tessera serve`` (the shared site has no PBX configured), on SQLite
only: the pop-up's path through the database is covered on both by tests/test_telephony.py."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import PLUGINS, Site, new_page, sign_in
from tessera_sdk.live import LiveServer
from tessera_sdk.testing import _migrated_template, _Templates

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ami_helpers.py
from ami_helpers import AmiServer, eventually


@pytest.fixture
async def pbx() -> AsyncIterator[AmiServer]:
    server = await AmiServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def phone_site(tmp_path: Path, _tessera_templates: _Templates, pbx: AmiServer) -> AsyncIterator[Site]:
    from tessera.config import Settings, Telephony

    settings = Settings(data_dir=tmp_path / "data", plugins=PLUGINS, secure_cookies=False)
    migrated = await _migrated_template(_tessera_templates, "sqlite", PLUGINS, settings)
    shutil.copyfile(migrated, tmp_path / "site.sqlite3")
    telephony = Telephony(
        ami_host="127.0.0.1", ami_port=pbx.port, ami_username="crm", ami_secret="s3cret", timeout=5
    )
    settings = settings.with_(database_url=f"sqlite:///{tmp_path / 'site.sqlite3'}", telephony=telephony)
    config = tmp_path / "tessera.toml"
    config.write_text(
        "[tessera.telephony]\n"
        f'ami_host = "127.0.0.1"\nami_port = {pbx.port}\nami_username = "crm"\ntimeout = 5\n'
    )
    server = LiveServer(
        settings.resolved_database_url,
        settings.data_dir,
        PLUGINS,
        env={"TESSERA_CONFIG": str(config), "TESSERA_AMI_SECRET": "s3cret"},
    )
    await asyncio.to_thread(server.start)
    yield Site(url=server.url, backend="sqlite", settings=settings, server=server, demo=None)
    await asyncio.to_thread(server.stop)


async def test_an_incoming_call_pops_up_opens_the_card_and_click_to_call_rings_the_extension(
    browser: Any, phone_site: Site, pbx: AmiServer
) -> None:
    from tessera.telephony import calls
    from tessera.telephony.ami import AmiLink

    anna = await phone_site.user("manager", name="Anna Phone")
    party = await phone_site.party(anna, "Acme Telecom", phones=[{"number": "+74951234567"}])
    page = await new_page(browser, phone_site)
    try:
        await sign_in(page, anna["email"])
        async with phone_site.kernel():
            await calls.set_extension(anna["id"], "101")
            # The worker's AMI link, run here on the site's database.
            link = AmiLink(phone_site.settings, reconnect_min_seconds=0.05)
            stop = asyncio.Event()
            running = asyncio.ensure_future(link.run(stop))
            try:
                await eventually(lambda: link.state == "connected")
                await pbx.call_in("b1", "8 (495) 123-45-67")
                await pbx.ring("b1", "101")
                popup = page.locator("#call-popups .call-popup")
                await popup.wait_for()  # the page's EventSource got the ring
                assert await popup.locator("h2").inner_text() == "Call from Acme Telecom"
                opener = popup.get_by_role("link", name="open card")
                async with page.expect_navigation():
                    await opener.click()
            finally:
                stop.set()
                await running
        assert page.url.endswith(f"/app/parties/{party['id']}")
        assert "Acme Telecom" in await page.locator("h1").inner_text()

        # Click-to-call from the card: the server asks the PBX to ring Anna's phone, then dial.
        await page.locator("button.dial[data-number='+74951234567']").first.click()
        await eventually(lambda: any(a.get("Action") == "Originate" for a in pbx.actions))
        originate = next(a for a in pbx.actions if a.get("Action") == "Originate")
        assert (originate["Channel"], originate["Exten"]) == ("PJSIP/101", "+74951234567")
        button = page.locator("button.dial[data-number='+74951234567']").first
        await eventually(lambda: button.inner_text(), within=10)
        assert await button.inner_text() == "Calling your phone…"
    finally:
        await page.context.close()
