"""Collection work in shards that any number of workers share, each shard run once per cycle.

Each cycle (fast or metrics, numbered on the clock by its interval) splits every account's enabled
pipelines, ordered by id, into shards: runs of consecutive pipelines whose CloudWatch queries fill
whole `GetMetricData` calls (500 queries each) and that hold at most COLLECT_SHARD_PIPELINES
pipelines, so one shard's work fits well inside one interval. Boundaries depend only on the
pipelines and what each needs from CloudWatch, not on the cycle, so a pipeline stays with the same
neighbours and each shard's metrics window (the earliest `metrics_synced_until` in it) stays tight.

One Celery task per shard. Two leases keep the work single (`locks.claim`, never released, they
expire): the dispatch of a cycle number (a second beat, or a repeated tick, dispatches nothing),
and each shard of a cycle number (a duplicate message or a redelivery runs nothing). A worker that
dies mid-shard leaves its lease to expire with its cycle; the next cycle's shard carries another
number and runs. A shard whose account is throttled or denied records its failures like any cycle
(`PollCycle`, each pipeline's `last_error` / `metrics_error`) and the other shards are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from pipelines import clock
from pipelines.collection import cycles, locks
from pipelines.collection.cloudwatch import MAX_QUERIES_PER_CALL, plan_metrics
from pipelines.models import AwsAccount, CycleKind, Pipeline

log = logging.getLogger(__name__)
#: How long a shard's lease outlives its cycle: clocks of different machines may disagree a little.
LEASE_MARGIN_SECONDS = 60
#: The pipeline fields the plan reads (what decides each pipeline's CloudWatch queries).
PLAN_FIELDS = (
    "pk",
    "account_id",
    "queue_name",
    "dlq_arn",
    "function_name",
    "api_id",
    "api_kind",
    "api_name",
    "api_stage",
)


@dataclass(frozen=True)
class Shard:
    """One shard of one cycle: pipelines `first_pk`..`last_pk` (enabled, of the account) of the cycle."""

    kind: str
    account_id: int
    index: int
    cycle: int
    first_pk: int
    last_pk: int
    pipelines: int = 0
    queries: int = 0

    @property
    def lease(self) -> str:
        return lease_name(self.kind, self.account_id, self.index, self.cycle)

    @property
    def task_args(self) -> list[int]:
        """The shard task's arguments (the task names the kind)."""
        return [self.account_id, self.index, self.cycle, self.first_pk, self.last_pk]


def lease_name(kind: str, account_id: int, index: int, cycle: int) -> str:
    return f"shard:{kind}:{account_id}:{index}:{cycle}"


def interval(kind: str) -> int:
    return settings.FAST_INTERVAL_SECONDS if kind == CycleKind.FAST else settings.METRICS_INTERVAL_SECONDS


def cycle_of(kind: str, at: datetime) -> int:
    """The cycle's number on the clock, the same on every machine (the metrics one is `cycles.cycle_number`'s)."""
    return int(at.timestamp() // interval(kind))


def cycle_end(kind: str, cycle: int) -> datetime:
    return datetime.fromtimestamp((cycle + 1) * interval(kind), UTC)


# --- planning (pure) ---------------------------------------------------------------------------------


def split(weights: Iterable[tuple[int, int]], max_pipelines: int) -> list[tuple[int, int, int, int]]:
    """Split (pipeline id, queries) pairs, in id order, into shards: (first id, last id, pipelines, queries).

    A shard takes at most `max_pipelines` pipelines and at most a whole number of GetMetricData
    calls' worth of queries: as many calls as `max_pipelines` of the heaviest pipeline would fill,
    so a shard of full-size pipelines fills its calls exactly and an account never pays more than
    one part-filled call per shard. An account smaller than one shard is one shard.
    """
    pairs = list(weights)
    if not pairs:
        return []
    heaviest = max(1, max(q for _, q in pairs))
    calls = max(1, (max_pipelines * heaviest) // MAX_QUERIES_PER_CALL)
    budget = calls * MAX_QUERIES_PER_CALL
    out: list[tuple[int, int, int, int]] = []
    first, last, count, queries = pairs[0][0], pairs[0][0], 0, 0
    for pk, q in pairs:
        if count and (count >= max_pipelines or queries + q > budget):
            out.append((first, last, count, queries))
            first, count, queries = pk, 0, 0
        last, count, queries = pk, count + 1, queries + q
    out.append((first, last, count, queries))
    return out


def plan(kind: str, cycle: int, max_pipelines: int | None = None) -> list[Shard]:
    """The shards of one cycle for every account with enabled pipelines (one query for the pipelines)."""
    max_pipelines = max_pipelines or settings.COLLECT_SHARD_PIPELINES
    unsupported = dict(AwsAccount.objects.values_list("pk", "unsupported_statistics"))
    by_account: dict[int, list[tuple[int, int]]] = {}
    pipes = Pipeline.objects.filter(enabled=True).only(*PLAN_FIELDS).order_by("account_id", "pk")
    for p in pipes.iterator(chunk_size=2000):
        # The full plan, not this cycle's: what a pipeline needs, so boundaries do not move between cycles.
        weight = len(plan_metrics(p, unsupported.get(p.account_id) or ()))
        by_account.setdefault(p.account_id, []).append((p.pk, weight))
    return [
        Shard(kind, account_id, i, cycle, first, last, count, queries)
        for account_id, weights in by_account.items()
        for i, (first, last, count, queries) in enumerate(split(weights, max_pipelines))
    ]


# --- dispatch and run --------------------------------------------------------------------------------


def dispatch(kind: str, at: datetime | None = None) -> list[Shard] | None:
    """The shards to queue for the cycle running at `at`, or None when this cycle was dispatched already."""
    at = at or clock.now()
    cycle = cycle_of(kind, at)
    if not locks.claim(f"dispatch:{kind}:{cycle}", interval(kind) + LEASE_MARGIN_SECONDS):
        log.info("the %s cycle %s was dispatched already (another beat?); nothing queued", kind, cycle)
        return None
    locks.prune_expired()
    return plan(kind, cycle)


def run_shard(
    kind: str, account_id: int, index: int, cycle: int, first_pk: int, last_pk: int, at: datetime | None = None
) -> dict:
    """Run one shard of one cycle, unless its cycle is over or someone claimed it (ran it, runs it) already."""
    at = at or clock.now()
    ends = cycle_end(kind, cycle)
    if at >= ends:
        return {"skipped": "its cycle is over"}
    ttl = (ends - at).total_seconds() + LEASE_MARGIN_SECONDS
    if not locks.claim(lease_name(kind, account_id, index, cycle), ttl):
        log.info("%s shard %s of account %s, cycle %s, was taken already; skipped", kind, index, account_id, cycle)
        return {"skipped": "claimed"}
    account = AwsAccount.objects.filter(pk=account_id).first()
    if account is None:
        return {"skipped": "account deleted"}
    pipes = list(
        Pipeline.objects.filter(account=account, enabled=True, pk__gte=first_pk, pk__lte=last_pk).order_by("pk")
    )
    if kind == CycleKind.FAST:
        report = cycles.run_fast_cycle(account, [p for p in pipes if p.is_due(at)], at=at)
    else:
        report = cycles.run_metrics_cycle(account, pipes, at=at)
    if report.errors:
        log.warning("%s shard %s of %s: %d pipeline(s) failed", kind, index, account.name, len(report.errors))
    return {**report.as_dict(), "shard": index, "cycle": cycle}
