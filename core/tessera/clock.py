"""The kernel's clock. Every "now" in services and jobs comes from here so tests can control
time without sleeping (``tessera_sdk.testing.frozen_clock`` and ``set_clock``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_clock: Callable[[], datetime] | None = None


def now() -> datetime:
    """Timezone-aware UTC now, or the time a test has set."""
    return _clock() if _clock is not None else datetime.now(UTC)


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Install a clock function (``None`` restores the real clock)."""
    global _clock
    _clock = clock


class FrozenClock:
    """A clock that stands still until moved: ``clock.advance(days=7)``."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self.current = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        from datetime import timedelta

        self.current += timedelta(**delta)
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment.astimezone(UTC)
