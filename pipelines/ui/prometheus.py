"""The Prometheus `/metrics` endpoint.

It exposes what opsboard already keeps on its rows: each pipeline's latest values, health,
thresholds and sync state (Pipeline), each known SLO's error budget left (pipelines/slo, from the
stored history), open incidents (Incident), the poll-cost counters
(PollCounter) and the last cycle of each kind (PollCycle). prometheus_client renders it from a
collector over the database, in a fresh registry per request: the values are shared by every web
process through the database, whereas the process-global registry is per process and holds
whatever else the process registered. The response costs the same few queries however many
pipelines there are. Access: a bearer token, an address allow-list, or both (settings
METRICS_TOKEN, METRICS_ALLOWED_IPS); with neither, nobody. Loopback is not trusted by default: a
reverse proxy on the same host connects from loopback and need not add a forwarding header
(nginx's default adds none), so every client it relays would look local.

Every per-pipeline series carries the pipeline's `group` ("" when it has none), so a query can
narrow or sum by team. Tags would multiply series if they were labels everywhere, so they are
exported once per pipeline, as labels of `opsboard_pipeline_info` (value 1; join it with
`* on (pipeline) group_left(tag_team) opsboard_pipeline_info`): the keys METRICS_TAG_KEYS lists, or
else the MAX_TAG_LABELS keys most pipelines carry, each as `tag_<key>` with the characters a label
name cannot hold replaced by `_`. The label set stays bounded however many keys operators invent.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipelines import clock
from pipelines.alerting.history import TREND_MINUTES
from pipelines.models import UNRESOLVED, CycleKind, Health, Incident, Pipeline, PollCounter, PollCycle, Severity
from pipelines.slo.windows import SLO_PIPELINE_FIELDS, objectives_for

log = logging.getLogger(__name__)
#: Headers a reverse proxy adds. Behind a proxy every client shares the proxy's address, so an
#: address allow-list cannot tell them apart: such requests must use the token.
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
)
REALM = 'Bearer realm="opsboard metrics"'


@lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n) for n in allowed)


def client_address(request: HttpRequest) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The connecting address (REMOTE_ADDR), IPv4-mapped IPv6 unwrapped; None when there is none."""
    try:
        addr = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "").split("%")[0])
    except ValueError:
        return None  # a Unix socket, or a server that does not say
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def allowed_networks() -> tuple[str, ...]:
    """What the address check admits: the configured list (empty: no address check)."""
    return tuple(settings.METRICS_ALLOWED_IPS or ())


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8")


def refuse(request: HttpRequest) -> HttpResponse | None:
    """The response refusing this request, or None when it may read the metrics."""
    networks = allowed_networks()
    if not networks and not settings.METRICS_TOKEN:
        return _text(
            "Metrics are served to no one until a source is configured: set METRICS_ALLOWED_IPS "
            "(127.0.0.1 for a scraper on this machine that connects directly) or METRICS_TOKEN.",
            403,
        )
    if networks:
        if any(request.META.get(h) for h in FORWARDING_HEADERS):
            return _text(
                "This request came through a proxy, and the metrics address allow-list admits only "
                "direct connections; scrape directly, or set METRICS_TOKEN and send it.",
                403,
            )
        addr = client_address(request)
        if addr is None or not any(addr in net for net in _networks(networks)):
            return _text(
                f"Metrics are not served to {addr or 'this client'}: only to METRICS_ALLOWED_IPS. "
                "Set METRICS_ALLOWED_IPS or METRICS_TOKEN to scrape from elsewhere.",
                403,
            )
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            response = _text("A bearer token is required: send Authorization: Bearer <METRICS_TOKEN>.", 401)
            response["WWW-Authenticate"] = REALM
            return response
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = _text("The bearer token is wrong.", 401)
            response["WWW-Authenticate"] = f'{REALM}, error="invalid_token"'
            return response
    return None


PIPELINE_LABELS = ["pipeline", "account", "queue", "group"]
#: With METRICS_TAG_KEYS empty, the info series carries the keys most pipelines have, this many.
MAX_TAG_LABELS = 20
_NOT_IN_LABEL = re.compile(r"[^a-zA-Z0-9_]")
#: (metric, Pipeline field, help). A field that is empty (never synced, not known) gives no sample.
PIPELINE_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("opsboard_pipeline_backlog_messages", "backlog", "Visible messages in the queue, as of the last sync."),
    ("opsboard_pipeline_in_flight_messages", "in_flight", "Messages received by a consumer and not yet deleted."),
    ("opsboard_pipeline_delayed_messages", "delayed", "Delayed messages, not yet visible."),
    ("opsboard_pipeline_dlq_messages", "dlq_depth", "Visible messages in the dead-letter queue."),
    (
        "opsboard_pipeline_oldest_message_age_seconds",
        "oldest_age",
        "Age of the oldest message in the queue (CloudWatch ApproximateAgeOfOldestMessage).",
    ),
    (
        "opsboard_pipeline_time_to_loss_seconds",
        "time_to_loss",
        "Seconds until messages start expiring (docs/numbers.md); absent when no loss is in sight or it is unknown.",
    ),
    (
        "opsboard_pipeline_time_to_loss_known",
        "time_to_loss_known",
        "1 when the time to loss (or its absence) is known, 0 when the age or the retention is not.",
    ),
    (
        "opsboard_pipeline_backlog_trend_messages_per_second",
        "drain_rate",
        "Backlog trend, messages per second (negative: draining; 0: steady; docs/numbers.md); absent when unknown.",
    ),
    (
        "opsboard_pipeline_lambda_invocations_recent",
        "recent_invocations",
        f"Consumer Lambda invocations over the last {TREND_MINUTES} minutes.",
    ),
    (
        "opsboard_pipeline_lambda_errors_recent",
        "recent_errors",
        f"Consumer Lambda errors over the last {TREND_MINUTES} minutes.",
    ),
    (
        "opsboard_pipeline_lambda_throttles_recent",
        "recent_throttles",
        f"Consumer Lambda throttles over the last {TREND_MINUTES} minutes.",
    ),
    ("opsboard_pipeline_backlog_threshold_messages", "backlog_threshold", "Backlog above which the pipeline warns."),
    (
        "opsboard_pipeline_oldest_age_sla_seconds",
        "oldest_age_sla",
        "Oldest-message age above which the pipeline warns.",
    ),
    ("opsboard_pipeline_dlq_threshold_messages", "dlq_threshold", "DLQ depth at which the pipeline warns."),
    ("opsboard_pipeline_retention_seconds", "retention_period", "The queue's message retention period."),
    (
        "opsboard_pipeline_consecutive_sync_failures",
        "consecutive_failures",
        "Fast cycles in a row that failed to read the pipeline's queues.",
    ),
)
#: Fields the model keeps in another unit than the metric's base unit: the divisor that converts them.
#: The backlog trend is judged in messages per minute; Prometheus names rates per second.
PER_BASE_UNIT = {"drain_rate": 60.0}
PIPELINE_TIMES: tuple[tuple[str, str, str], ...] = (
    (
        "opsboard_pipeline_last_sync_timestamp_seconds",
        "last_sync_at",
        "When the queue counts were last read successfully (Unix time).",
    ),
    (
        "opsboard_pipeline_metrics_synced_until_timestamp_seconds",
        "metrics_synced_until",
        "The end of the last CloudWatch window fetched successfully (Unix time).",
    ),
)
PIPELINE_FIELDS = (
    "name",
    "account__name",
    "queue_name",
    "group",
    "tags",
    "enabled",
    "health",
    "health_reasons",
    "poll_interval",
    *(f for _, f, _ in PIPELINE_GAUGES),
    *(f for _, f, _ in PIPELINE_TIMES),
    *SLO_PIPELINE_FIELDS,
)


class DatabaseCollector:
    """A prometheus_client collector reading opsboard's tables when the registry is collected."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or clock.now()

    def collect(self) -> Iterator[Metric]:
        pipelines = list(Pipeline.objects.select_related("account").only(*PIPELINE_FIELDS).order_by("name"))
        labels = {p.pk: [p.name, p.account.name, p.queue_name, p.group] for p in pipelines}
        yield self.pipeline_info(pipelines, labels)
        yield from self.pipeline_values(pipelines, labels)
        yield self.slo_budgets(pipelines, labels)
        yield self.incidents(labels)
        yield from self.poll_cost()
        yield from self.cycles()

    def pipeline_values(self, pipelines: list[Pipeline], labels: dict[int, list[str]]) -> Iterator[Metric]:
        for name, field, doc in PIPELINE_GAUGES:
            family = GaugeMetricFamily(name, doc, labels=PIPELINE_LABELS)
            for p in pipelines:
                value = getattr(p, field)
                if value is not None:
                    family.add_metric(labels[p.pk], float(value) / PER_BASE_UNIT.get(field, 1.0))
            yield family
        for name, field, doc in PIPELINE_TIMES:
            family = GaugeMetricFamily(name, doc, labels=PIPELINE_LABELS)
            for p in pipelines:
                value = getattr(p, field)
                if value is not None:
                    family.add_metric(labels[p.pk], value.timestamp())
            yield family
        enabled = GaugeMetricFamily(
            "opsboard_pipeline_enabled", "1 when the pipeline is collected, 0 when disabled.", labels=PIPELINE_LABELS
        )
        health = GaugeMetricFamily(
            "opsboard_pipeline_health",
            "The pipeline's health: 1 for its current value, 0 for the others (staleness included).",
            labels=[*PIPELINE_LABELS, "health"],
        )
        for p in pipelines:
            enabled.add_metric(labels[p.pk], 1.0 if p.enabled else 0.0)
            current = p.current_health(self.at)[0]
            for value in Health:
                health.add_metric([*labels[p.pk], value.value], 1.0 if value == current else 0.0)
        yield enabled
        yield health

    def pipeline_info(self, pipelines: list[Pipeline], labels: dict[int, list[str]]) -> Metric:
        """One series per pipeline, value 1, whose labels are its tags (see the module's docstring)."""
        keys = tag_label_keys([p.tags or {} for p in pipelines], settings.METRICS_TAG_KEYS)
        family = GaugeMetricFamily(
            "opsboard_pipeline_info",
            "1 per pipeline; its tags as tag_<key> labels (empty: the pipeline has no such tag).",
            labels=[*PIPELINE_LABELS, *keys.values()],
        )
        for p in pipelines:
            tags = p.tags or {}
            family.add_metric([*labels[p.pk], *(str(tags.get(k, "")) for k in keys)], 1.0)
        return family

    def slo_budgets(self, pipelines: list[Pipeline], labels: dict[int, list[str]]) -> Metric:
        """Each known objective's error budget left over the SLO window, as a ratio (1: untouched, below 0:
        overspent); an unknown or unmeasured objective has no sample."""
        family = GaugeMetricFamily(
            "opsboard_pipeline_slo_error_budget_remaining_ratio",
            "Share of the SLO's error budget left over its rolling window (negative: overspent).",
            labels=[*PIPELINE_LABELS, "objective"],
        )
        for pk, objectives in objectives_for(pipelines, self.at).items():
            for o in objectives:
                if o.known:
                    family.add_metric([*labels[pk], o.name], o.budget_left_pct / 100)
        return family

    def incidents(self, labels: dict[int, list[str]]) -> Metric:
        counts = {
            (pid, sev): n
            for pid, sev, n in Incident.objects.filter(status__in=UNRESOLVED)
            .order_by()
            .values("pipeline_id", "severity")
            .annotate(n=Count("pk"))
            .values_list("pipeline_id", "severity", "n")
        }
        family = GaugeMetricFamily(
            "opsboard_pipeline_open_incidents",
            "Unresolved (open or acknowledged) incidents, by severity.",
            labels=[*PIPELINE_LABELS, "severity"],
        )
        for pid, pipeline_labels in labels.items():
            for severity in Severity:
                family.add_metric([*pipeline_labels, severity.value], float(counts.get((pid, severity.value), 0)))
        return family

    def poll_cost(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "opsboard_aws_requests",
            "AWS API requests made by collection cycles (HTTP attempts, retries included).",
            labels=["account", "operation"],
        )
        metrics = CounterMetricFamily(
            "opsboard_cloudwatch_metrics_requested",
            "CloudWatch metrics requested by GetMetricData (what it bills).",
            labels=["account"],
        )
        cost = CounterMetricFamily(
            "opsboard_aws_estimated_cost_usd",
            "Estimated AWS cost of collection in US dollars, at the configured SQS and CloudWatch prices.",
            labels=["account", "service"],
        )
        sqs: dict[str, int] = {}
        cloudwatch: dict[str, int] = {}
        for account, operation, total in PollCounter.objects.order_by("account__name", "operation").values_list(
            "account__name", "operation", "total"
        ):
            account = account or ""
            if operation == "metrics_requested":
                metrics.add_metric([account], float(total))
                cloudwatch[account] = cloudwatch.get(account, 0) + total
            else:
                requests.add_metric([account, operation], float(total))
                if operation.startswith("sqs:"):
                    sqs[account] = sqs.get(account, 0) + total
        for account in sorted(sqs.keys() | cloudwatch.keys()):
            cost.add_metric([account, "sqs"], sqs.get(account, 0) * settings.SQS_PRICE_PER_MILLION / 1e6)
            cost.add_metric(
                [account, "cloudwatch"],
                cloudwatch.get(account, 0) * settings.CLOUDWATCH_PRICE_PER_THOUSAND_METRICS / 1e3,
            )
        return iter((requests, metrics, cost))

    def cycles(self) -> Iterator[Metric]:
        finished = GaugeMetricFamily(
            "opsboard_cycle_last_finished_timestamp_seconds",
            "When the newest collection cycle of each kind finished (Unix time).",
            labels=["kind"],
        )
        duration = GaugeMetricFamily(
            "opsboard_cycle_last_duration_seconds",
            "How long the newest collection cycle of each kind took.",
            labels=["kind"],
        )
        failed = GaugeMetricFamily(
            "opsboard_cycle_last_failed_pipelines",
            "Pipelines the newest collection cycle of each kind failed for.",
            labels=["kind"],
        )
        for kind in CycleKind:
            # One small query per kind on the (kind, started_at) index: the table only grows.
            last = (
                PollCycle.objects.filter(kind=kind, finished_at__isnull=False)
                .order_by("-started_at")
                .values_list("started_at", "finished_at", "failed")
                .first()
            )
            if last is None:
                continue
            started, ended, failures = last
            finished.add_metric([kind.value], ended.timestamp())
            duration.add_metric([kind.value], (ended - started).total_seconds())
            failed.add_metric([kind.value], float(failures))
        return iter((finished, duration, failed))


def tag_label(key: str) -> str:
    """A tag key as a Prometheus label name: `tag_` and the key, other characters than [a-zA-Z0-9_] as `_`."""
    return "tag_" + _NOT_IN_LABEL.sub("_", key)


def tag_label_keys(all_tags: list[dict], wanted: tuple[str, ...] = ()) -> dict[str, str]:
    """Tag key -> label name for the info series: the `wanted` keys, or else the MAX_TAG_LABELS keys
    most pipelines carry (ties by name). Of two keys that make the same label name, the first is kept."""
    if not wanted:
        counted = Counter(k for tags in all_tags for k in tags)
        wanted = tuple(k for k, _ in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TAG_LABELS])
    out: dict[str, str] = {}
    for key in wanted:
        label = tag_label(key)
        if label not in out.values():
            out[key] = label
    return out


def render_metrics(accept: str = "", at: datetime | None = None) -> tuple[bytes, str]:
    """The exposition (text format, or OpenMetrics when the scraper asks for it) and its content type."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(at))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = refuse(request)
    if refusal is not None:
        return refusal
    try:
        body, content_type = render_metrics(request.headers.get("Accept", ""))
    except DatabaseError as exc:
        # Prometheus records the failed scrape (up == 0); an error page would say no more.
        log.warning("metrics: the database failed: %s", exc)
        return _text("The database is unavailable.", 503)
    return HttpResponse(body, content_type=content_type)
