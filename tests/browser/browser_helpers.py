"""Helpers of the browser tests (tests/browser/conftest.py has the fixtures)."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from tessera_sdk.live import LiveServer
from tessera_sdk.testing import POSTGRES_ENV, _password_hash, postgres_url

PLUGINS = ("sales", "service", "knowledge_base", "receivables", "marketing")
PASSWORD = "correct-horse-battery"  # the password of users made by ``site.user``
VIEWPORT = {"width": 1280, "height": 800}
#: Each step of a test waits at most this long (ms): a page that hangs fails fast.
TIMEOUT_MS = 15_000
SCREENSHOT_ENV = "TESSERA_SCREENSHOTS"


async def load_demo(pm: Any, managers: int = 3, parties: int = 8, deals: int = 10) -> Any:
    """The demo organisation (``tessera.demo.load``) at a size a test can afford: the sales
    plugin's demo moves 200 deals through the pipeline by default, most of a minute."""
    from types import SimpleNamespace

    from tessera import demo
    from tessera_sales import demo as sales_demo

    # The kernel's loader without the plugins' demo hook; the sales demo is loaded next, smaller.
    no_plugins = SimpleNamespace(hook=SimpleNamespace(tessera_demo_data=SimpleNamespace(get_hookimpls=list)))
    context = await demo.load(no_plugins, managers=managers, parties_count=parties)  # type: ignore[arg-type]
    await sales_demo.load(context, deals=deals)
    return context


def chromium_path() -> str | None:
    return shutil.which("chromium")


def unavailable(reason: str) -> None:
    """Skip a browser test for a missing tool; in CI (``CRM_TEST_POSTGRES`` set) fail it."""
    if postgres_url():
        pytest.fail(f"{reason} ({POSTGRES_ENV} is set: CI must run the browser tests)", pytrace=False)
    pytest.skip(reason)


# -- screenshots --------------------------------------------------------------------------------


async def new_page(browser: Any, site: Site, locale: str = "en-US") -> Any:
    """A page in a fresh context (its own cookies) on ``site``; ``locale`` is the browser's
    language (``Accept-Language``)."""
    context = await browser.new_context(base_url=site.url, viewport=VIEWPORT, locale=locale)
    context.set_default_timeout(TIMEOUT_MS)
    return await context.new_page()


@dataclass
class Site:
    """A running server (``tessera serve`` in a child process) on a demo organisation.

    The test process does not keep the kernel booted between steps (other tests of the same
    worker boot theirs): ``async with site.kernel():`` boots it on the site's database for a
    few calls to the kernel's services; ``user`` and ``party`` do so themselves."""

    url: str
    backend: str
    settings: Any  # tessera.config.Settings of the site's database and data folder
    server: LiveServer
    demo: Any  # tessera.demo.DemoContext: demo.managers, demo.parties ...

    @asynccontextmanager
    async def kernel(self) -> AsyncIterator[Any]:
        """The kernel booted on the site's database (yields its plugin manager)."""
        from tessera import db
        from tessera.app import boot, startup

        pm = boot(self.settings)
        await startup(check_migrations=False)
        try:
            yield pm
        finally:
            await db.stop()

    async def user(
        self, role: str = "manager", name: str | None = None, locale: str = "", team_id: int | None = None
    ) -> dict[str, Any]:
        """A new user with ``role`` and password :data:`PASSWORD` (``id``, ``email``, ``name``,
        ``password``)."""
        from tessera.demo import system_principal
        from tessera.entities import admin, service

        tag = uuid.uuid4().hex[:8]
        body = {
            "email": f"{role}-{tag}@example.com",
            "name": name or f"{role.capitalize()} {tag}",
            "password_hash": _password_hash(PASSWORD),
            "roles": [role],
            "team_id": team_id,
            "locale": locale,
        }
        async with self.kernel():
            row = await service.create(admin.USER, system_principal(), body)
        row["password"] = PASSWORD
        return row

    async def party(self, owner: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
        """A client owned by ``owner``, created by them through the kernel's service."""
        from tessera.entities import parties, service
        from tessera.permissions import build_principal

        body = {"name": name, "kind": "organisation", "relations": ["client"], "status": "potential"}
        async with self.kernel():
            return await service.create(parties.PARTY, await build_principal(owner["id"]), {**body, **fields})


async def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    """Sign in through the form and wait for the dashboard."""
    await page.goto("/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    async with page.expect_navigation():
        await page.click("form[action='/login'] button[type=submit]")
    if not re.search(r"/app$", page.url):
        text = await page.inner_text("body")
        raise AssertionError(f"signing in as {email} did not reach /app ({page.url}): {text[:500]}")
