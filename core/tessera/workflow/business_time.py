"""Stage norms in business hours or calendar time.

A business calendar is working hours on working weekdays in one time zone, minus the public
holidays of a country (the ``holidays`` package). Arithmetic is plain: walk day by day, add
the working seconds of each day. Norms are hours or days, so the walk is short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

#: At most this many calendar days are walked (a norm longer than that is a template error).
MAX_DAYS = 3660


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str = "UTC"
    start: time = time(9, 0)
    end: time = time(18, 0)
    #: Monday = 0 ... Sunday = 6.
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    #: ISO country code for public holidays ("RU", "UA", "DE"), or "" for none.
    country: str = ""
    #: Extra non-working dates.
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def from_json(cls, spec: dict[str, Any] | None) -> BusinessCalendar:
        spec = spec or {}
        return cls(
            timezone=spec.get("timezone", "UTC"),
            start=time.fromisoformat(spec.get("start", "09:00")),
            end=time.fromisoformat(spec.get("end", "18:00")),
            weekdays=tuple(spec.get("weekdays", (0, 1, 2, 3, 4))),
            country=spec.get("country", ""),
            extra_holidays=frozenset(date.fromisoformat(d) for d in spec.get("holidays", ())),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_working_day(self, day: date) -> bool:
        if day.weekday() not in self.weekdays or day in self.extra_holidays:
            return False
        return not (self.country and day in _country_holidays(self.country, day.year))

    def _window(self, day: date) -> tuple[datetime, datetime]:
        zone = self.zone
        return datetime.combine(day, self.start, zone), datetime.combine(day, self.end, zone)

    def add(self, moment: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of working time after ``moment`` (UTC)."""
        remaining = duration
        local = moment.astimezone(self.zone)
        day = local.date()
        for _ in range(MAX_DAYS):
            if self.is_working_day(day):
                opens, closes = self._window(day)
                begin = max(opens, local)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(UTC)
                    remaining -= available
            day += timedelta(days=1)
        raise ValueError("the norm does not fit in ten years of working days")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two moments (zero when ``end`` is before ``start``)."""
        if end <= start:
            return timedelta(0)
        total = timedelta(0)
        local_start, local_end = start.astimezone(self.zone), end.astimezone(self.zone)
        day = local_start.date()
        for _ in range(MAX_DAYS):
            if day > local_end.date():
                break
            if self.is_working_day(day):
                opens, closes = self._window(day)
                begin, finish = max(opens, local_start), min(closes, local_end)
                if finish > begin:
                    total += finish - begin
            day += timedelta(days=1)
        return total


@lru_cache(maxsize=64)
def _country_holidays(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


def norm_duration(norm: dict[str, Any]) -> timedelta:
    """``{"hours": 8}``, ``{"days": 2, "minutes": 30}`` -> timedelta."""
    return timedelta(
        days=norm.get("days", 0),
        hours=norm.get("hours", 0),
        minutes=norm.get("minutes", 0),
    )


def due_at(moment: datetime, norm: dict[str, Any] | None, calendar: BusinessCalendar) -> datetime | None:
    """When a norm that starts at ``moment`` runs out; ``None`` when there is no norm."""
    if not norm:
        return None
    duration = norm_duration(norm)
    if norm.get("calendar", "business") == "business":
        return calendar.add(moment, duration)
    return moment + duration


def elapsed(
    start: datetime, end: datetime, norm: dict[str, Any] | None, calendar: BusinessCalendar
) -> timedelta:
    """Time spent, counted the way the norm counts (business or calendar time)."""
    if norm and norm.get("calendar", "business") == "business":
        return calendar.between(start, end)
    return max(end - start, timedelta(0))
