"""The rule table: the one judge of a pipeline's health.

Every pipeline has every rule in `RULES`, with defaults taken from its own thresholds; an
`AlertRule` row overrides a rule's threshold, window or on/off for one pipeline. A rule reads the
pipeline row and its recent minute rows (`history.Row`) and returns a `Finding` (how bad, and one
sentence) or None. The same finding opens the incident and becomes the health reason. Pure: no
queries, tested on hand-made series.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from pipelines.alerting.history import HISTORY_MINUTES, Row, Trend
from pipelines.formatting import human_seconds
from pipelines.models import (
    AlertRule,
    Pipeline,
    RuleKind,
    Severity,
)
from pipelines.slo import burn
from pipelines.slo.compute import Counts

FAST, METRICS, CLOCK = "fast", "metrics", "clock"  # what triggers an evaluation
CRITICAL_FACTOR = 5  # a count or rate this many times its threshold is critical
LOSS_CRITICAL_PCT = 80.0  # oldest message at this share of the retention period: critical
#: Messages projected to start expiring within these: critical / a warning (documented in the README).
LOSS_CRITICAL_SECONDS = 6 * 3600
LOSS_WARNING_SECONDS = 24 * 3600
MIN_INVOCATIONS = 10  # error rates over fewer invocations are noise
MIN_REQUESTS = 20  # likewise API requests for the 5xx rate
MIN_BASELINE_POINTS = 20  # minutes of latency a baseline needs
MIN_LATENCY_RISE_MS = 50.0  # and the rise must be at least this, whatever the ratio
CURRENT_DATA = timedelta(minutes=15)  # CloudWatch data older than this says nothing about now


@dataclass(frozen=True)
class Finding:
    """A rule firing: how bad, and one sentence saying what an operator would see."""

    severity: Severity
    summary: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Config:
    enabled: bool
    threshold: float
    minutes: int | None  # None: the rule has no window


@dataclass(frozen=True)
class Context:
    pipeline: Pipeline
    rows: list[Row]  # oldest first
    trend: Trend | None
    at: datetime
    backlog_limit: float | None = None  # the backlog rule's effective threshold (the forecast aims at it)
    slo: dict[int, Counts] | None = None  # SLO counts per window in minutes (slo.windows.load)


@dataclass(frozen=True)
class RuleDef:
    kind: RuleKind
    sources: tuple[str, ...]
    threshold: Callable[[Pipeline], float]  # the default, from the pipeline's own settings
    minutes: int | None  # the default window or duration; None: the rule reads the latest values only
    describe: Callable[[float, int], str]  # "backlog above 1,000 for 5 min"
    check: Callable[[Context, Config], Finding | None]
    applies: Callable[[Pipeline], bool] = lambda p: True

    @property
    def label(self) -> str:
        return self.kind.label

    @property
    def has_window(self) -> bool:
        return self.minutes is not None

    def config(self, pipeline: Pipeline, override: AlertRule | None = None) -> Config:
        if override is None:
            return Config(True, float(self.threshold(pipeline)), self.minutes)
        threshold = override.threshold if override.threshold is not None else self.threshold(pipeline)
        return Config(
            override.enabled, float(threshold), (override.minutes or self.minutes) if self.has_window else None
        )

    def describe_default(self, pipeline: Pipeline) -> str:
        return self.describe(float(self.threshold(pipeline)), self.minutes)


def _points(rows: list[Row], name: str) -> list[tuple[datetime, float]]:
    return [(r.minute, getattr(r, name)) for r in rows if getattr(r, name) is not None]


def _window(rows: list[Row], name: str, minutes: int, at: datetime) -> tuple[list[float], list[float]]:
    """The values of the last `minutes` minutes ending at the newest minute that has the field
    (CloudWatch data lags), and the values before that window. Nothing when even the newest is
    older than CURRENT_DATA: an idle function publishes nothing, and an old burst is not news."""
    pts = _points(rows, name)
    if not pts or at - pts[-1][0] > CURRENT_DATA:
        return [], []
    start = pts[-1][0] - timedelta(minutes=minutes)
    return [v for t, v in pts if t > start], [v for t, v in pts if t <= start]


def _held_above(rows: list[Row], name: str, threshold: float, minutes: int) -> bool:
    """True when the value has been above the threshold for at least `minutes`: some point at
    least that old is above it, and so is every point since."""
    pts = _points(rows, name)
    if not pts or pts[-1][1] <= threshold:
        return False
    since = pts[-1][0] - timedelta(minutes=minutes)
    for t, v in reversed(pts):
        if v <= threshold:
            return False
        if t <= since:
            return True
    return False


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def _severity(value: float, threshold: float) -> Severity:
    return Severity.CRITICAL if threshold > 0 and value >= CRITICAL_FACTOR * threshold else Severity.WARNING


def check_backlog(c: Context, cfg: Config) -> Finding | None:
    if not _held_above(c.rows, "visible", cfg.threshold, cfg.minutes):
        return None
    backlog = c.pipeline.backlog if c.pipeline.backlog is not None else c.rows[-1].visible
    return Finding(
        _severity(backlog, cfg.threshold),
        f"backlog {backlog:,} above {cfg.threshold:,.0f} for {cfg.minutes} min or more",
        backlog,
        cfg.threshold,
    )


def check_oldest_age(c: Context, cfg: Config) -> Finding | None:
    age = c.pipeline.oldest_age
    if age is None or age <= cfg.threshold:
        return None
    return Finding(
        Severity.WARNING,
        f"oldest message {human_seconds(age)} old, above the {human_seconds(cfg.threshold)} SLA",
        age,
        cfg.threshold,
    )


def check_time_to_loss(c: Context, cfg: Config) -> Finding | None:
    """Past the threshold share of the retention period, or projected to lose messages within a
    day (critical: 80%, or within LOSS_CRITICAL_SECONDS), the horizons the README documents."""
    p = c.pipeline
    if p.oldest_age is None or not p.retention_period:
        return None
    used = _pct(p.oldest_age, p.retention_period)
    ttl = c.trend.ttl if c.trend is not None else None
    soon = ttl is not None and ttl < LOSS_WARNING_SECONDS
    if used < cfg.threshold and not soon:
        return None
    critical = used >= max(LOSS_CRITICAL_PCT, cfg.threshold) or (ttl is not None and ttl < LOSS_CRITICAL_SECONDS)
    severity = Severity.CRITICAL if critical else Severity.WARNING
    when = (
        "messages are expiring now"
        if ttl == 0
        else f"messages start expiring in ~{human_seconds(ttl)}"
        if ttl is not None
        else f"messages expire after {human_seconds(p.retention_period)}"
    )
    return Finding(
        severity,
        f"oldest message at {used:.0f}% of the {human_seconds(p.retention_period)} retention period; {when}",
        round(used, 1),
        cfg.threshold,
    )


def check_dlq(c: Context, cfg: Config) -> Finding | None:
    depth = c.pipeline.dlq_depth
    if depth is None or depth <= 0 or depth < cfg.threshold:
        return None
    recent, before = _window(c.rows, "dlq_visible", cfg.minutes, c.at)
    # SQS does not count moves into a DLQ as sends: growth is read off its visible count.
    base = before[-1] if before else (recent[0] if recent else depth)
    grew = depth - min([base, *recent])
    if grew > 0:
        return Finding(
            Severity.CRITICAL,
            f"{depth:,} message(s) in the DLQ, {grew:+,} in the last {cfg.minutes} min",
            depth,
            cfg.threshold,
        )
    return Finding(Severity.WARNING, f"{depth:,} message(s) in the DLQ", depth, cfg.threshold)


def check_throttles(c: Context, cfg: Config) -> Finding | None:
    throttles = sum(_window(c.rows, "throttles", cfg.minutes, c.at)[0])
    if throttles <= cfg.threshold:
        return None
    ran = sum(_window(c.rows, "invocations", cfg.minutes, c.at)[0])
    return Finding(
        Severity.WARNING,
        f"{throttles:,.0f} Lambda throttle(s) in {cfg.minutes} min ({ran:,.0f} invocation(s) ran)",
        throttles,
        cfg.threshold,
    )


def _rate_check(c: Context, cfg: Config, part: str, whole: str, minimum: int, what: str, of: str) -> Finding | None:
    total = sum(_window(c.rows, whole, cfg.minutes, c.at)[0])
    if total < minimum:
        return None
    failed = sum(_window(c.rows, part, cfg.minutes, c.at)[0])
    rate = _pct(failed, total)
    if rate <= cfg.threshold:
        return None
    return Finding(
        _severity(rate, cfg.threshold),
        f"{what} at {rate:.1f}% of {of} over {cfg.minutes} min "
        f"({failed:,.0f} of {total:,.0f}), above {cfg.threshold:g}%",
        round(rate, 2),
        cfg.threshold,
    )


def check_errors(c: Context, cfg: Config) -> Finding | None:
    return _rate_check(c, cfg, "errors", "invocations", MIN_INVOCATIONS, "Lambda errors", "invocations")


def check_api_5xx(c: Context, cfg: Config) -> Finding | None:
    return _rate_check(c, cfg, "api_5xx", "api_count", MIN_REQUESTS, "API 5xx responses", "requests")


def check_api_latency(c: Context, cfg: Config) -> Finding | None:
    minutes = min(cfg.minutes, HISTORY_MINUTES - MIN_BASELINE_POINTS)  # leave room for the baseline
    recent, before = _window(c.rows, "api_latency", minutes, c.at)
    if not recent or len(before) < MIN_BASELINE_POINTS:
        return None
    # The median of the trailing minutes: periodic spikes do not drag the baseline up with them.
    baseline = statistics.median(before)
    current = statistics.fmean(recent)
    if baseline <= 0 or current < cfg.threshold * baseline or current - baseline < MIN_LATENCY_RISE_MS:
        return None
    return Finding(
        Severity.WARNING,
        f"API latency {current:,.0f} ms over {minutes} min, "
        f"{current / baseline:.1f}× its trailing baseline of {baseline:,.0f} ms",
        round(current, 1),
        round(cfg.threshold * baseline, 1),
    )


def check_stale(c: Context, cfg: Config) -> Finding | None:
    """Queue reads failing, no queue read for three poll intervals, or CloudWatch fetches failing
    for three metrics intervals (then every CloudWatch rule is blind)."""
    p = c.pipeline
    if p.consecutive_failures >= cfg.threshold:
        return Finding(
            Severity.WARNING,
            f"{p.consecutive_failures} syncs in a row failed: {(p.last_error or 'no reason recorded')[:300]}",
            p.consecutive_failures,
            cfg.threshold,
        )
    if p.last_sync_at is not None and p.is_stale(c.at):
        age = int((c.at - p.last_sync_at).total_seconds() // 60)
        return Finding(
            Severity.WARNING,
            f"no data for {age} min: its collection cycles are not running or not finishing",
            age,
            None,
        )
    metrics_late = timedelta(seconds=3 * settings.METRICS_INTERVAL_SECONDS)
    if p.metrics_error and (p.metrics_synced_until is None or c.at - p.metrics_synced_until > metrics_late):
        return Finding(Severity.WARNING, f"CloudWatch metrics failing: {p.metrics_error[:300]}", None, None)
    return None


def check_forecast(c: Context, cfg: Config) -> Finding | None:
    p = c.pipeline
    rate = c.trend.drain.rate if c.trend is not None else None
    if rate is None or rate <= 0 or p.backlog is None:
        return None
    limit = c.backlog_limit if c.backlog_limit is not None else p.backlog_threshold
    minutes = max(0.0, (limit - p.backlog) / rate)
    if minutes > cfg.threshold:
        return None
    if p.backlog > limit:
        text = f"backlog {p.backlog:,} above {limit:,.0f} and still growing ({rate:+,.0f}/min)"
    else:
        text = f"backlog {p.backlog:,} on course to pass {limit:,.0f} in ~{minutes:.0f} min ({rate:+,.0f}/min)"
    return Finding(Severity.WARNING, text, round(minutes, 1), cfg.threshold)


def check_slo_burn(kind: RuleKind) -> Callable[[Context, Config], Finding | None]:
    """A multi-window burn-rate pair (slo/burn.py); the threshold is the burn rate on both windows."""

    def check(c: Context, cfg: Config) -> Finding | None:
        found = burn.check(c.pipeline, c.slo, burn.PAIRS[kind], cfg.threshold)
        return found and Finding(found.severity, found.summary, round(found.burn, 2), cfg.threshold)

    return check


def _slo_rule(pair: burn.Pair) -> RuleDef:
    return RuleDef(
        pair.kind,
        (METRICS,),
        lambda p: pair.factor,
        None,
        lambda t, m: (
            f"an SLO's error budget burning {t:g}× over {burn.span(pair.long)} and {burn.span(pair.short)} "
            f"({pair.severity.label.lower()})"
        ),
        check_slo_burn(pair.kind),
    )


def _has_consumer(p: Pipeline) -> bool:
    return bool(p.function_name)


def _has_api(p: Pipeline) -> bool:
    return bool(p.api_id)


RULES: dict[RuleKind, RuleDef] = {
    r.kind: r
    for r in [
        RuleDef(
            RuleKind.BACKLOG,
            (FAST,),
            lambda p: p.backlog_threshold,
            5,
            lambda t, m: f"backlog above {t:,.0f} for {m} min",
            check_backlog,
        ),
        RuleDef(
            RuleKind.FORECAST,
            (FAST,),
            lambda p: 30,
            None,
            lambda t, m: f"backlog trend crosses the backlog threshold within {t:,.0f} min",
            check_forecast,
        ),
        RuleDef(
            RuleKind.DLQ,
            (FAST,),
            lambda p: max(1, p.dlq_threshold),
            15,
            lambda t, m: f"{t:,.0f}+ message(s) in the DLQ (critical while it grew in the last {m} min)",
            check_dlq,
            lambda p: bool(p.dlq_url),
        ),
        RuleDef(
            RuleKind.OLDEST_AGE,
            (METRICS,),
            lambda p: p.oldest_age_sla,
            None,
            lambda t, m: f"oldest message older than {human_seconds(t)}",
            check_oldest_age,
        ),
        RuleDef(
            RuleKind.TIME_TO_LOSS,
            (METRICS,),
            lambda p: 50,
            None,
            lambda t, m: (
                f"oldest message past {t:g}% of the retention period (critical at "
                f"{max(LOSS_CRITICAL_PCT, t):g}%), or messages expiring within a day at the current "
                "trend (critical: 6 h)"
            ),
            check_time_to_loss,
        ),
        RuleDef(
            RuleKind.THROTTLES,
            (METRICS,),
            lambda p: 0,
            10,
            lambda t, m: f"more than {t:,.0f} Lambda throttle(s) in {m} min",
            check_throttles,
            _has_consumer,
        ),
        RuleDef(
            RuleKind.ERRORS,
            (METRICS,),
            lambda p: 5,
            5,
            lambda t, m: f"Lambda errors above {t:g}% of invocations over {m} min",
            check_errors,
            _has_consumer,
        ),
        RuleDef(
            RuleKind.API_5XX,
            (METRICS,),
            lambda p: 1,
            5,
            lambda t, m: f"API 5xx above {t:g}% of requests over {m} min",
            check_api_5xx,
            _has_api,
        ),
        RuleDef(
            RuleKind.API_LATENCY,
            (METRICS,),
            lambda p: 3,
            10,
            lambda t, m: f"API latency over {m} min above {t:g}× its trailing median",
            check_api_latency,
            _has_api,
        ),
        # Not after the metrics cycle: it loaded its rows before a fast cycle may have changed them.
        RuleDef(
            RuleKind.STALE,
            (FAST, CLOCK),
            lambda p: 3,
            None,
            lambda t, m: (
                f"{t:,.0f} failed syncs in a row, no data for three poll intervals, or CloudWatch "
                "failing for three metrics intervals"
            ),
            check_stale,
        ),
        *(_slo_rule(pair) for pair in burn.PAIRS.values()),
    ]
}
