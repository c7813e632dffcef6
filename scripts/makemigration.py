"""Dev helper: generate an auto migration for one Piccolo app, diffing its tables against the
migrations already in its folder.

Usage: .venv/bin/python scripts/makemigration.py APP_NAME [enabled plugin names...]
APP_NAME is tessera, tessera_workflow, tessera_search or a plugin's app name. Review the file
it writes: Piccolo's auto migrations are weak on SQLite (no ALTER COLUMN).
"""

import asyncio
import os
import sys
import tempfile

os.environ["PICCOLO_CONF"] = "tessera.piccolo_conf"

from tessera import db, migrations
from tessera.config import Settings
from tessera.plugins import get_plugin_manager


async def main() -> None:
    app = sys.argv[1]
    pm = get_plugin_manager(Settings(plugins=tuple(sys.argv[2:])))
    migrations.use_apps(pm)
    scratch = tempfile.mkdtemp()
    db.use_engine(db.make_engine(f"sqlite:///{scratch}/scratch.sqlite3"))
    await migrations.migrate()
    from piccolo.apps.migrations.commands.new import new

    await new(app_name=app, auto=True)


asyncio.run(main())
