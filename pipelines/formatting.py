"""How numbers, durations and moments read on pages, in commands and in notifications."""

from __future__ import annotations

from datetime import datetime


def human_minutes(minutes: float | None) -> str:
    if minutes is None:
        return "–"
    if minutes < 1:
        return "<1 min"
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def human_seconds(seconds: float | int | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return human_minutes(seconds / 60)


def duration(seconds: int) -> str:
    """A configured duration in its natural unit: '30 s', '15 min', '4 days'."""
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
    return f"{seconds:,} s"


def ago(t: datetime, at: datetime) -> str:
    """How long before `at` the moment `t` was: '12 seconds ago', '5 min ago', '3 h ago', '2 days ago'."""
    secs = int((at - t).total_seconds())
    if secs < 60:
        return "1 second ago" if secs == 1 else f"{max(secs, 0)} seconds ago"
    if secs < 7200:
        return f"{secs // 60} min ago"
    return f"{secs // 3600} h ago" if secs < 172800 else f"{secs // 86400} days ago"


def count(value: int | None) -> str:
    """A count with thousands separators; '–' when unknown."""
    return "–" if value is None else f"{value:,}"


def figure(value: float | None) -> str:
    """A measured value: whole numbers with separators, small fractions to three significant digits."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
