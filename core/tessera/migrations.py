"""Schema migrations for the kernel and the enabled plugins (Piccolo migrations).

Each plugin's ``tessera_tables`` hook returns the dotted path of its ``piccolo_app`` module;
``use_apps`` installs the list that ``tessera.piccolo_conf.APP_REGISTRY`` serves.
"""

from __future__ import annotations

import contextlib
import io
import os
from functools import lru_cache

import pluggy
from piccolo.conf.apps import AppRegistry

from tessera.plugins import PluginError, call_each

#: The kernel's own Piccolo apps, always migrated (entities first).
KERNEL_APPS: tuple[str, ...] = (
    "tessera.piccolo_app",
    "tessera.workflow.piccolo_app",
    "tessera.search.piccolo_app",
)
_apps: tuple[str, ...] = KERNEL_APPS


def plugin_apps(pm: pluggy.PluginManager) -> list[str]:
    apps: list[str] = []
    for name, value in call_each(pm, "tessera_tables"):
        if value is None:
            continue
        if not isinstance(value, str):
            raise PluginError(
                f"Plugin {name!r}: tessera_tables must return the dotted path of its piccolo_app "
                f"module (e.g. 'tessera_{name}.piccolo_app'), not {type(value).__name__}"
            )
        apps.append(value)
    return apps


def use_apps(pm: pluggy.PluginManager) -> None:
    global _apps
    os.environ.setdefault("PICCOLO_CONF", "tessera.piccolo_conf")
    _apps = (*KERNEL_APPS, *plugin_apps(pm))


def app_registry() -> AppRegistry:
    return _registry(_apps)


@lru_cache(maxsize=16)
def _registry(apps: tuple[str, ...]) -> AppRegistry:
    return AppRegistry(apps=list(apps))


class MigrationError(RuntimeError):
    pass


async def migrate(verbose: bool = False) -> str:
    """Apply every migration not yet applied (kernel first, then plugins). Idempotent.

    Returns Piccolo's report; raises ``MigrationError`` when a migration fails.
    """
    from piccolo.apps.migrations.commands.forwards import run_forwards

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = await run_forwards("all")
    report = out.getvalue()
    if verbose:
        print(report)
    if not result.success:
        raise MigrationError(f"Migration failed: {result.message}\n{report}")
    return report
