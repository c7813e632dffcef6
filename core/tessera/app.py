"""Litestar app factory: builds the app from the settings and the enabled plugins."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import pluggy
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from tessera import __version__, auth, db, email, events, i18n, migrations, webhooks
from tessera.api import openapi
from tessera.api.accounting import HANDLERS as ACCOUNTING_HANDLERS
from tessera.api.audit_guard import audit_guard
from tessera.api.errors import EXCEPTION_HANDLERS
from tessera.api.imports import HANDLERS as IMPORT_HANDLERS
from tessera.api.input import InputGuard
from tessera.api.profile import PROFILE_HANDLERS
from tessera.api.routes import kernel_route_handlers
from tessera.api.security import AUTH_HANDLERS, provide_principal
from tessera.api.telephony import HANDLERS as TELEPHONY_HANDLERS
from tessera.config import Settings, load_settings
from tessera.entities import service
from tessera.permissions import Principal
from tessera.plugins import PluginError, call_each, get_plugin_manager
from tessera.search import service as search_service
from tessera.web import day as day_pages
from tessera.web import inbox as inbox_pages
from tessera.web import openapi as openapi_pages
from tessera.web import search_page
from tessera.web.admin import HANDLERS as ADMIN_PAGES
from tessera.web.builder_pages import BUILDER_PAGES
from tessera.web.errors import page_aware
from tessera.web.imports import HANDLERS as IMPORT_PAGES
from tessera.web.list_pages import HANDLERS as LIST_PAGES
from tessera.web.mail import HANDLERS as MAIL_PAGES
from tessera.web.pages import WEB_HANDLERS
from tessera.web.passwords import HANDLERS as PASSWORD_PAGES
from tessera.web.plugin_pages import catalogue_dirs, web_routers
from tessera.web.protection import OriginCheck, security_headers
from tessera.web.records import RECORD_PAGES
from tessera.web.report_pages import REPORT_PAGES
from tessera.web.saved_views import API_HANDLERS as SAVED_VIEW_API
from tessera.web.task_pages import TASK_PAGES
from tessera.web.telephony import HANDLERS as TELEPHONY_PAGES

log = logging.getLogger("tessera")


def boot(settings: Settings, plugins: dict[str, ModuleType | object] | None = None) -> pluggy.PluginManager:
    """Load plugins, select the database and wire the kernel's services. Used by the app, the
    CLI, the worker and tests alike."""
    pm = get_plugin_manager(settings, plugins)
    auth.configure_password_hashing(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    migrations.use_apps(pm)
    db.use_engine(db.make_engine(settings.resolved_database_url))
    service.configure(pm)
    search_service.configure(settings, pm)
    events.configure(pm, batch_listeners=[search_service.on_events, webhooks.on_events])
    email.configure(settings)
    webhooks.configure(settings)
    # The languages follow the plugins booted here (a process that boots again with another
    # plugin set, as the tests' reused apps do, must not keep the previous set's catalogues).
    i18n.configure(settings.default_locale, catalogue_dirs(pm))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return pm


def plugin_routers(pm: pluggy.PluginManager) -> list[Router]:
    routers = []
    for name, handlers in call_each(pm, "tessera_routes"):
        if not handlers:
            continue
        if not isinstance(handlers, list | tuple):
            raise PluginError(
                f"Plugin {name!r}: tessera_routes must return a list of handlers or controllers"
            )
        routers.append(
            Router(
                path=f"/api/{name}",
                route_handlers=list(handlers),
                tags=[name],
                # Every successful write request leaves an audit entry (docs/plugins.md).
                middleware=[audit_guard(name)],
            )
        )
    return routers


async def pending_migrations() -> list[str]:
    """IDs of migrations not yet applied (kernel and enabled plugins)."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager
    from piccolo.apps.migrations.tables import Migration

    manager = BaseMigrationManager()
    if not await Migration.table_exists():
        return ["(no migrations applied yet)"]
    pending: list[str] = []
    for app_name in manager.get_sorted_app_names():
        config = manager.get_app_config(app_name)
        ids = manager.get_migration_ids(manager.get_migration_modules(config.resolved_migrations_folder_path))
        ran = set(await Migration.get_migrations_which_ran(app_name=app_name))
        pending += [f"{app_name}:{i}" for i in ids if i not in ran]
    return pending


async def startup(check_migrations: bool = True) -> None:
    """Open the database, refuse to serve a schema that is behind, deliver events a crash left
    undelivered. Run by the app's lifespan (tests call it directly)."""
    await db.start()
    if check_migrations:
        pending = await pending_migrations()
        if pending:
            count = len(pending)
            raise RuntimeError(
                f"The database schema is behind ({count} migration(s) pending): run `tessera migrate`"
            )
    await events.redeliver_pending()
    await search_service.start()


def create_app(
    settings: Settings | None = None,
    plugins: dict[str, ModuleType | object] | None = None,
    *,
    check_migrations: bool = True,
) -> Litestar:
    settings = settings or load_settings()
    pm = boot(settings, plugins)

    async def on_startup(app: Litestar) -> None:
        await startup(check_migrations)

    async def on_shutdown(app: Litestar) -> None:
        await db.stop()

    app = Litestar(
        route_handlers=[
            *AUTH_HANDLERS,
            *PROFILE_HANDLERS,
            *TELEPHONY_HANDLERS,
            *IMPORT_HANDLERS,
            *ACCOUNTING_HANDLERS,
            *kernel_route_handlers(),
            *SAVED_VIEW_API,
            *plugin_routers(pm),
            *WEB_HANDLERS,
            *day_pages.HANDLERS,  # My day, calendar
            *inbox_pages.HANDLERS,  # notifications
            *search_page.HANDLERS,  # global search results
            *LIST_PAGES,
            *RECORD_PAGES,
            *TASK_PAGES,
            *REPORT_PAGES,
            *BUILDER_PAGES,
            *PASSWORD_PAGES,
            *ADMIN_PAGES,
            *MAIL_PAGES,
            *IMPORT_PAGES,
            *TELEPHONY_PAGES,
            *web_routers(pm),
            openapi_pages.static_router(),
        ],
        dependencies={"principal": Provide(provide_principal)},
        signature_namespace={"Principal": Principal},
        exception_handlers=page_aware(EXCEPTION_HANDLERS),
        # Security headers on every response, Origin checked on every unsafe request (web/protection.py).
        before_send=[security_headers],
        # Then the body and query checks every route inherits (docs/security.md, "Errors and input").
        middleware=[OriginCheck(), InputGuard()],
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        state=State({"settings": settings, "pm": pm}),
        openapi_config=OpenAPIConfig(
            title="Tessera CRM",
            version=__version__,
            path="/schema",
            render_plugins=openapi_pages.render_plugins(),
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", description="API token"),
                    "SessionCookie": SecurityScheme(
                        type="apiKey", security_scheme_in="cookie", name="tessera_session"
                    ),
                }
            ),
            security=[{"BearerToken": []}, {"SessionCookie": []}],
        ),
        debug=False,
    )
    openapi.install(app)
    return app


def create_app_from_env() -> Litestar:
    """ASGI factory for uvicorn: ``uvicorn --factory tessera.app:create_app_from_env``."""
    return create_app(load_settings())


__all__ = ["Any", "boot", "create_app", "create_app_from_env"]
