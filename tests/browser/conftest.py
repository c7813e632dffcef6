"""Browser tests (issue 15): Playwright for Python drives Debian's ``chromium`` package against
the real server (``tessera serve`` in a child process, ``tessera_sdk.live.LiveServer``) on
loopback, on SQLite and on PostgreSQL, with the sales plugin enabled.

* ``site`` — one server per test module and database (``[sqlite]``/``[postgres]``) on a fresh
  database with a small demo organisation (``tessera.demo.load``); the test process has the
  same database booted, so ``await site.user("manager")`` makes a user (``email``,
  ``password``) and ``site.principal(user)`` acts as them with the kernel's services. Tests of a
  module share the server: each makes its own users and parties.
* ``browser`` — one chromium per test session (cheap to share); ``page`` — a fresh context (no
  cookies) and page per test, English by default, 1280x800.
* ``sign_in(page, email, password)`` — the sign-in form, as a person fills it.
* ``shoot(page, name)`` — a PNG under the run's screenshot folder (printed at the end of the
  run); the crawl takes one of every main page.

Without ``chromium`` (``apt-get install chromium``) or Playwright the tests are skipped, except
in CI (``CRM_TEST_POSTGRES`` set), where a missing browser fails them like a missing PostgreSQL.
Playwright's own ``playwright install`` is never used: it downloads browsers from the internet.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import PLUGINS, SCREENSHOT_ENV, Site, chromium_path, load_demo, new_page, unavailable
from tessera_sdk.live import LiveServer
from tessera_sdk.testing import POSTGRES_SKIP_REASON, _Templates, booted_crm, postgres_url


def _screenshot_root(config: pytest.Config) -> Path:
    """``<pytest's temp dir of this run>/screenshots``: one folder for all xdist workers."""
    if os.environ.get(SCREENSHOT_ENV):
        return Path(os.environ[SCREENSHOT_ENV])
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    if hasattr(config, "workerinput"):  # an xdist worker's temp dir is inside the run's
        base = base.parent
    return base / "screenshots"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    folder = _screenshot_root(config)
    if folder.is_dir() and any(folder.iterdir()):
        count = sum(1 for _ in folder.glob("*.png"))
        terminalreporter.write_line(f"Browser screenshots: {count} in {folder}")


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig: pytest.Config) -> Path:
    folder = _screenshot_root(pytestconfig)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    if executable is None:
        unavailable("browser tests need Debian's chromium: apt-get install chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("browser tests need Playwright: uv sync --group test")
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(executable_path=executable)
    except Exception as exc:
        await playwright.stop()
        unavailable(f"chromium ({executable}) does not start under Playwright: {exc}")
    yield browser
    await browser.close()
    await playwright.stop()


@pytest.fixture
async def page(browser: Any, site: Site) -> AsyncIterator[Any]:
    """A fresh browser context and page on ``site`` (English)."""
    page = await new_page(browser, site)
    yield page
    await page.context.close()


@pytest.fixture
async def second_page(browser: Any, site: Site) -> AsyncIterator[Any]:
    """Another person's browser: its own context and cookies."""
    page = await new_page(browser, site)
    yield page
    await page.context.close()


# -- the server ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _tessera_templates: _Templates
) -> AsyncIterator[Site]:
    """``tessera serve`` with the sales plugin on a fresh database holding a small demo
    organisation (admin@example.com, head@example.com, manager1..3@example.com, password
    ``tessera.demo.DEMO_PASSWORD``), shared by the tests of a module."""
    backend: str = request.param
    if backend == "postgres" and not postgres_url():
        pytest.skip(POSTGRES_SKIP_REASON)
    tmp = tmp_path_factory.mktemp(f"browser-{backend}")
    async with booted_crm(_tessera_templates, backend, PLUGINS, tmp) as crm:
        context = await load_demo(crm.pm)
        # The same data folder: the server's search index holds what the demo indexed.
        server = LiveServer(crm.settings.resolved_database_url, crm.settings.data_dir, PLUGINS)
        await asyncio.to_thread(server.start)
        try:
            yield Site(url=server.url, backend=backend, crm=crm, server=server, demo=context)
        finally:
            await asyncio.to_thread(server.stop)


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def shoot(screenshot_dir: Path, site: Site) -> Any:
    """``await shoot(page, "card")``: a PNG of the page under the run's screenshot folder."""

    async def take(page: Any, name: str) -> Path:
        path = screenshot_dir / f"{site.backend}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        await page.screenshot(path=str(path))
        return path

    return take
