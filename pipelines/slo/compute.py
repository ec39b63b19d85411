"""SLO arithmetic on counts: pure functions, tested on hand-made histories.

Two objectives per pipeline, and two more where an API is discovered, over a rolling SLO_WINDOW_DAYS:

- **Freshness**: the share of *measured* minutes whose oldest message was younger than the SLA
  (a minute is bad when CloudWatch's ApproximateAgeOfOldestMessage ≥ the SLA). A minute without an
  age reading is unknown, neither good nor bad.
- **Delivery**: the share of the messages sent to the queue (NumberOfMessagesSent) that did not
  reach the DLQ; DLQ arrivals are the increases of the DLQ's visible count (SQS does not count moves
  into a DLQ as sends). Messages that expire are not observable in SQS's metrics, so they are not
  counted here (the time-to-loss rule watches for them).
- **API availability**: the share of API requests (API Gateway's Count) that did not answer 5xx, over
  the minutes with both a request count and a 5xx count.
- **API latency**: the share of *measured* minutes (those with a p99 latency, i.e. with requests) whose
  p99 latency was under the threshold; the target is the freshness target. Percentiles do not add up,
  so this is not "99 % of requests were fast": a slow minute is one where at least about 1 % of its
  requests (with under 100 requests, its slowest ones) took the threshold or longer.

The error budget is the bad share the objective allows (1 − target) of what was measured; burn rate
is the bad share over a window divided by that allowance (1× spends the budget exactly over the SLO
window). With less than MIN_MEASURED_MINUTES measured the SLO is unknown, never perfect.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from datetime import datetime

from django.conf import settings

from pipelines.models import Pipeline

MIN_MEASURED_MINUTES = 24 * 60  # an SLO over less than a day of data says nothing
MIN_WINDOW_SHARE = 0.25  # a burn window is judged only when this share of its minutes was measured
#: The burn-rate windows, in minutes: the SRE workbook's pairs (see burn.py).
BURN_WINDOWS = (5, 30, 60, 6 * 60, 3 * 24 * 60)
FRESHNESS, DELIVERY = "freshness", "delivery"
API_AVAILABILITY, API_LATENCY = "api_availability", "api_latency"
#: How sentences name each objective (the rule's finding, the page).
TITLES = {API_AVAILABILITY: "API availability", API_LATENCY: "API latency"}
NO_API = "no API discovered: not measured"


def window_minutes() -> int:
    return settings.SLO_WINDOW_DAYS * 24 * 60


@dataclass(frozen=True)
class Counts:
    """What one pipeline's history holds over one window."""

    age_minutes: int = 0  # minutes with an oldest-message age
    late_minutes: int = 0  # of which the age had reached the SLA
    dlq_minutes: int = 0  # minutes with a DLQ count
    dlq_arrivals: int = 0  # increases of the DLQ's visible count
    sent: int = 0  # messages sent to the queue
    api_minutes: int = 0  # minutes with both an API request count and a 5xx count
    api_requests: int = 0  # API requests in those minutes
    api_5xx_requests: int = 0  # of which answered 5xx
    api_latency_minutes: int = 0  # minutes with an API p99 latency
    api_slow_minutes: int = 0  # of which the p99 had reached the latency threshold

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return astuple(self)


def freshness_target(p: Pipeline) -> float:
    """The freshness objective, in percent of measured minutes."""
    return p.slo_freshness_target if p.slo_freshness_target is not None else settings.SLO_FRESHNESS_TARGET


def dlq_max_percent(p: Pipeline) -> float:
    """The delivery objective: at most this percent of sent messages reach the DLQ."""
    return p.slo_dlq_max_percent if p.slo_dlq_max_percent is not None else settings.SLO_DLQ_MAX_PERCENT


def api_5xx_percent(p: Pipeline) -> float:
    """The API availability objective: at most this percent of API requests answer 5xx."""
    return p.slo_api_5xx_percent if p.slo_api_5xx_percent is not None else settings.SLO_API_5XX_PERCENT


def api_latency_ms(p: Pipeline) -> int:
    """The API latency objective's threshold: a minute whose p99 latency reaches it is slow."""
    return p.slo_api_latency_ms if p.slo_api_latency_ms is not None else settings.SLO_API_LATENCY_MS


@dataclass(frozen=True)
class Sli:
    """One objective over one window: how much was measured and what share of it was bad."""

    measured_minutes: int
    bad: float  # bad minutes (freshness) or DLQ arrivals (delivery)
    total: float  # measured minutes, or messages sent (at least the arrivals)
    allowed: float  # the bad share the objective allows, 0–1

    @property
    def bad_fraction(self) -> float | None:
        return self.bad / self.total if self.total else None

    @property
    def burn(self) -> float | None:
        """The bad share over the allowed one: 1× spends the budget exactly over the SLO window."""
        f = self.bad_fraction
        return None if f is None else f / self.allowed


def freshness_sli(p: Pipeline, c: Counts) -> Sli:
    return Sli(c.age_minutes, c.late_minutes, c.age_minutes, 1 - freshness_target(p) / 100)


def delivery_sli(p: Pipeline, c: Counts) -> Sli | None:
    """None when the pipeline has no DLQ. A window with more arrivals than sends (they were sent
    before it) counts every arrival against what was sent: the share is then 100 %."""
    if not p.dlq_url:
        return None
    return Sli(c.dlq_minutes, c.dlq_arrivals, max(c.sent, c.dlq_arrivals), dlq_max_percent(p) / 100)


def api_availability_sli(p: Pipeline, c: Counts) -> Sli | None:
    """None when no API is discovered. More 5xx than requests (counts reported apart) is all bad."""
    if not p.has_api:
        return None
    total = max(c.api_requests, c.api_5xx_requests)
    return Sli(c.api_minutes, c.api_5xx_requests, total, api_5xx_percent(p) / 100)


def api_latency_sli(p: Pipeline, c: Counts) -> Sli | None:
    """None when no API is discovered; the target is the freshness target."""
    if not p.has_api:
        return None
    return Sli(c.api_latency_minutes, c.api_slow_minutes, c.api_latency_minutes, 1 - freshness_target(p) / 100)


SLIS = {
    FRESHNESS: freshness_sli,
    DELIVERY: delivery_sli,
    API_AVAILABILITY: api_availability_sli,
    API_LATENCY: api_latency_sli,
}


def judged(sli: Sli | None, minutes: int) -> bool:
    """Whether a burn window has enough measured minutes (and traffic) to be judged."""
    return sli is not None and sli.total > 0 and sli.measured_minutes >= MIN_WINDOW_SHARE * minutes


@dataclass(frozen=True)
class Objective:
    """One objective over the SLO window, as the SLO page and the overview show it."""

    name: str  # FRESHNESS, DELIVERY, API_AVAILABILITY or API_LATENCY
    label: str  # "99.5 % of minutes with the oldest message younger than 15 min"
    target: float  # percent
    unit: str  # what the budget counts: "minutes" or "messages"
    sli: Sli | None
    window_minutes: int
    burns: dict[int, float | None] = field(default_factory=dict)  # window minutes → burn (None: unknown)
    reason: str = ""  # why it is unknown

    @property
    def title(self) -> str:
        """How sentences name it: "freshness", "API latency"."""
        return TITLES.get(self.name, self.name)

    @property
    def applies(self) -> bool:
        """False when the pipeline lacks what it measures (a DLQ, an API): not measured at all."""
        return self.sli is not None

    @property
    def known(self) -> bool:
        return self.sli is not None and self.sli.measured_minutes >= MIN_MEASURED_MINUTES and self.sli.total > 0

    @property
    def coverage_days(self) -> float:
        return (self.sli.measured_minutes if self.sli else 0) / 1440

    @property
    def window_days(self) -> float:
        return self.window_minutes / 1440

    @property
    def compliance(self) -> float | None:
        """Percent good over the window, None when unknown."""
        return None if not self.known else 100 * (1 - self.sli.bad_fraction)

    @property
    def budget_total(self) -> float | None:
        """The bad minutes (or messages) the objective allows over what was measured."""
        return None if not self.known else self.sli.allowed * self.sli.total

    @property
    def budget_left(self) -> float | None:
        """What is left of the budget, in its unit (negative: overspent)."""
        return None if not self.known else self.budget_total - self.sli.bad

    @property
    def budget_left_pct(self) -> float | None:
        return None if not self.known else 100 * (1 - self.sli.bad / self.budget_total)


def objectives(p: Pipeline, slo: Counts | None, burns: dict[int, Counts] | None = None) -> list[Objective]:
    """The pipeline's objectives over the SLO window from its counts (None: no data at all)."""
    c = slo or Counts()
    burns = burns or {}

    def build(name, label, target, unit, no_data="", missing=""):
        sli = SLIS[name]
        found = sli(p, c)
        reason = missing if found is None else ""
        return _objective(name, label, target, unit, found, {m: sli(p, b) for m, b in burns.items()}, reason, no_data)

    fresh, dlq, api_5xx = freshness_target(p), dlq_max_percent(p), api_5xx_percent(p)
    return [
        build(
            FRESHNESS,
            f"{fresh:g} % of minutes with the oldest message younger than {p.oldest_age_sla_label}",
            fresh,
            "minutes",
        ),
        build(
            DELIVERY,
            f"fewer than {dlq:g} % of sent messages reach the DLQ",
            100 - dlq,
            "messages",
            "no messages sent in the window",
            "no DLQ: arrivals cannot be seen",
        ),
        build(
            API_AVAILABILITY,
            f"fewer than {api_5xx:g} % of API requests answer 5xx",
            100 - api_5xx,
            "requests",
            "no API requests in the window",
            NO_API,
        ),
        build(
            API_LATENCY,
            f"{fresh:g} % of minutes with requests have a p99 latency under {api_latency_ms(p):,} ms",
            fresh,
            "minutes",
            missing=NO_API,
        ),
    ]


def _objective(name, label, target, unit, sli, burn_slis, reason="", no_data="") -> Objective:
    burns = {m: (s.burn if judged(s, m) else None) for m, s in burn_slis.items()}
    obj = Objective(name, label, target, unit, sli, window_minutes(), burns, reason)
    if not reason and not obj.known:
        measured = sli.measured_minutes / 1440 if sli else 0
        reason = f"only {measured:.1f} days measured (at least 1 needed)" if measured < 1 or not no_data else no_data
        obj = Objective(name, label, target, unit, sli, window_minutes(), burns, reason)
    return obj


def worst_budget_left(objs: list[Objective]) -> float | None:
    """The smallest budget left among the known objectives, in percent (None: none known)."""
    known = [o.budget_left_pct for o in objs if o.known]
    return min(known) if known else None


def budget_series(p: Pipeline, hourly: list[tuple[datetime, Counts]]) -> dict[str, list[tuple[str, float]]]:
    """How each known objective's budget was spent over the window: (hour, percent left after it),
    against the budget of the whole window's measured minutes (or sends), so the line ends at the
    budget left today. An objective that is unknown has no line."""
    total = sum((c for _, c in hourly), Counts())
    out = {}
    for o in objectives(p, total):
        if not o.known:
            continue
        sli = SLIS[o.name]
        spent, points = 0.0, []
        for hour, c in hourly:
            spent += sli(p, c).bad
            points.append((hour.isoformat(), round(100 * (1 - spent / o.budget_total), 2)))
        out[o.name] = points
    return out
