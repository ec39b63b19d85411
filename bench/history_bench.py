"""Minute history at scale on Postgres: one cycle's writes for 10,000 pipelines, and a day's retention
by DELETE against dropping the day's partition.

Run from the repository root (also `make bench-history`):

    .venv/bin/python bench/history_bench.py                          # 10,000 pipelines, a whole day
    .venv/bin/python bench/history_bench.py --day-fraction 0.25      # a quarter of a day's rows

It prints figures; it asserts nothing. The database (`opsboard_bench_history` on 127.0.0.1 by
default, recreated each run) is migrated, so the minute table is partitioned by day, and gets N
pipelines in 50 accounts. Then:

1. Writes: for each of --minutes minutes, every pipeline's queue counts are upserted as the shards
   of a fast cycle write them (`store.write_minute_samples`, one transaction and one multi-row
   upsert per shard of --shard pipelines), first as new rows, then re-synced (the same minute
   again: every row conflicts and is updated). The sum over the shards is the database time of one
   cycle's writes, shown as a share of the 60 s cycle; shards run one after the other here, on
   several workers they overlap.
2. Retention: a day's rows (N × 1,440 minute rows, or --day-fraction of the day's minutes) are
   generated in SQL (generate_series) into a day past the cutoff, then removed the old way (the
   batched DELETE that `retention.prune` runs on SQLite, MAINTENANCE_BATCH_ROWS per statement, plus
   the VACUUM that makes the space reusable), generated again, and removed the new way (drop the
   day's partition: `partitions.drop_expired`, which counts the rows first).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta

import setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--pipelines", type=int, default=10_000)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--shard", type=int, default=500, help="pipelines per shard (one upsert each)")
    ap.add_argument("--minutes", type=int, default=5, help="cycles of writes to time")
    ap.add_argument("--day-fraction", type=float, default=1.0, help="share of a day's minutes to load for retention")
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/opsboard_bench_history")
    return ap.parse_args(argv)


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
setup.configure_django(ARGS.database_url)

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from pipelines.clock import now  # noqa: E402
from pipelines.collection import partitions, retention, store  # noqa: E402
from pipelines.models import AwsAccount, MetricSample, Pipeline, partitioning  # noqa: E402

CYCLE_SECONDS = 60


def load_pipelines(n: int, accounts: int) -> list[int]:
    made = AwsAccount.objects.bulk_create(
        [AwsAccount(name=f"acct{a:02d}", region=setup.REGION) for a in range(accounts)]
    )
    Pipeline.objects.bulk_create(
        [
            Pipeline(
                name=f"p{i:05d}",
                account=made[i % accounts],
                queue_url=f"https://sqs/123456789012/p{i}",
                dlq_url=f"https://sqs/123456789012/p{i}-dlq",
            )
            for i in range(n)
        ],
        batch_size=2000,
    )
    return list(Pipeline.objects.order_by("pk").values_list("pk", flat=True))


def one_cycle(ids: list[int], shard: int, minute, salt: int) -> list[float]:
    """Each shard's upsert of its pipelines' counts for `minute`, timed; returns the shards' seconds."""
    times = []
    for start in range(0, len(ids), shard):
        rows = [
            (pid, minute, {"visible": (pid + salt) % 97, "in_flight": salt % 5, "delayed": 0, "dlq_visible": pid % 3})
            for pid in ids[start : start + shard]
        ]
        began = time.perf_counter()
        with transaction.atomic():
            store.write_minute_samples(rows)
        times.append(time.perf_counter() - began)
    return times


def bench_writes(ids: list[int], shard: int, minutes: int, at) -> None:
    print(f"\nWrites: {len(ids):,} pipelines in shards of {shard} ({-(-len(ids) // shard)} upserts per cycle)")
    print(f"{'cycle':<22} {'rows':>7} {'seconds':>8} {'share of 60 s':>14} {'slowest shard':>14}")
    totals = {"new rows": [], "re-sync": []}
    for m in range(minutes):
        minute = at + timedelta(minutes=m)
        for label, salt in (("new rows", m), ("re-sync", m + 1)):
            shard_times = one_cycle(ids, shard, minute, salt)
            total = sum(shard_times)
            totals[label].append(total)
            print(
                f"{minute:%H:%M} {label:<16} {len(ids):>7,} {total:>8.2f} {total / CYCLE_SECONDS:>13.1%} "
                f"{max(shard_times) * 1000:>11.0f} ms"
            )
    for label, values in totals.items():
        med = statistics.median(values)
        print(f"median {label:<15} {'':>7} {med:>8.2f} {med / CYCLE_SECONDS:>13.1%}  ({len(ids) / med:,.0f} rows/s)")
    # The same upserts through the ORM's bulk_create(update_conflicts=True), as store.py wrote them before.
    orm = []
    for m in range(minutes, minutes + 2):
        minute = at + timedelta(minutes=m)
        began = time.perf_counter()
        for start in range(0, len(ids), shard):
            objs = [
                MetricSample(
                    pipeline_id=pid, minute=minute, visible=pid % 97, in_flight=m % 5, delayed=0, dlq_visible=0
                )
                for pid in ids[start : start + shard]
            ]
            with transaction.atomic():
                MetricSample.objects.bulk_create(
                    objs,
                    update_conflicts=True,
                    unique_fields=["pipeline", "minute"],
                    update_fields=["visible", "in_flight", "delayed", "dlq_visible"],
                )
        orm.append(time.perf_counter() - began)
    med = statistics.median(orm)
    print(f"ORM bulk_create (before)  {'':>7} {med:>8.2f} {med / CYCLE_SECONDS:>13.1%}  ({len(ids) / med:,.0f} rows/s)")


def generate_day(day_start, minutes: int) -> int:
    """Every pipeline's rows for the first `minutes` minutes of the day, generated in the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {partitions.TABLE} (pipeline_id, minute, visible, in_flight, delayed, dlq_visible) "
            "SELECT p.id, %s + make_interval(mins => m), (p.id + m) %% 97, m %% 5, 0, p.id %% 3 "
            "FROM pipelines_pipeline p CROSS JOIN generate_series(0, %s - 1) AS m",
            [day_start, minutes],
        )
        rows = cursor.rowcount
        cursor.execute(f"ANALYZE {partitions.TABLE}")
    return rows


def bench_retention(at, fraction: float) -> None:
    day = partitioning.day_of(at - timedelta(days=settings.RAW_RETENTION_DAYS + 2))
    day_start, _ = partitioning.day_bounds(day)
    cutoff = at - timedelta(days=settings.RAW_RETENTION_DAYS)
    minutes = max(1, round(1440 * fraction))
    partitions.ensure_range(day, day)
    print(f"\nRetention of one day ({day:%Y-%m-%d}, {minutes} of its 1,440 minutes, {fraction:g} of a day):")

    began = time.perf_counter()
    rows = generate_day(day_start, minutes)
    print(f"generated {rows:,} rows in {time.perf_counter() - began:.1f} s")
    batch = settings.MAINTENANCE_BATCH_ROWS
    began = time.perf_counter()
    deleted = retention._delete_older(MetricSample, "minute", cutoff, batch, budget=rows + batch)
    delete_s = time.perf_counter() - began
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {partitions.TABLE}")
    vacuum_s = time.perf_counter() - began
    print(
        f"DELETE in batches of {batch:,}: {deleted:,} rows in {delete_s:.1f} s ({deleted / delete_s:,.0f} rows/s), "
        f"then VACUUM {vacuum_s:.1f} s; at one maintenance run's budget of 1,000,000 rows that is "
        f"{-(-deleted // 1_000_000)} runs"
    )

    rows = generate_day(day_start, minutes)
    began = time.perf_counter()
    dropped = partitions.drop_expired(cutoff)
    drop_s = time.perf_counter() - began
    print(f"DROP of the day's partition: {dropped:,} rows in {drop_s:.2f} s (counting them included)")
    full = round(delete_s + vacuum_s) if fraction >= 1 else round((delete_s + vacuum_s) / fraction)
    print(
        f"a whole day ({len(Pipeline.objects.all()) * 1440:,} rows): DELETE + VACUUM about {full} s "
        f"(scaled linearly from the measured fraction when below 1: a lower bound, since each batch's SELECT "
        f"walks past the rows already deleted) against the drop's {drop_s:.2f} s"
    )


def main(args: argparse.Namespace) -> None:
    if not args.database_url.startswith("postgres"):
        raise SystemExit("this bench measures the Postgres partitioned table: give a postgres:// --database-url")
    setup.recreate_postgres(args.database_url)  # Django is set up but has not connected yet
    setup.migrate()
    at = store.floor_minute(now())
    began = time.perf_counter()
    ids = load_pipelines(args.pipelines, args.accounts)
    print(
        f"{len(ids):,} pipelines in {args.accounts} accounts loaded in {time.perf_counter() - began:.1f} s; "
        f"minute history partitioned by day: {partitions.enabled()} "
        f"({len(partitions.list_partitions())} partitions, today and {settings.PARTITION_DAYS_AHEAD} ahead)"
    )
    bench_writes(ids, args.shard, args.minutes, at)
    bench_retention(at, args.day_fraction)


if __name__ == "__main__":
    main(ARGS)
