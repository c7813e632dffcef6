"""Every write a plugin route makes is audited, structurally.

The kernel mounts each plugin's API router (``/api/<plugin>/``) with this middleware (not its
web pages: a form post answers 303 whether it saved or showed an error). A write request (POST, PUT,
PATCH, DELETE) watches the audit entries written while it runs (``tessera.audit.watch``); when
it succeeds (status below 400), wrote none and did not declare that it changed nothing
(``tessera.audit.unchanged()``), the kernel writes an ``unaudited_write`` entry
naming the plugin, the route and the caller, and logs an error. Forgetting the audit therefore
never goes unrecorded, and the plugin contract (``tessera_sdk.contract.check_writes_are_audited``)
fails a plugin whose write routes leave only this fallback behind.
"""

from __future__ import annotations

from typing import Any

from tessera import audit, events

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def audit_guard(plugin: str) -> Any:
    """ASGI middleware factory for the routes of ``plugin``."""

    def factory(app: Any) -> Any:
        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope.get("method") not in WRITE_METHODS:
                await app(scope, receive, send)
                return
            status: list[int] = []

            async def watching_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status.append(int(message["status"]))
                await send(message)

            watch, token = audit.watch()
            try:
                await app(scope, receive, watching_send)
                actor = events.current_actor()
            finally:
                audit.unwatch(token)
            if status and status[0] < 400 and not watch.accounted:
                await audit.record_unaudited(plugin, scope["method"], scope["path"], status[0], actor)

        return middleware

    return factory
