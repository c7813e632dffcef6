"""Web pages of the marketing plugin."""

from typing import Any

HANDLERS: list[Any] = []
