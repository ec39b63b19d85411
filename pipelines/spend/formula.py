"""The spend formula: one span (a UTC day) of a pipeline's readings → what it cost per service.

Per part, from the sums of that span's readings and the region's prices:

- Lambda = invocations × request price + Σ(invocations × average duration) (ms → s) × memory (GB)
  × GB-second price of the function's architecture. Average duration × invocations approximates
  the billed duration (AWS rounds each invocation up to 1 ms: ignored).
- SQS = requests × the queue type's price per million: one SendMessage per message sent (the batch
  size of the producer is unknown, so an upper bound), one ReceiveMessage per batch received plus
  every empty receive (the event-source mapping's long polls), one delete per batch deleted; a batch
  is the mapping's BatchSize capped at 10 (SQS hands out at most 10 messages per call), or a single
  message when no mapping is known. Visibility changes, 64 KB payload chunks and the DLQ's own
  traffic have no metric and are not counted.
- API = API Gateway requests (`Count`) × the price of the API's kind (REST or HTTP).
- Polling = what opsboard's own GetQueueAttributes and GetMetricData calls cost (given by the caller).

A part that applies but lacks an input (memory not discovered, no metric reported, no price for the
region) is unknown, with the reason; it is never counted as zero. Free tier, tiered discounts and
data transfer are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.models import ApiKind, Pipeline
from pipelines.spend.prices import RegionPrices

SQS_MAX_BATCH = 10
PARTS = ("lambda", "sqs", "api", "polling")
LABELS = {"lambda": "Lambda", "sqs": "SQS", "api": "API Gateway", "polling": "opsboard polling"}


@dataclass(frozen=True)
class Usage:
    """The sums of a pipeline's readings over one span; None where no reading reported the metric."""

    hours: float = 0  # hours of readings (hourly rollups, or minute rows / 60)
    invocations: int | None = None
    duration_ms: float | None = None  # Σ invocations × average duration, in ms
    invocations_without_duration: int = 0  # invocations in intervals that reported no duration
    sent: int | None = None
    received: int | None = None
    deleted: int | None = None
    empty_receives: int | None = None
    api_count: int | None = None

    @property
    def delivered(self) -> int | None:
        """Messages delivered to the consumer: deleted, or sent when no deletes are reported."""
        return self.deleted if self.deleted is not None else self.sent


@dataclass(frozen=True)
class Part:
    """One service's cost. `amount` is what is known (None: nothing); `complete` False: a lower bound."""

    amount: float | None
    complete: bool = True
    why: str = ""  # why it is unknown or a lower bound

    @property
    def known(self) -> bool:
        return self.amount is not None and self.complete


def unknown(why: str) -> Part:
    return Part(None, False, why)


@dataclass(frozen=True)
class Cost:
    """A pipeline's cost over a span, per applicable part, and the messages it delivered."""

    parts: dict[str, Part] = field(default_factory=dict)
    delivered: int | None = None
    hours: float = 0

    @property
    def amount(self) -> float | None:
        """The sum of what is known; None when no part is known."""
        known = [p.amount for p in self.parts.values() if p.amount is not None]
        return sum(known) if known else None

    @property
    def complete(self) -> bool:
        return all(p.known for p in self.parts.values())

    @property
    def reasons(self) -> list[str]:
        return [f"{LABELS[k]} unknown: {p.why}" for k, p in self.parts.items() if not p.known and p.why]

    def per_thousand(self, parts: tuple[str, ...] = PARTS) -> Part:
        """Cost per 1,000 messages delivered (of the given parts); unknown without deliveries."""
        chosen = [p for k, p in self.parts.items() if k in parts]
        known = [p.amount for p in chosen if p.amount is not None]
        if not self.delivered:
            return unknown("no messages delivered")
        if not known:
            return unknown("cost unknown")
        return Part(sum(known) / self.delivered * 1000, all(p.known for p in chosen), "")

    def __add__(self, other: Cost) -> Cost:
        parts = {}
        for key in dict.fromkeys([*self.parts, *other.parts]):
            a, b = self.parts.get(key), other.parts.get(key)
            if a is None or b is None:
                parts[key] = a or b
                continue
            amounts = [x.amount for x in (a, b) if x.amount is not None]
            parts[key] = Part(sum(amounts) if amounts else None, a.complete and b.complete, a.why or b.why)
        delivered = (
            None
            if self.delivered is None and other.delivered is None
            else (self.delivered or 0) + (other.delivered or 0)
        )
        return Cost(parts, delivered, self.hours + other.hours)


def total(costs) -> Cost:
    out = Cost()
    for c in costs:
        out = out + c
    return out


def _batch(p: Pipeline) -> int:
    return min(p.batch_size, SQS_MAX_BATCH) if p.batch_size and p.has_consumer else 1


def sqs_requests(p: Pipeline, u: Usage) -> float | None:
    """SQS requests the pipeline's traffic made (see the module's docstring); None when not reported."""
    if u.sent is None or u.received is None or u.deleted is None:
        return None
    batch = _batch(p)
    return u.sent + u.received / batch + (u.empty_receives or 0) + u.deleted / batch


def lambda_part(p: Pipeline, u: Usage, prices: RegionPrices) -> Part:
    if not p.function_memory_mb:
        return unknown("memory not discovered")
    arch = p.function_architecture or "x86_64"  # AWS's default; functions created before arm64 have none
    gb_second = prices.lambda_gb_second.get(arch)
    if gb_second is None or prices.lambda_requests_per_million is None:
        return unknown(f"no {arch} price for {prices.region}")
    if u.invocations is None:
        return unknown("no invocations reported")
    if u.invocations and u.duration_ms is None:
        return unknown("no duration reported")
    requests = u.invocations * prices.lambda_requests_per_million / 1e6
    gb_seconds = (u.duration_ms or 0) / 1000 * p.function_memory_mb / 1024
    amount = requests + gb_seconds * gb_second
    if u.invocations_without_duration:
        return Part(amount, False, f"no duration for {u.invocations_without_duration:,} invocations")
    return Part(amount)


def sqs_part(p: Pipeline, u: Usage, prices: RegionPrices) -> Part:
    price = prices.sqs_fifo_per_million if p.is_fifo else prices.sqs_standard_per_million
    if price is None:
        return unknown(f"no SQS price for {prices.region}")
    requests = sqs_requests(p, u)
    if requests is None:
        return unknown("no SQS metrics reported")
    return Part(requests * price / 1e6)


def api_part(p: Pipeline, u: Usage, prices: RegionPrices) -> Part:
    http = p.api_kind == ApiKind.HTTP
    price = prices.api_http_per_million if http else prices.api_rest_per_million
    if price is None:
        return unknown(f"no {'HTTP' if http else 'REST'} API price for {prices.region}")
    if u.api_count is None:
        return unknown("no API requests reported")
    return Part(u.api_count * price / 1e6)


def cost(p: Pipeline, u: Usage, prices: RegionPrices | None, polling: float | None = None) -> Cost:
    """What `p` cost over the span `u` sums, at `prices` (None: the region has none), plus `polling`."""
    parts: dict[str, Part] = {}
    pricers = [("lambda", lambda_part, p.has_consumer), ("sqs", sqs_part, True), ("api", api_part, p.has_api)]
    for key, pricer, applies in pricers:
        if applies:
            parts[key] = pricer(p, u, prices) if prices else unknown(f"no prices for {p.account.region}")
    if polling is not None:
        parts["polling"] = Part(polling)
    return Cost(parts, u.delivered, u.hours)
