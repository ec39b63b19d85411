"""The spend figures from the stored history: daily usage for many pipelines in two grouped queries.

Days before today come from the hourly rollups, today from the minute rows (kept 15 days, and not
rolled up until the hour is over). A day without readings is a gap: no cost, not a zero one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db.models import Count, ExpressionWrapper, F, FloatField, Q, Sum
from django.db.models.functions import TruncDate

from pipelines.models import MetricRollup, MetricSample, Pipeline
from pipelines.spend import prices as price_table
from pipelines.spend.formula import LABELS, Cost, Part, Usage, cost, total

TREND_DAYS = 30
WEEK = 7
#: A week is judged only when at least this many of its days have this many hours of readings.
FULL_WEEK_DAYS = 6
FULL_DAY_HOURS = 20
#: ...and it delivered at least this many messages (a handful makes a noisy ratio).
MIN_WEEK_MESSAGES = 1000
COUNTS = ("lambda_invocations", "sent", "received", "deleted", "empty_receives", "api_count")


def _grouped(model, time_field: str, start: datetime, end: datetime, ids) -> list[dict]:
    qs = model.objects.filter(**{f"{time_field}__gte": start, f"{time_field}__lt": end})
    if ids is not None:
        qs = qs.filter(pipeline_id__in=list(ids))
    weighted = ExpressionWrapper(F("lambda_invocations") * F("lambda_duration_avg"), output_field=FloatField())
    return list(
        qs.annotate(day=TruncDate(time_field, tzinfo=UTC))
        .values("pipeline_id", "day")
        .annotate(
            rows=Count("id"),
            duration_ms=Sum(weighted),
            no_duration=Sum("lambda_invocations", filter=Q(lambda_duration_avg__isnull=True)),
            **{f: Sum(f) for f in COUNTS},
        )
        .order_by()
    )


def _usage(row: dict, minutes: bool) -> Usage:
    return Usage(
        hours=row["rows"] / 60 if minutes else row["rows"],
        invocations=row["lambda_invocations"],
        duration_ms=row["duration_ms"],
        invocations_without_duration=row["no_duration"] or 0,
        sent=row["sent"],
        received=row["received"],
        deleted=row["deleted"],
        empty_receives=row["empty_receives"],
        api_count=row["api_count"],
    )


def daily_usage(at: datetime, days: int = TREND_DAYS, ids=None) -> dict[int, dict[date, Usage]]:
    """{pipeline id: {UTC day: Usage}} for the last `days` days up to `at`, today included."""
    today = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    out: dict[int, dict[date, Usage]] = defaultdict(dict)
    for row in _grouped(MetricRollup, "hour", start, today, ids):
        out[row["pipeline_id"]][_day(row["day"])] = _usage(row, minutes=False)
    for row in _grouped(MetricSample, "minute", today, at + timedelta(minutes=1), ids):
        out[row["pipeline_id"]][_day(row["day"])] = _usage(row, minutes=True)
    return out


def _day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass
class Spend:
    """One pipeline's spend figures (see docs/numbers.md, Spend)."""

    pipeline: Pipeline
    days: list[tuple[date, Cost | None]]  # the last 30 (or 31) UTC days, oldest first; None: no readings
    month_to_date: Cost
    month_days: int  # days of this month so far
    month_days_with_data: int
    recent: Cost  # the last 7 complete days with readings
    recent_days: int
    as_of: str
    sources: tuple[str, ...]

    @property
    def per_day(self) -> Part:
        amount = self.recent.amount
        if amount is None or not self.recent_days:
            return Part(None, False, "no readings in the last 7 days")
        return Part(amount / self.recent_days, self.recent.complete, "; ".join(self.recent.reasons))

    @property
    def per_thousand(self) -> Part:
        return self.recent.per_thousand()

    def chart(self) -> dict:
        """The 30-day chart's data: per day, the known cost by service (null for a gap)."""
        days = self.days[-TREND_DAYS:]
        keys = list(dict.fromkeys(k for _, c in days if c for k in c.parts))
        return {
            "days": [d.isoformat() for d, _ in days],
            "series": {k: [(c.parts[k].amount if c and k in c.parts else None) for _, c in days] for k in keys},
            "labels": {k: LABELS[k] for k in keys},
            "complete": [(c.complete if c else None) for _, c in days],
            "per_thousand": [(c.per_thousand().amount if c else None) for _, c in days],
            "as_of": self.as_of,
        }


def spend_of(pipeline: Pipeline, usage: dict[date, Usage], at: datetime, polling_per_day: float | None = None) -> Spend:
    """The figures of one pipeline from its daily usage (see daily_usage); no queries."""
    table = price_table.table()
    prices = table.for_region(pipeline.account.region)
    today = at.astimezone(UTC).date()
    span = max(TREND_DAYS, today.day)  # the chart's 30 days, or the whole month on the 31st
    days = [today - timedelta(days=n) for n in range(span - 1, -1, -1)]
    costs: list[tuple[date, Cost | None]] = []
    for d in days:
        u = usage.get(d)
        share = None
        if u is not None and polling_per_day is not None:
            share = polling_per_day * (min(u.hours, 24) / 24)  # today: the hours so far
        costs.append((d, cost(pipeline, u, prices, share) if u is not None else None))
    month = [c for d, c in costs if d.month == today.month and d.year == today.year]
    recent = [c for d, c in costs if d < today][-WEEK:]
    return Spend(
        pipeline=pipeline,
        days=costs,
        month_to_date=total(c for c in month if c),
        month_days=today.day,
        month_days_with_data=sum(1 for c in month if c),
        recent=total(c for c in recent if c),
        recent_days=sum(1 for c in recent if c),
        as_of=table.as_of,
        sources=table.sources,
    )


#: The parts the anomaly judges: the pipeline's own traffic. Polling is a fixed daily amount, so
#: fewer messages would raise its share per message without anything having gone wrong.
TRAFFIC_PARTS = ("lambda", "sqs", "api")


def _week(costs: list[Cost | None]) -> float | None:
    full = [c for c in costs if c is not None and c.hours >= FULL_DAY_HOURS]
    if len(full) < FULL_WEEK_DAYS:
        return None
    week = total(full)
    per = week.per_thousand(TRAFFIC_PARTS)
    if not per.known or (week.delivered or 0) < MIN_WEEK_MESSAGES:
        return None
    return per.amount


def week_over_week(spend: Spend) -> tuple[float, float] | None:
    """(last week's, this week's) cost per 1,000 messages of the pipeline's traffic, over the last
    14 complete UTC days; None unless both weeks have enough data (see FULL_WEEK_DAYS)."""
    done = [c for d, c in spend.days[:-1]]  # today is not complete
    this, last = _week(done[-WEEK:]), _week(done[-2 * WEEK : -WEEK])
    return None if this is None or last is None else (last, this)


def spends(pipelines: list[Pipeline], at: datetime, polling: dict[int, float] | None = None) -> dict[int, Spend]:
    """The figures of many pipelines in two grouped queries (`polling`: each one's polling cost per day)."""
    usage = daily_usage(at, TREND_DAYS + 1, ids=[p.pk for p in pipelines])
    polling = polling or {}
    return {p.pk: spend_of(p, usage.get(p.pk, {}), at, polling.get(p.pk)) for p in pipelines}
