"""Writing what a cycle collected: minute and hour keys, upserts that never duplicate, the cycle's record.

Every cycle writes `MetricSample` (or `MetricRollup`) rows by upsert on (pipeline, key), so
re-running never duplicates, and records a `PollCycle` with the calls it made plus the running
per-account counters `/metrics` exports. A batch of pipelines (a shard of a cycle) writes its minute
rows with `write_minute_samples`: one multi-row INSERT … ON CONFLICT per set of fields the rows
carry. On Postgres the minute table is partitioned by day; the insert makes sure the days it writes
have a partition first (`pipelines.models.partitioning`), so no row is refused.
"""

from __future__ import annotations

import contextvars
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F

from pipelines import aws, clock
from pipelines.models import AwsAccount, MetricSample, PollCounter, PollCycle, partitioning

log = logging.getLogger(__name__)

#: Rows per INSERT statement: a shard's rows (up to COLLECT_SHARD_PIPELINES) go in one statement,
#: and 25 columns × 2,000 rows stays under Postgres's 65,535 parameters per statement.
SAMPLE_BATCH_ROWS = 2000


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


@dataclass
class CycleReport:
    """What one cycle did for one account: returned to tasks and commands, saved as a PollCycle."""

    kind: str
    account: str
    pipelines: int = 0
    samples_written: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # pipeline name -> reason
    calls: dict[str, int] = field(default_factory=dict)
    metrics_requested: int = 0
    seconds: float = 0.0
    skipped: str = ""  # why the cycle did not run (lock held, nothing due)
    alerts: dict[str, Any] = field(default_factory=dict)  # what the alert evaluation after it did

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "account": self.account,
            "pipelines": self.pipelines,
            "samples_written": self.samples_written,
            "failed": len(self.errors),
            "errors": self.errors,
            "api_calls": self.api_calls,
            "calls": self.calls,
            "metrics_requested": self.metrics_requested,
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
            "alerts": self.alerts,
        }


def database_lost(report: CycleReport, pipes: Iterable[Any], exc: DatabaseError) -> None:
    """The database failed while a cycle stored what it read (a restart, a dropped connection): every
    pipeline of the cycle counts as failed (the samples are written in one transaction, so none of a
    failed write is kept), and the broken connection is dropped so the cycle's record is written on a
    fresh one. The next cycle reads again; its upserts leave one row per pipeline and minute."""
    log.warning("%s cycle for %s: the database failed while storing: %s", report.kind, report.account, exc)
    reason = f"the database failed while storing ({type(exc).__name__}); the next cycle reads again"
    report.errors.update({p.name: reason for p in pipes})
    if not connection.in_atomic_block:
        connection.close()


def record_cycle(report: CycleReport, account: AwsAccount | None, started: datetime, meter: aws.CallMeter) -> None:
    report.calls = dict(meter.calls)
    report.metrics_requested = meter.metrics_requested
    finished = clock.now()
    report.seconds = (finished - started).total_seconds()
    with transaction.atomic():
        PollCycle.objects.create(
            kind=report.kind,
            account=account,
            started_at=started,
            finished_at=finished,
            pipelines=report.pipelines,
            failed=len(report.errors),
            samples_written=report.samples_written,
            api_calls=report.api_calls,
            calls=report.calls,
            metrics_requested=report.metrics_requested,
            errors=[f"{name}: {reason}" for name, reason in list(report.errors.items())[:50]],
        )
        # Running totals for /metrics, per account (every cycle has one). Several workers may finish
        # cycles at once: missing rows are created with ON CONFLICT DO NOTHING, then each row is
        # incremented in the database, in a fixed order so two transactions never wait on each
        # other's rows crosswise.
        if account is not None:
            increments = {**report.calls, "metrics_requested": report.metrics_requested}
            operations = sorted(increments)
            PollCounter.objects.bulk_create(
                [PollCounter(account=account, operation=op) for op in operations], ignore_conflicts=True
            )
            for op in operations:
                if increments[op]:
                    PollCounter.objects.filter(account=account, operation=op).update(total=F("total") + increments[op])


def pool_map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """Run fn over items on a bounded thread pool, each call in a copy of this context (metering)."""
    if not items:
        return []
    workers = max(1, min(settings.COLLECT_CONCURRENCY, len(items)))
    if workers == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="collect") as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, item) for item in items]
        return [f.result() for f in futures]


def upsert_samples(
    model, key_field: str, rows: Iterable[tuple[int, datetime, dict[str, Any]]], batch_size: int = SAMPLE_BATCH_ROWS
) -> int:
    """Upsert (pipeline, key) rows, updating only the fields each row carries.

    Rows are grouped by their set of fields so one statement never nulls a column another
    cadence owns (the fast cycle's counts vs the metrics cycle's CloudWatch values).
    """
    if model is MetricSample and connection.vendor == "postgresql":
        return _upsert_sql(model, key_field, rows, batch_size)
    groups: dict[tuple[str, ...], list] = defaultdict(list)
    for pipeline_id, key, values in rows:
        groups[tuple(sorted(values))].append(model(pipeline_id=pipeline_id, **{key_field: key}, **values))
    written = 0
    for fields, objs in groups.items():
        if not fields:
            continue
        model.objects.bulk_create(
            objs,
            batch_size=batch_size,
            update_conflicts=True,
            unique_fields=["pipeline", key_field],
            update_fields=list(fields),
        )
        written += len(objs)
    return written


def _upsert_sql(model, key_field: str, rows: Iterable[tuple[int, datetime, dict[str, Any]]], batch_size: int) -> int:
    """`upsert_samples` of minute rows on Postgres, as INSERT … ON CONFLICT (pipeline_id, key) DO
    UPDATE naming only the columns a group of rows carries: what the ORM's bulk_create(update_conflicts=…)
    sends (a column not named is null in a new row: MetricSample's fields have no defaults), without
    building a model instance and preparing every column of every row in Python (about four fifths
    of a 500-row shard's write). Each statement goes through the partition guard
    (`pipelines.models.partitioning`)."""
    groups: dict[tuple[str, ...], list[tuple[int, datetime, dict[str, Any]]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row[2]))].append(row)
    meta, qn = model._meta, connection.ops.quote_name
    key_column = meta.get_field(key_field).column
    written = 0
    for fields, group in groups.items():
        if not fields:
            continue
        columns = [meta.get_field(name).column for name in fields]
        head = f"INSERT INTO {qn(meta.db_table)} (pipeline_id, {qn(key_column)}, {', '.join(map(qn, columns))}) VALUES "
        tail = f" ON CONFLICT (pipeline_id, {qn(key_column)}) DO UPDATE SET " + ", ".join(
            f"{qn(c)} = EXCLUDED.{qn(c)}" for c in columns
        )
        marks = "(" + ", ".join(["%s"] * (len(columns) + 2)) + ")"
        step = max(1, min(batch_size, 65_000 // (len(columns) + 2)))  # Postgres: 65,535 parameters
        for start in range(0, len(group), step):
            chunk = group[start : start + step]
            params = [v for pid, key, values in chunk for v in (pid, key, *(values[f] for f in fields))]
            sql = head + ", ".join([marks] * len(chunk)) + tail

            def write(sql=sql, params=params):
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)

            partitioning.guarded_write(meta.db_table, connection.alias, (key for _, key, _ in chunk), write)
            written += len(chunk)
    return written


def write_minute_samples(rows: Iterable[tuple[int, datetime, dict[str, Any]]]) -> int:
    """Upsert one batch of pipelines' minute rows, (pipeline id, minute, {field: value}); returns the
    rows written. A row overwrites the fields it carries and keeps the others (the fast cycle's counts
    and the metrics cycle's CloudWatch values land on the same row); it never duplicates a minute."""
    return upsert_samples(MetricSample, "minute", rows)
