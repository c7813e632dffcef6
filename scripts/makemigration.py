"""Dev helper: generate an auto migration for a Piccolo app against a scratch SQLite file.
Usage: .venv/bin/python scripts/makemigration.py APP_NAME [enabled plugin names...]"""

import asyncio
import os
import sys
import tempfile

os.environ["PICCOLO_CONF"] = "tessera.piccolo_conf"
from tessera import db, migrations
from tessera.config import Settings
from tessera.plugins import get_plugin_manager


async def main():
    app = sys.argv[1]
    settings = Settings(plugins=tuple(sys.argv[2:]))
    pm = get_plugin_manager(settings)
    migrations.use_apps(pm)
    d = tempfile.mkdtemp()
    db.use_engine(db.make_engine(f"sqlite:///{d}/x.sqlite3"))
    await migrations.migrate()
    from piccolo.apps.migrations.commands.new import new

    await new(app_name=app, auto=True)


asyncio.run(main())
