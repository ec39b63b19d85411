"""Which silence or maintenance window covers an incident at a time: the one answer, used by the
deliveries (to hold notifications), their release, the incident strip and panel, and the admin.

A silence covers an incident when every matcher it sets (pipeline, account, rule) matches, from
`starts_at` (included) to `ends_at` (excluded). A maintenance window covers its pipelines during
each occurrence: on each of its weekdays, from `start_time` on the wall clock of its time zone, for
`duration_minutes` of real time. So a Tuesday 22:00 Europe/Berlin window starts at 21:00 UTC in
winter and 20:00 UTC in summer; a start that falls in a spring-forward gap (02:30 on the last
Sunday of March) begins at the first real moment after it (03:30), and one that falls in the hour
repeated in autumn begins at its first pass. An occurrence may run past midnight (and into the
next weekday); it still belongs to the day it started.

When several cover an incident, the one that ends last is the answer (the incident stays silenced
until then). `load(at)` reads what is in effect at `at` in a few queries, so a page that shows many
incidents asks `Covers.find` per incident without asking the database again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q

from pipelines import clock
from pipelines.models import Incident, MaintenanceWindow, Silence

#: How many days before `at` an occurrence that covers `at` can have started (the longest window is a week).
LOOKBACK_DAYS = 8


@dataclass(frozen=True)
class Cover:
    """What silences an incident now, and until when: a silence or one occurrence of a window."""

    ends_at: datetime
    reason: str
    by: str
    silence: Silence | None = None
    window: MaintenanceWindow | None = None

    @property
    def source(self) -> str:
        if self.window is not None:
            return f"maintenance window “{self.window.name}”"
        return f"silence #{self.silence.pk}"

    def label(self, at: datetime | None = None) -> str:
        """ "silenced until 14:00 UTC (deploying v2, by alice)" — the date too when it is not today."""
        at = at or clock.now()
        end = self.ends_at.astimezone(UTC)
        when = f"{end:%H:%M} UTC" if end.date() == at.astimezone(UTC).date() else f"{end:%Y-%m-%d %H:%M} UTC"
        by = f", by {self.by}" if self.by else ""
        what = f"{self.window.name}: " if self.window is not None else ""
        return f"silenced until {when} ({what}{self.reason}{by})"


def occurrence(window: MaintenanceWindow, at: datetime) -> tuple[datetime, datetime] | None:
    """The (start, end) in UTC of the occurrence of `window` in effect at `at`, or None. Pure."""
    zone = window.zone
    local_day = at.astimezone(zone).date()
    length = timedelta(minutes=window.duration_minutes)
    days = set(window.weekdays or [])
    found = None
    for back in range(LOOKBACK_DAYS):
        day = local_day - timedelta(days=back)
        if day.weekday() not in days:
            continue
        # The wall-clock start (fold=0: an ambiguous time is its first pass; a missing one maps to
        # the moment after the gap), then real time from there.
        start = datetime.combine(day, window.start_time, tzinfo=zone).astimezone(UTC)
        end = start + length
        if start <= at < end and (found is None or end > found[1]):
            found = (start, end)
    return found


def _matches(silence: Silence, pipeline_id: int, account_id: int | None, rule: str) -> bool:
    return (
        (silence.pipeline_id is None or silence.pipeline_id == pipeline_id)
        and (silence.account_id is None or silence.account_id == account_id)
        and (not silence.rule or silence.rule == rule)
    )


@dataclass
class Covers:
    """The silences and enabled windows in effect at `at` (see `load`), matched in memory."""

    at: datetime
    silences: list[Silence]
    windows: list[tuple[MaintenanceWindow, datetime, set[int]]]  # (window, this occurrence's end, its pipelines)

    def find(self, pipeline_id: int, account_id: int | None, rule: str) -> Cover | None:
        """The cover of an incident of this pipeline (of this account) and rule that ends last, or None."""
        best: Cover | None = None
        for s in self.silences:
            if _matches(s, pipeline_id, account_id, rule) and (best is None or s.ends_at > best.ends_at):
                best = Cover(ends_at=s.ends_at, reason=s.reason, by=s.created_by, silence=s)
        for w, end, pipelines in self.windows:
            if pipeline_id in pipelines and (best is None or end > best.ends_at):
                best = Cover(ends_at=end, reason=w.reason, by=w.created_by, window=w)
        return best

    def __bool__(self) -> bool:
        return bool(self.silences or self.windows)


def load(at: datetime | None = None, pipeline_ids=None) -> Covers:
    """What is in effect at `at`, optionally only what can cover these pipelines (two or three queries)."""
    at = at or clock.now()
    silences = Silence.objects.filter(starts_at__lte=at, ends_at__gt=at)
    windows = MaintenanceWindow.objects.filter(enabled=True)
    if pipeline_ids is not None:
        silences = silences.filter(Q(pipeline__isnull=True) | Q(pipeline_id__in=pipeline_ids))
        windows = windows.filter(pipelines__in=pipeline_ids).distinct()
    in_effect = []
    for w in windows.prefetch_related("pipelines"):
        span = occurrence(w, at)
        if span is not None:
            in_effect.append((w, span[1], {p.pk for p in w.pipelines.all()}))
    return Covers(at=at, silences=list(silences), windows=in_effect)


def covering(incident: Incident, at: datetime | None = None) -> Cover | None:
    """The silence or maintenance window that covers this incident at `at` (default: now), or None."""
    at = at or clock.now()
    account_id = incident.pipeline.account_id
    return load(at, [incident.pipeline_id]).find(incident.pipeline_id, account_id, incident.rule)
