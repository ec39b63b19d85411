"""Trends from recent history: drain rate and ETA, time to message loss. Pure functions, no I/O.

Inputs are lists of (time, value) points, oldest first, with None values skipped. A trend is a
least-squares slope over the newest readings, so one noisy sample does not flip the verdict, and a
net change within noise reads as steady. The README's "Trend and time to loss" defines both.
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


#: The backlog trend reads the readings of the last this many minutes (at least two poll intervals):
#: the live backlog now, not a longer window that lags behind it.
DRAIN_WINDOW_MINUTES = 5
#: A backlog that moves too slowly to show within that window is read over this many times it.
SLOW_WINDOW_FACTOR = 4
#: SQS's counts are approximate: a step between readings smaller than STEP_NOISE of the level (and
#: NOISE_MESSAGES) is jitter, and so is a net change smaller than NET_NOISE of it.
NOISE_MESSAGES = 2
STEP_NOISE = 0.01
NET_NOISE = 0.03
#: How far back the oldest message's age is read (CloudWatch publishes it a few minutes late).
AGE_WINDOW_MINUTES = 20
#: An age rising slower than this (seconds per second) is being worked through, not stuck.
AGE_RISING = 0.05


@dataclass(frozen=True)
class Drain:
    """How the backlog moves: `rate` in messages per minute (negative: draining; 0: steady; None:
    unknown, fewer than two readings in the window)."""

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
            return "trend unknown"
        if abs(self.rate) < 0.5:
            return "steady"
        if self.rate > 0:
            return f"growing +{self.rate:,.0f}/min"
        eta = self.eta_minutes
        return f"drains in ~{human_minutes(eta)}" if eta is not None else "draining"


def recent(points: Sequence[Point], at: datetime, minutes: float) -> list[tuple[datetime, float]]:
    """The points of the last `minutes` before `at` that have a value, oldest first."""
    since = at.timestamp() - 60 * minutes
    return [(t, float(v)) for t, v in points if v is not None and since < t.timestamp() <= at.timestamp()]


def since_last_turn(pts: list[tuple[datetime, float]], noise: float) -> tuple[list[tuple[datetime, float]], int]:
    """The newest readings since the backlog last changed direction, and how many of their steps
    moved more than `noise` (steps within it count as flat and never end the run)."""
    direction, moves, start = 0, 0, len(pts) - 1
    for i in range(len(pts) - 1, 0, -1):
        step = pts[i][1] - pts[i - 1][1]
        if abs(step) > noise:
            sign = 1 if step > 0 else -1
            if direction and sign != direction:
                break
            direction, moves = sign, moves + 1
        start = i - 1
    run = pts[start:]
    while len(run) > 2 and abs(run[1][1] - run[0][1]) <= noise:  # flat before the move began
        run = run[1:]
    return run, moves


def drain(
    points: Sequence[Point], backlog: int | None, at: datetime, window_minutes: float = DRAIN_WINDOW_MINUTES
) -> Drain:
    """The backlog's trend from the (time, visible) readings of the last `window_minutes` before `at`.

    The rate is the least-squares slope of the newest readings since the backlog last changed
    direction, so it follows the live backlog through a spike and its drain, and its sign is what
    the newest readings did. Steady when no step between readings moved beyond jitter (STEP_NOISE
    of the level), or the run's net change is within NET_NOISE of it. Fewer than two readings in
    the window: unknown.
    """
    pts = recent(points, at, window_minutes)
    if len(pts) < 2:
        return Drain(backlog=backlog, rate=None)
    level = max(v for _, v in pts)
    run, moves = since_last_turn(pts, max(NOISE_MESSAGES, STEP_NOISE * level))
    net = run[-1][1] - run[0][1]
    slope = slope_per_minute(run)
    if slope is None or not moves or abs(net) <= max(NOISE_MESSAGES, NET_NOISE * level):
        return Drain(backlog=backlog, rate=slow_trend(points, pts, at, window_minutes))
    return Drain(backlog=backlog, rate=slope)


def slow_trend(
    points: Sequence[Point], short: list[tuple[datetime, float]], at: datetime, window_minutes: float
) -> float:
    """A trend too slow to rise above jitter within the short window: the least-squares slope over
    SLOW_WINDOW_FACTOR times that window, when its net change is beyond NET_NOISE and the newest
    readings keep to it (their own change is at least half what that slope predicts for them).
    Otherwise 0: steady."""
    long = recent(points, at, window_minutes * SLOW_WINDOW_FACTOR)
    slope = slope_per_minute(long) if len(long) >= 3 else None
    if not slope:
        return 0.0
    net = long[-1][1] - long[0][1]
    expected = slope * (short[-1][0] - short[0][0]).total_seconds() / 60.0
    kept = expected and (short[-1][1] - short[0][1]) / expected >= 0.5
    if abs(net) <= max(NOISE_MESSAGES, NET_NOISE * max(v for _, v in long)) or net * slope <= 0 or not kept:
        return 0.0
    return slope


@dataclass(frozen=True)
class Loss:
    """When messages start expiring: `seconds` (0: now), or None with `known` (no loss in sight)
    or without it (the retention period or the oldest message's age is not known)."""

    known: bool
    seconds: float | None = None


def time_to_loss(
    age_points: Sequence[Point],
    retention: int | None,
    at: datetime,
    queued: int | None = None,
    drain_eta_minutes: float | None = None,
) -> Loss:
    """Seconds until the oldest message reaches the retention period, unless it is consumed first.

    The oldest message ages one second per second until it is consumed, so it expires after
    retention − its age now (its age at the newest reading of the last AGE_WINDOW_MINUTES, plus the
    time since): a projection never exceeds that. No loss is in sight when the queue is empty, when
    the oldest message's age is flat or falling (the consumer reaches the oldest messages), or when
    the backlog drains (at its current rate: `drain_eta_minutes`) before the oldest message would
    expire. Unknown when the retention period is unknown, or the queue holds messages (`queued`:
    visible and in flight) and no age was read lately.
    """
    if not retention:
        return Loss(known=False)
    pts = recent(age_points, at, AGE_WINDOW_MINUTES)
    if not pts:
        return Loss(known=queued == 0)
    last_t, age = pts[-1]
    if age >= retention:
        return Loss(known=True, seconds=0.0)
    rising = slope_per_minute(pts)
    if rising is not None and rising / 60.0 <= AGE_RISING:
        return Loss(known=True)
    if queued == 0:
        return Loss(known=True)
    remaining = retention - (age + max(0.0, (at - last_t).total_seconds()))
    if remaining <= 0:
        return Loss(known=True, seconds=0.0)
    if drain_eta_minutes is not None and 60.0 * drain_eta_minutes < remaining:
        return Loss(known=True)
    return Loss(known=True, seconds=remaining)
