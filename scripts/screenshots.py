"""Screenshots of the main pages for docs/ui.md: ``.venv/bin/python scripts/screenshots.py``.

Loads the demo organisation (``tessera.demo`` plus the sales plugin's demo) into a temporary
SQLite database, starts the real server on loopback (``tessera_sdk.live.LiveServer``) and
photographs each page with Playwright driving Debian's ``chromium`` (``apt-get install
chromium``), the same setup as the browser tests (tests/browser/). The pictures are 1280x800,
reduced to 256 colours, written to docs/ui/<name>.png. A page that does not exist yet (404) is
left out with a message, so the script runs whatever part of the UI has landed.

Options: ``--out DIR`` (default docs/ui), ``--only NAME`` (repeatable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from browser_helpers import PLUGINS, chromium_path, load_demo, sign_in  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}


@dataclass
class Shot:
    name: str  # docs/ui/<name>.png
    path: str  # may hold {party}, {deal}
    who: str | None = "admin@example.com"  # None: not signed in
    locale: str | None = None  # the user's profile language (set by _prepare), and the browser's


SHOTS = [
    Shot("login", "/login", who=None),
    Shot("dashboard", "/app", who="manager1@example.com"),
    Shot("parties", "/app/parties"),
    Shot("card", "/app/parties/{party}"),
    Shot("card-uk", "/app/parties/{party}", who="manager2@example.com", locale="uk"),
    Shot("tasks", "/app/tasks"),
    Shot("calendar", "/app/calendar?view=week", who="manager1@example.com"),
    Shot("search", "/app/search?q={search}"),
    Shot("deals", "/sales/deals", who="manager1@example.com"),
    Shot("deal", "/sales/deals/{deal}"),
    Shot("kanban", "/sales/kanban"),
    Shot("funnel", "/sales/funnel"),
    Shot("plans", "/sales/plans"),
    Shot("forecast", "/sales/forecast"),
    Shot("admin", "/app/admin"),
    Shot("admin-roles", "/app/admin/roles"),
]


async def _prepare(tmp: Path) -> tuple[Any, dict[str, Any]]:
    """The demo organisation in a fresh SQLite database; returns the settings and the ids the
    pages need (a client with history of its own manager, an open deal of theirs)."""
    from tessera import db, migrations
    from tessera.api.profile import set_locale
    from tessera.app import boot, startup
    from tessera.config import Settings
    from tessera.entities.tables import CrmUser
    from tessera.permissions import ensure_default_roles
    from tessera_sales.tables import Deal

    settings = Settings(
        data_dir=tmp / "data",
        plugins=PLUGINS,
        secure_cookies=False,
        database_url=f"sqlite:///{tmp / 'demo.sqlite3'}",
    )
    pm = boot(settings)
    await db.start()
    await migrations.migrate()
    await ensure_default_roles()
    await db.stop()
    pm = boot(settings)
    await startup()
    try:
        context = await load_demo(pm, managers=4, parties=16, deals=60)
        manager2 = await CrmUser.select(CrmUser.id).where(CrmUser.email == "manager2@example.com").first()
        assert manager2 is not None
        await set_locale(manager2["id"], "uk")
        party = next(p for p in context.parties if p["owner_id"] == manager2["id"])
        deal = await (
            Deal.select(Deal.id).where(Deal.status == "open").order_by(Deal.amount, ascending=False).first()
        )
    finally:
        await db.stop()
    ids = {"party": party["id"], "deal": deal["id"] if deal else 0, "search": "Acme"}
    return settings, ids


def _optimise(path: Path) -> None:
    """256 colours: a UI picture loses nothing visible and shrinks to a third."""
    from PIL import Image

    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)


async def main(out: Path, only: set[str]) -> int:
    from playwright.async_api import async_playwright
    from tessera_sdk.live import LiveServer

    executable = chromium_path()
    if executable is None:
        print("Needs Debian's chromium: apt-get install chromium", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tessera-screenshots-") as folder:
        settings, ids = await _prepare(Path(folder))
        server = LiveServer(settings.resolved_database_url, settings.data_dir, PLUGINS)
        await asyncio.to_thread(server.start)
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=executable)
                for shot in SHOTS:
                    if only and shot.name not in only:
                        continue
                    context = await browser.new_context(
                        base_url=server.url,
                        viewport=VIEWPORT,
                        locale="uk-UA" if shot.locale == "uk" else "en-US",
                    )
                    page = await context.new_page()
                    if shot.who:
                        from tessera.demo import DEMO_PASSWORD

                        await sign_in(page, shot.who, DEMO_PASSWORD)
                    response = await page.goto(shot.path.format(**ids))
                    status = response.status if response else 0
                    if status != 200:
                        print(f"{shot.name}: {shot.path} answered {status}: left out")
                    else:
                        target = out / f"{shot.name}.png"
                        await page.screenshot(path=str(target))
                        _optimise(target)
                        print(
                            f"{shot.name}: {target.relative_to(ROOT)} ({target.stat().st_size // 1024} KiB)"
                        )
                    await context.close()
                await browser.close()
        finally:
            await asyncio.to_thread(server.stop)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui")
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.exit(asyncio.run(main(args.out, set(args.only))))
