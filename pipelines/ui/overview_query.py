"""What the overview lists, read from its query string and answered by the database.

A pipeline's health as of now is worked out in SQL (the same rules as `Pipeline.current_health`:
disabled, then the stored findings, then staleness, which depends on the clock), so the
database can filter, count and order 10,000 pipelines and hand back one page of them; the
per-row work (trend, sparkline, budget, incidents) is then done for that page only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest

from pipelines.models import Health, Pipeline
from pipelines.registry.tags import TagError, filter_by_group, filter_by_tag, parse_tag
from pipelines.ui.access import account_filter

#: Rows per page: the first page's size does not grow with the fleet.
PAGE_SIZE = 50
#: The health values listed first; the rest of a large fleet is shown as counts.
PROBLEMS = (Health.CRITICAL, Health.WARNING, Health.STALE)
#: `health=` beyond a health value: problems only, or every pipeline.
SCOPES = ("problems", "all")
#: `group=` for the pipelines that have no group.
NO_GROUP = "-"
MAX_TEXT = 200


def _text(value: str, limit: int = MAX_TEXT) -> str:
    """A query-string value as a filter: trimmed, NUL-free (Postgres refuses NUL in text), bounded."""
    return value.replace("\x00", "").strip()[:limit]


def _page_number(value: str) -> int:
    return int(value) if value.isascii() and value.isdigit() and 0 < len(value) < 7 and int(value) > 0 else 1


@dataclass(frozen=True)
class Selection:
    """The overview's filters: search, account, group, tag, health scope and page."""

    q: str = ""
    account: str = ""  # as given; `account_id` is the id it names, if any
    group: str = ""
    tag: str = ""
    health: str = ""  # "", "problems", "all" or a Health value
    page: int = 1
    error: str = ""  # why a filter was left out, said on the page

    @classmethod
    def from_query(cls, query) -> Selection:
        health = query.get("health", "")
        tag, error = _text(query.get("tag", "")), ""
        if tag:
            try:
                parse_tag(tag)
            except TagError as exc:
                tag, error = "", f"{exc} The tag filter is left out."
        return cls(
            q=_text(query.get("q", "")),
            account=_text(query.get("account", ""), 20),
            group=_text(query.get("group", ""), 100),
            tag=tag,
            health=health if health in SCOPES or health in Health.values else "",
            page=_page_number(query.get("page", "")),
            error=error,
        )

    @property
    def account_id(self) -> int | None:
        return account_filter(self.account)

    @property
    def narrowed(self) -> bool:
        return bool(self.q or self.account_id is not None or self.group or self.tag or self.health)

    def params(self, **changes) -> str:
        """This selection as a query string (with `changes`), page 1 unless a page is given."""
        values = {"page": 1, **changes}
        sel = replace(self, **values)
        pairs = [
            ("q", sel.q),
            ("account", sel.account if sel.account_id is not None else ""),
            ("group", sel.group),
            ("tag", sel.tag),
            ("health", sel.health),
            ("page", str(sel.page) if sel.page > 1 else ""),
        ]
        return "?" + urlencode([(k, v) for k, v in pairs if v])


def _stale_at() -> ExpressionWrapper:
    """When a pipeline's data goes stale: three poll intervals (at least three fast cycles) after its
    last sync, as `Pipeline.is_stale` says."""
    seconds = Greatest(F("poll_interval"), Value(settings.FAST_INTERVAL_SECONDS)) * Value(3)
    if connection.vendor == "sqlite":  # a duration is a number of microseconds there, not an interval
        allowed = ExpressionWrapper(seconds * Value(1_000_000), output_field=DurationField())
    else:
        allowed = ExpressionWrapper(seconds * Value(timedelta(seconds=1)), output_field=DurationField())
    return ExpressionWrapper(F("last_sync_at") + allowed, output_field=DateTimeField())


def with_health(qs: QuerySet, at: datetime) -> QuerySet:
    """Annotate `now_health` (a Health value as of `at`) and `now_rank` (0 = worst)."""
    judged = (Health.CRITICAL, Health.WARNING)
    health = Case(
        When(enabled=False, then=Value(Health.DISABLED.value)),
        When(health__in=judged, then=F("health")),
        # Never read and no finding: not synced yet; with only informational findings: OK.
        # (the cheap test first: the JSON comparison then runs only for the few never synced)
        When(Q(last_sync_at__isnull=True) & Q(health_reasons=[]), then=Value(Health.PENDING.value)),
        When(last_sync_at__isnull=True, then=Value(Health.OK.value)),
        When(_stale_at__lt=at, then=Value(Health.STALE.value)),
        default=Value(Health.OK.value),
    )
    rank = Case(*(When(now_health=h.value, then=Value(h.rank)) for h in Health), output_field=IntegerField())
    return qs.alias(_stale_at=_stale_at()).annotate(now_health=health).annotate(now_rank=rank)


def filtered(sel: Selection, at: datetime, qs: QuerySet | None = None) -> QuerySet:
    """The pipelines the search, account, group and tag select (not yet the health), with health now."""
    qs = Pipeline.objects.all() if qs is None else qs
    if sel.q:
        qs = qs.filter(Q(name__icontains=sel.q) | Q(queue_name__icontains=sel.q))
    if sel.account_id is not None:
        qs = qs.filter(account_id=sel.account_id)
    if sel.group:
        qs = qs.filter(group="") if sel.group == NO_GROUP else filter_by_group(qs, sel.group)
    if sel.tag:
        qs = filter_by_tag(qs, sel.tag)
    return with_health(qs, at)


@dataclass
class Counts:
    """How many selected pipelines have each health, per account and per group (two queries)."""

    by_account: dict[int, dict[str, int]]
    by_group: dict[str, dict[str, int]]

    @property
    def by_health(self) -> dict[str, int]:
        out = dict.fromkeys(Health.values, 0)
        for row in self.by_account.values():
            for h, n in row.items():
                out[h] += n
        return out

    @property
    def total(self) -> int:
        return sum(self.by_health.values())

    @property
    def problems(self) -> int:
        by = self.by_health
        return sum(by[h] for h in PROBLEMS)


def counts(qs: QuerySet) -> Counts:
    """One GROUP BY over the selection: a single pass over the pipelines, however many."""
    by_account: dict[int, dict[str, int]] = {}
    by_group: dict[str, dict[str, int]] = {}
    rows = qs.order_by().values_list("account_id", "group", "now_health").annotate(n=Count("pk"))
    for account_id, group, h, n in rows:
        by_account.setdefault(account_id, dict.fromkeys(Health.values, 0))[h] += n
        by_group.setdefault(group, dict.fromkeys(Health.values, 0))[h] += n
    return Counts(by_account, by_group)


def scope(sel: Selection, found: Counts) -> str:
    """Which health the list shows: the one asked for; otherwise problems only when the selection is
    more than a page (a search lists every health: the operator is looking for one pipeline)."""
    if sel.health:
        return sel.health
    if sel.q or found.total <= PAGE_SIZE:
        return "all"
    return "problems"


def in_scope(qs: QuerySet, shown: str) -> QuerySet:
    if shown == "problems":
        return qs.filter(now_health__in=[h.value for h in PROBLEMS])
    if shown in Health.values:
        return qs.filter(now_health=shown)
    return qs


def scope_size(found: Counts, shown: str) -> int:
    if shown == "problems":
        return found.problems
    if shown in Health.values:
        return found.by_health[shown]
    return found.total


def worst_first(qs: QuerySet) -> QuerySet:
    """Worst health first, then the largest backlog, then by name: `build_rows`' order, in SQL."""
    return qs.order_by("now_rank", Coalesce("backlog", 0).desc(), "name")


def page_of(qs: QuerySet, page: int, fields: tuple[str, ...]) -> list[Pipeline]:
    """One page of the selection, worst first, in two queries: the ids (a narrow sort over every
    selected row), then those rows with the fields a row shows and their account."""
    ids = list(worst_first(qs).values_list("pk", flat=True)[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])
    found = Pipeline.objects.select_related("account").only(*fields).in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def last_page(size: int) -> int:
    return max(1, -(-size // PAGE_SIZE))
