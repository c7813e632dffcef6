"""Tessera SDK: the typed HTTP client and the plugin author's kit.

* ``Client`` / ``AsyncClient`` — typed API client (``tessera_sdk.models``), see ``client.py``.
* ``hookimpl`` and the declaration helpers in ``tessera_sdk.plugin`` — for plugin authors.
* ``tessera_sdk.webhooks.verify_signature`` — check a webhook delivery's signature (receivers).
* pytest plugin — fixtures ``tessera_app``, ``api_client``, ``as_user``, ``live_server``,
  ``frozen_clock``, ``crm`` and ``pytest --tessera-contract PLUGIN``.
"""

from tessera.hookspecs import hookimpl

from tessera_sdk import errors, models, webhooks
from tessera_sdk.client import AsyncClient, Client, Page, RetryPolicy
from tessera_sdk.errors import FieldError, TesseraError

__all__ = [
    "AsyncClient",
    "Client",
    "FieldError",
    "Page",
    "RetryPolicy",
    "TesseraError",
    "errors",
    "hookimpl",
    "models",
    "webhooks",
]
