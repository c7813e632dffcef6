"""Piccolo tables of the kernel's workflow component (its own Piccolo app, so its migrations
stay separate from the entities')."""

from __future__ import annotations

from piccolo.table import Table

TABLES: list[type[Table]] = []
