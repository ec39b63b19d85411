"""SLO evaluation cost: a 28-day SLO for every pipeline from hourly rollups and recent minutes.

Run from the repository root (also `make bench-slo`):

    .venv/bin/python bench/slo_bench.py                     # 1000 pipelines, Postgres
    .venv/bin/python bench/slo_bench.py --pipelines 200 --database-url sqlite:////tmp/s.sqlite3

It prints figures; it asserts nothing. The database (`opsboard_bench_slo` on 127.0.0.1 by default,
recreated each run) gets N pipelines, each with 28 days of hourly rollups (with the SLO columns:
measured and late minutes, DLQ readings and arrivals, sends) and the minute rows of the last two
hours; a tenth of them are late or fill their DLQ now and then. Then it times, as medians of 5 runs
with the queries of one run counted exactly:

1. the overview's "Budget left" column: every pipeline's objectives over the SLO window;
2. the SLO page's figures for every pipeline at once: the SLO window and every burn window;
3. what the metrics cycle's rule evaluation adds: the burn windows alone.

The target is under 1 s for the first two on Postgres, with a query count that does not grow with
the number of pipelines or the length of the window.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--days", type=int, default=28, help="days of hourly rollups per pipeline")
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/opsboard_bench_slo")
    ap.add_argument(
        "--syncdb",
        action="store_true",
        help="build the schema from the models instead of the migrations (while two branches' migrations "
        "wait to be merged)",
    )
    return ap.parse_args(argv)


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
setup.configure_django(ARGS.database_url)

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from pipelines.clock import now  # noqa: E402
from pipelines.collection import store  # noqa: E402
from pipelines.models import AwsAccount, MetricRollup, MetricSample, Pipeline  # noqa: E402
from pipelines.slo import compute, windows  # noqa: E402

TARGET_SECONDS = 1.0


def load(n: int, days: int, at) -> list[Pipeline]:
    account = AwsAccount.objects.create(name="bench", region=setup.REGION)
    Pipeline.objects.bulk_create(
        [
            Pipeline(
                name=f"p{i:04d}",
                account=account,
                queue_url=f"https://sqs/123456789012/p{i}",
                dlq_url=f"https://sqs/123456789012/p{i}-dlq",
                retention_period=4 * 86400,
                oldest_age_sla=900,
                last_sync_at=at,
            )
            for i in range(n)
        ]
    )
    pipes = list(Pipeline.objects.filter(account=account).order_by("pk"))
    start = windows.recent_start(at)
    batch: list[MetricRollup] = []
    for p in pipes:
        bad = p.pk % 10 == 0
        for h in range(1, days * 24 + 1):
            batch.append(
                MetricRollup(
                    pipeline=p,
                    hour=start - timedelta(hours=h),
                    samples=60,
                    visible=20,
                    oldest_age=1200 if bad and h % 50 == 0 else 60,
                    sent=6000,
                    age_minutes=60,
                    late_minutes=30 if bad and h % 50 == 0 else 0,
                    dlq_minutes=60,
                    dlq_arrivals=12 if bad and h % 7 == 0 else 0,
                )
            )
        if len(batch) >= 50_000:
            MetricRollup.objects.bulk_create(batch, batch_size=10_000)
            batch = []
    MetricRollup.objects.bulk_create(batch, batch_size=10_000)
    minutes = int((at - start).total_seconds() // 60) + 1
    rows = [
        MetricSample(
            pipeline=p,
            minute=start + timedelta(minutes=m),
            visible=20,
            dlq_visible=m // 10 if p.pk % 10 == 0 else 0,
            oldest_age=1200 if p.pk % 10 == 0 and m > minutes - 20 else 60,
            sent=100,
        )
        for p in pipes
        for m in range(minutes)
    ]
    MetricSample.objects.bulk_create(rows, batch_size=10_000)
    return pipes


def main(args: argparse.Namespace) -> None:
    if args.database_url.startswith("postgres"):
        setup.recreate_postgres(args.database_url)  # Django is set up but has not connected yet
    if args.syncdb:
        settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
        call_command("migrate", run_syncdb=True, verbosity=0)
    else:
        setup.migrate()
    at = store.floor_minute(now())
    started = time.perf_counter()
    pipes = load(args.pipelines, args.days, at)
    print(
        f"{len(pipes)} pipelines, {MetricRollup.objects.count():,} hourly rollups and "
        f"{MetricSample.objects.count():,} minute rows loaded in {time.perf_counter() - started:.1f} s "
        f"({args.database_url.split('://')[0]}); SLO window {settings.SLO_WINDOW_DAYS} days"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    ids = [p.pk for p in pipes]
    budgets = windows.budgets_left(pipes, at)
    known = [b for b in budgets.values() if b is not None]
    print(f"budget left: {len(known)} known, lowest {min(known):.0f} %, highest {max(known):.0f} %")
    cases = [
        ("overview column (SLO window)", lambda: windows.budgets_left(pipes, at), True),
        ("all windows (SLO page figures)", lambda: windows.objectives_for(pipes, at, with_burns=True), True),
        ("burn windows (rule evaluation)", lambda: windows.load(ids, at, compute.BURN_WINDOWS), False),
    ]
    print(f"\n{'':<36} {'median':>9} {'queries':>8}  under {TARGET_SECONDS:g} s")
    for name, fn, targeted in cases:
        secs, queries = setup.timed(fn)
        verdict = setup.yes(secs < TARGET_SECONDS) if targeted else "-"
        print(f"{name:<36} {secs * 1000:>6.0f} ms {queries:>8}  {verdict}")


if __name__ == "__main__":
    main(ARGS)
