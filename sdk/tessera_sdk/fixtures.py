"""The plugin author's pytest fixtures (registered through the ``pytest11`` entry point
``tessera_fixtures``, beside ``tessera_sdk.testing`` whose ``crm`` and ``frozen_clock`` they
build on):

* ``tessera_app`` — the kernel plus the plugins named by ``@pytest.mark.plugins("loyalty")``
  (or by overriding the ``tessera_plugins`` fixture) on a fresh, migrated database: a
  temporary SQLite file, or the PostgreSQL server named by ``CRM_TEST_POSTGRES`` when that
  variable is set. It has ``.app``, ``.settings``, ``.pm`` and ``await .user(role)``.
* ``api_client`` — a typed ``tessera_sdk.AsyncClient`` signed in as an administrator, talking
  to ``tessera_app`` in-process.
* ``as_user`` — ``client = await as_user(role="manager")``: a new user with that role and an
  ``AsyncClient`` acting as them (``client.user`` is the user row).
* ``live_server`` — ``tessera serve`` in a child process on a free 127.0.0.1 port, on the same
  database as ``tessera_app``; ``live_server.client(token)`` gives a blocking ``Client``.
* ``frozen_clock`` — from ``tessera_sdk.testing``: the kernel clock stopped until moved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tessera_sdk.client import AsyncClient
from tessera_sdk.live import LiveServer
from tessera_sdk.testing import CRM, _Templates, booted_crm, postgres_url


@pytest.fixture
def tessera_plugins(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Plugins ``tessera_app`` enables: those named by ``@pytest.mark.plugins(...)``.
    Override this fixture in a conftest to enable your plugin for every test."""
    names: list[str] = []
    for marker in request.node.iter_markers("plugins"):
        names.extend(marker.args)
    return tuple(sorted(set(names)))


@pytest.fixture
async def tessera_app(
    tessera_plugins: tuple[str, ...], tmp_path: Path, _tessera_templates: _Templates
) -> AsyncIterator[CRM]:
    """A booted kernel with ``tessera_plugins`` on a fresh database (SQLite, or PostgreSQL
    when ``CRM_TEST_POSTGRES`` is set)."""
    backend = "postgres" if postgres_url() else "sqlite"
    async with booted_crm(_tessera_templates, backend, tessera_plugins, tmp_path) as booted:
        yield booted


def _in_process_client(app: CRM, token: str) -> AsyncClient:
    import httpx

    return AsyncClient("http://testserver", token, transport=httpx.ASGITransport(app=app.app))


@pytest.fixture
async def as_user(tessera_app: CRM) -> AsyncIterator[Callable[..., Awaitable[AsyncClient]]]:
    """``await as_user(role="manager", team_id=None)`` -> an ``AsyncClient`` acting as a new
    user with that role (``.user`` holds the row: ``id``, ``email``, ``token`` ...)."""
    clients: list[AsyncClient] = []

    async def make(role: str = "manager", **kwargs: Any) -> AsyncClient:
        user = await tessera_app.user(role, **kwargs)
        client = _in_process_client(tessera_app, user["token"])
        client.user = user
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def api_client(as_user: Callable[..., Awaitable[AsyncClient]]) -> AsyncClient:
    """A typed ``AsyncClient`` signed in as an administrator (in-process, no sockets)."""
    return await as_user("admin")


@pytest.fixture
def live_server(tessera_app: CRM, tessera_plugins: tuple[str, ...]) -> Iterator[LiveServer]:
    """``tessera serve`` in a child process on a free loopback port, sharing ``tessera_app``'s
    database; stopped after the test. Create users with ``await tessera_app.user(role)`` and
    talk to it with ``live_server.client(user["token"])``. (The server has its own clock:
    ``frozen_clock`` does not reach it.)"""
    server = LiveServer(
        tessera_app.settings.resolved_database_url,
        tessera_app.settings.data_dir / "live",
        tessera_plugins,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["api_client", "as_user", "live_server", "tessera_app", "tessera_plugins"]
