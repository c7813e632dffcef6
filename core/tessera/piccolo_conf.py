"""The one Piccolo configuration module (``PICCOLO_CONF=tessera.piccolo_conf``).

``DB`` and ``APP_REGISTRY`` are resolved on access (PEP 562), from the engine installed with
``tessera.db.use_engine`` and the apps registered by ``tessera.migrations.use_apps``, so the
same module serves the server, the CLI, the worker and tests with different settings.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "DB":
        from tessera.db import get_engine

        return get_engine()
    if name == "APP_REGISTRY":
        from tessera.migrations import app_registry

        return app_registry()
    raise AttributeError(name)
