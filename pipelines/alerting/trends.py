"""Trends from recent history: drain rate and ETA, time to message loss. Pure functions, no I/O.

Inputs are lists of (time, value) points, oldest first, with None values skipped. A trend is the
least-squares slope over the window given, so one noisy sample does not flip the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pipelines.formatting import human_minutes

Point = tuple[datetime, float | int | None]


def slope_per_minute(points: Iterable[Point]) -> float | None:
    """Least-squares slope of the values, in units per minute; None with fewer than 2 points."""
    pts = [(t.timestamp() / 60.0, float(v)) for t, v in points if v is not None]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


@dataclass(frozen=True)
class Drain:
    """How the backlog moves: `rate` in messages per minute (negative: draining)."""

    backlog: int | None
    rate: float | None

    @property
    def eta_minutes(self) -> float | None:
        """Minutes until the backlog is empty at the current rate; None when not draining."""
        if not self.backlog:
            return 0.0 if self.backlog == 0 else None
        if self.rate is None or self.rate >= 0:
            return None
        return self.backlog / -self.rate

    @property
    def label(self) -> str:
        if self.backlog is None:
            return "no data"
        if self.backlog == 0 and (self.rate is None or self.rate <= 0.5):
            return "empty"
        if self.rate is None:
            return "steady"
        if abs(self.rate) < 0.5:
            return "steady"
        if self.rate > 0:
            return f"growing +{self.rate:,.0f}/min"
        eta = self.eta_minutes
        return f"drains in ~{human_minutes(eta)}" if eta is not None else "draining"


def drain(points: Sequence[Point], backlog: int | None) -> Drain:
    """The backlog's trend from recent (time, visible) points."""
    return Drain(backlog=backlog, rate=slope_per_minute(points))


def time_to_loss(age_points: Sequence[Point], retention: int | None, at: datetime) -> float | None:
    """Seconds until the oldest message reaches the retention period at the current trend.

    The oldest message ages one second per second while the consumer does not reach it; a
    falling age means the queue is being worked through and nothing is on course to expire.
    Returns 0 when the age is already at the retention period, None when no loss is in sight.
    """
    if not retention:
        return None
    pts = [(t, v) for t, v in age_points if v is not None]
    if not pts:
        return None
    last_t, age = pts[-1]
    # The newest value, carried forward to now (CloudWatch lags by a few minutes).
    rate = slope_per_minute(pts)
    if rate is None:
        rate = 60.0 if age > 0 else 0.0
    per_second = rate / 60.0
    if age >= retention:
        return 0.0
    if per_second <= 0.05:  # flat or falling: being worked through
        return None
    age_now = age + per_second * max(0.0, (at - last_t).total_seconds())
    if age_now >= retention:
        return 0.0
    return (retention - age_now) / per_second
