"""A small per-process cache for what requests read about their caller (API tokens,
principals) and about the schema (custom fields): each lookup is a query, often more than the
request's own work, and these change rarely.

Entries expire after ``ttl`` seconds (other processes' changes count within that time);
``clear()`` drops everything at once (a change made through this process counts on the next
request). Entries belong to the database they were read from: switching databases (tests do,
in one process) empties the cache.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

from tessera import db

K = TypeVar("K")
V = TypeVar("V")


class ReadCache(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._engine: object = None

    def _check_engine(self) -> None:
        engine = db.get_engine()
        if self._engine is not engine:
            self._entries.clear()
            self._engine = engine

    def get(self, key: K) -> V | None:
        """The value stored under ``key`` less than ``ttl`` seconds ago, else None."""
        self._check_engine()
        hit = self._entries.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, key: K, value: V) -> V:
        self._check_engine()
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)
        return value

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
