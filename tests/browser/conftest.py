"""Browser tests (issue 15): Playwright for Python drives Debian's ``chromium`` package against
the real server (``tessera serve`` in a child process, ``tessera_sdk.live.LiveServer``) on
loopback, on SQLite and on PostgreSQL, with the sales, service, knowledge base and receivables
plugins enabled (``browser_helpers.PLUGINS``).

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
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import PLUGINS, SCREENSHOT_ENV, Site, chromium_path, load_demo, new_page, unavailable
from tessera_sdk.live import LiveServer
from tessera_sdk.testing import (
    POSTGRES_SKIP_REASON,
    _db_url,
    _migrated_template,
    _pg_admin,
    _Templates,
    postgres_url,
)


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


class _Sites:
    """One server per database for the whole test session of a process (shared by every
    browser test: each makes its own users and clients), started when a test first needs it."""

    def __init__(self, root: Path, templates: _Templates) -> None:
        self.root = root
        self.templates = templates
        self.sites: dict[str, Site] = {}
        self.pg_databases: list[str] = []

    async def get(self, backend: str) -> Site:
        if backend not in self.sites:
            self.sites[backend] = await self._start(backend)
        return self.sites[backend]

    async def _start(self, backend: str) -> Site:
        """A fresh copy of the migrated template, the demo organisation loaded into it by the
        kernel in this process (then stopped), and ``tessera serve`` on it with the same data
        folder (the server's search index holds what the demo indexed)."""
        from tessera import db
        from tessera.app import boot, startup
        from tessera.config import Settings

        root = self.root / backend
        root.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=root / "data", plugins=PLUGINS, secure_cookies=False)
        migrated = await _migrated_template(self.templates, backend, PLUGINS, settings)
        if backend == "sqlite":
            path = root / "site.sqlite3"
            shutil.copyfile(migrated, path)
            settings = settings.with_(database_url=f"sqlite:///{path}")
        else:
            base = postgres_url() or ""
            name = f"tessera_browser_{uuid.uuid4().hex[:10]}"
            await _pg_admin(base, f'CREATE DATABASE "{name}" TEMPLATE "{migrated}"')
            self.pg_databases.append(name)
            settings = settings.with_(database_url=_db_url(base, name))
        pm = boot(settings)
        await startup()
        try:
            demo = await load_demo(pm)
        finally:
            await db.stop()
        server = LiveServer(settings.resolved_database_url, settings.data_dir, PLUGINS)
        await asyncio.to_thread(server.start)
        return Site(url=server.url, backend=backend, settings=settings, server=server, demo=demo)

    async def close(self) -> None:
        for site in self.sites.values():
            await asyncio.to_thread(site.server.stop)
        if self.pg_databases:
            drops = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.pg_databases]
            await _pg_admin(postgres_url() or "", *drops)


@pytest.fixture(scope="session")
async def _sites(
    tmp_path_factory: pytest.TempPathFactory, _tessera_templates: _Templates
) -> AsyncIterator[_Sites]:
    sites = _Sites(tmp_path_factory.mktemp("browser"), _tessera_templates)
    yield sites
    await sites.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def site(request: pytest.FixtureRequest, _sites: _Sites) -> Site:
    """``tessera serve`` with the sales plugin on a database holding a small demo organisation
    (admin@example.com, head@example.com, manager1..3@example.com, password
    ``tessera.demo.DEMO_PASSWORD``), on SQLite and on PostgreSQL; one per database for the
    session, so a test makes its own users and clients (``site.user``, ``site.party``)."""
    backend: str = request.param
    if backend == "postgres" and not postgres_url():
        pytest.skip(POSTGRES_SKIP_REASON)
    return await _sites.get(backend)


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def shoot(screenshot_dir: Path, site: Site) -> Any:
    """``await shoot(page, "card")``: a PNG of the page under the run's screenshot folder."""

    async def take(page: Any, name: str) -> Path:
        path = screenshot_dir / f"{site.backend}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        await page.screenshot(path=str(path))
        return path

    return take
