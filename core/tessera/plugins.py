"""The plugin manager: loads plugins from the ``tessera.plugins`` entry-point group, keeps the
enabled ones, and offers helpers to call hooks whose implementations may be async."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from tessera import hookspecs
from tessera.config import ALL_PLUGINS, Settings

ENTRY_POINT_GROUP = "tessera.plugins"


class PluginError(RuntimeError):
    """A plugin could not be loaded or is misconfigured; the message names it."""


@dataclass(frozen=True)
class InstalledPlugin:
    name: str
    module: str
    distribution: str | None
    version: str | None


def installed_plugins() -> dict[str, InstalledPlugin]:
    found: dict[str, InstalledPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        found[ep.name] = InstalledPlugin(
            name=ep.name,
            module=ep.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
    return found


def _wanted(settings: Settings, available: list[str]) -> list[str]:
    if ALL_PLUGINS in settings.plugins:
        return sorted(available)
    missing = [name for name in settings.plugins if name not in available]
    if missing:
        raise PluginError(
            f"Plugin(s) {', '.join(missing)} are enabled in the configuration but not installed "
            f"(installed: {', '.join(sorted(available)) or 'none'})"
        )
    return list(settings.plugins)


def get_plugin_manager(
    settings: Settings, plugins: dict[str, ModuleType | object] | None = None
) -> pluggy.PluginManager:
    """Build a plugin manager with the enabled plugins.

    :param plugins: plugin objects to register directly by name (tests, embedded use); when
        given together with autoload, they are added to the installed ones.
    """
    pm = pluggy.PluginManager("tessera")
    pm.add_hookspecs(hookspecs)
    candidates: dict[str, Any] = {}
    if settings.autoload_plugins:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            candidates[ep.name] = ep
    for name, obj in (plugins or {}).items():
        candidates[name] = obj
    for name in _wanted(settings, list(candidates)):
        obj = candidates[name]
        if hasattr(obj, "load") and hasattr(obj, "group"):
            try:
                obj = obj.load()
            except Exception as exc:  # any import-time failure must name the plugin
                raise PluginError(f"Plugin {name!r} failed to load: {exc!r}") from exc
        try:
            pm.register(obj, name=name)
        except Exception as exc:
            raise PluginError(f"Plugin {name!r} could not be registered: {exc}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        # pluggy's error carries the plugin object, not its name.
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"Plugin {name!r}: {exc}") from exc
    return pm


def enabled_plugin_names(pm: pluggy.PluginManager) -> list[str]:
    return [name for name, _ in pm.list_name_plugin() if name is not None]


async def await_me_maybe(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def call_each(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call a hook and return ``(plugin name, result)`` pairs, wrapping errors with the plugin's
    name so a broken plugin is easy to find."""
    results: list[tuple[str, Any]] = []
    hook = getattr(pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):
        try:
            results.append((impl.plugin_name, impl.function(*[kwargs[arg] for arg in impl.argnames])))
        except Exception as exc:
            raise PluginError(f"Plugin {impl.plugin_name!r} failed in {hook_name}: {exc!r}") from exc
    return results


log = logging.getLogger("tessera.plugins")


async def call_each_tolerant(
    pm: pluggy.PluginManager, hook_name: str, **kwargs: Any
) -> tuple[list[tuple[str, Any]], list[str]]:
    """Like ``call_each_async`` for hooks that only add panels to a page (card and dashboard
    widgets): a plugin that raises is logged with its traceback and named in the second list,
    so one broken panel does not take the whole page (the user's record) down with it."""
    out: list[tuple[str, Any]] = []
    failed: list[str] = []
    hook = getattr(pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):
        try:
            value = impl.function(*[kwargs[arg] for arg in impl.argnames])
            out.append((impl.plugin_name, await await_me_maybe(value)))
        except Exception:
            log.exception("Plugin %r failed in %s", impl.plugin_name, hook_name)
            failed.append(impl.plugin_name)
    return out, failed


async def call_each_async(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    out = []
    for name, value in call_each(pm, hook_name, **kwargs):
        try:
            out.append((name, await await_me_maybe(value)))
        except Exception as exc:
            raise PluginError(f"Plugin {name!r} failed in {hook_name}: {exc!r}") from exc
    return out
