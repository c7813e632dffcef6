"""Web pages contributed by plugins: their routes (hook ``tessera_web_routes``, mounted under
``/<plugin name>/``), their Jinja2 templates (the ``templates/`` folder of the plugin's package,
addressed as ``"<plugin name>/<file>"`` and free to ``{% extends "base.html" %}``), and the few
helpers a plugin page needs to behave like the kernel's own pages: the signed-in user, the CSRF
check of forms, rendering inside the shell, an error page."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pluggy
from jinja2 import FileSystemLoader
from litestar import Router

from tessera.plugins import PluginError, call_each
from tessera.web import pages
from tessera.web.forms import decode_form, field_errors
from tessera.web.pages import Form, check_csrf, current_principal, error_page, render

# The helpers kernel pages use, for plugin pages too (one implementation). A form is decoded
# with ``decode_form(<the API route's struct>, data)`` and a refusal shown with ``field_errors``.
__all__ = [
    "Form",
    "check_csrf",
    "current_principal",
    "decode_form",
    "error_page",
    "field_errors",
    "record_widgets",
    "render",
    "web_routers",
]


async def record_widgets(request: Any, principal: Any, kind: str, record_id: int) -> list[dict[str, Any]]:
    """Other plugins' blocks for this record's page (hook ``tessera_record_widgets``), checked;
    render them with ``{% include "_record_widgets.html" %}`` (context: ``widgets``, ``kind``,
    ``record_id``). Call it after reading the record with the user's principal."""
    from tessera.web.card import record_widgets as collect

    return await collect(request.app.state.pm, principal, kind, record_id)


def _templates_dir(plugin: object) -> Path | None:
    module = plugin.__name__ if hasattr(plugin, "__file__") else type(plugin).__module__
    package = importlib.import_module(module.rpartition(".")[0] or module)
    for root in getattr(package, "__path__", []) or []:
        folder = Path(root) / "templates"
        if folder.is_dir():
            return folder
    return None


def catalogue_dirs(pm: pluggy.PluginManager) -> list[Path]:
    """The enabled plugins' catalogue folders (``tessera_translations``), for tessera.i18n."""
    found = []
    for name, folder in call_each(pm, "tessera_translations"):
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise PluginError(f"Plugin {name!r}: tessera_translations must return an existing directory")
        found.append(Path(folder))
    return found


def web_routers(pm: pluggy.PluginManager) -> list[Router]:
    """Routers of the enabled plugins' pages; also makes their templates loadable."""
    routers = []
    for name, plugin in pm.list_name_plugin():
        if name is None or plugin is None:
            continue
        folder = _templates_dir(plugin)
        if folder is not None:
            pages.PLUGIN_TEMPLATES[name] = FileSystemLoader(folder)
    for name, handlers in call_each(pm, "tessera_web_routes"):
        if not handlers:
            continue
        if not isinstance(handlers, list | tuple):
            raise PluginError(f"Plugin {name!r}: tessera_web_routes must return a list of handlers")
        routers.append(Router(path=f"/{name}", route_handlers=list(handlers), include_in_schema=False))
    return routers
