"""Dashboard benchmark (issue 5): overview and pipeline-page server time on a month of minute history.

Run from the repository root, with a Postgres server at 127.0.0.1:5432 (trust auth, user postgres):

    .venv/bin/python bench/dashboard_bench.py                 # loads once, then measures
    .venv/bin/python bench/dashboard_bench.py --reload        # regenerates the history first
    .venv/bin/python bench/dashboard_bench.py --database-url postgres://postgres@127.0.0.1:5432/other

It prints figures; it asserts nothing. SQLite is refused: the point is the Postgres query plans.

Data (account "dashboard-bench" in a dedicated database, `opsboard_bench` by default, created when
missing and migrated with `migrate`):

* 500 pipelines with discovered configuration (queue, DLQ on 80 %, consumer on 7/8, HTTP API on half).
* 200 of them with 30 days of minute rows (43,200 each, 8.64 million in all), generated inside
  Postgres by `INSERT ... SELECT` over `generate_series`, one statement per day, time-major (all
  pipelines of one minute, then the next minute) as the collector writes them, so the table's
  physical order is the one production has. Values are a deterministic function of (pipeline,
  minute): a daily load cycle, noise, a backlog incident every 3 days, CloudWatch gaps (metric
  fields NULL), collector outages (live counts NULL), and the last 3 minutes without CloudWatch
  values (its lag). Hourly rollups are aggregated from the same rows in the same statement with the
  aggregates of `retention.AGGREGATES`, for every complete hour.
* The other 300 pipelines get the last 30 minutes of minute rows and the last 24 hourly rollups,
  since the overview reads every pipeline's last 20 minutes and last 24 hours.

A rerun finds the data in place (500 pipelines, 43,200 minute rows each for the 200) and only tops
it up to the current minute (new minutes in, minutes older than 30 days out, rollups of the new
hours), so it takes seconds; `--reload` regenerates everything, and so does a gap of over 2 days.

Measurement: Django's test `Client` in process, logged in as a superuser (`force_login`), DEBUG off,
`tests.settings`. Each page is requested a few times to warm up, then `--requests` times with
`time.perf_counter()` around `client.get` (the whole request: middleware, view, queries, template
rendering); then once more inside `CaptureQueriesContext` for the query count and SQL time. Pages:
the overview (`admin:index`, all 500 pipelines), its periodic refresh (`admin:overview_rows`), the
pipeline dashboard (`admin:pipelines_pipeline_dashboard`) and its series JSON
(`admin:pipelines_pipeline_series`) at range=30d and range=24h, for a pipeline with full history.
Target: p95 <= 150 ms for each.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import setup

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/opsboard_bench"
ACCOUNT = "dashboard-bench"
ADMIN_USER = "dashboard-bench-admin"
N_PIPELINES, N_HISTORY = 500, 200
HISTORY_MINUTES = 30 * 24 * 60  # 43,200 minute rows per pipeline with history
RECENT_MINUTES = 30  # minute rows for the pipelines without history
RECENT_HOURS = 24  # hourly rollups for the pipelines without history
CW_LAG_MINUTES = 3  # the newest minutes have no CloudWatch values yet
TOPUP_LIMIT = timedelta(days=2)  # beyond this since the last load, regenerate instead of topping up
TARGET_MS = 150.0

SAMPLE_COLS = (
    "visible",
    "in_flight",
    "delayed",
    "dlq_visible",
    "oldest_age",
    "dlq_oldest_age",
    "sent",
    "received",
    "deleted",
    "empty_receives",
    "lambda_invocations",
    "lambda_errors",
    "lambda_throttles",
    "lambda_duration_avg",
    "lambda_duration_p99",
    "lambda_concurrency",
    "api_count",
    "api_4xx",
    "api_5xx",
    "api_latency_avg",
    "api_latency_p99",
)


# --- setup ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"Postgres database to load and measure (default {DEFAULT_DATABASE_URL}; created if missing)",
    )
    ap.add_argument("--reload", action="store_true", help="regenerate the history even when it is already there")
    ap.add_argument("--requests", type=int, default=30, help="timed requests per page (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed requests per page first (default 3)")
    ap.add_argument("--load-workers", type=int, default=2, help="concurrent day-chunks while loading (default 2)")
    ap.add_argument(
        "--explain", action="store_true", help="print EXPLAIN (ANALYZE, BUFFERS) of each page's slowest query"
    )
    ap.add_argument("--profile", action="store_true", help="print a cProfile summary of one request per page")
    ap.add_argument("--time-limit", type=int, default=600, help="abort after this many seconds (default 600)")
    return ap.parse_args(argv)


def check_database_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme.startswith("sqlite"):
        sys.exit(
            "Refusing to run on SQLite: this bench measures the dashboard on Postgres, with 8.6 million "
            "minute rows generated by Postgres's generate_series; give a postgres:// URL."
        )
    if scheme not in ("postgres", "postgresql", "pgsql", "postgis"):
        sys.exit(f"Unsupported database URL scheme {scheme!r}: give a postgres:// URL.")


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
check_database_url(ARGS.database_url)
STARTED = time.monotonic()  # the elapsed time in the report counts from here
# The test Client sends Host: testserver; without setup_test_environment() (whose instrumented
# template rendering would add its own cost to every page) it has to be allowed here.
setup.configure_django(ARGS.database_url, setup.temp_dir("opsboard-dashboard-bench-"), allowed_hosts=["testserver"])

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Avg, Max, Sum  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402

from pipelines.alerting import history  # noqa: E402
from pipelines.clock import now  # noqa: E402
from pipelines.collection import retention  # noqa: E402
from pipelines.models import ApiKind, AwsAccount, Pipeline  # noqa: E402


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def epoch_minute(t: datetime) -> int:
    return int(t.timestamp()) // 60


# --- SQL --------------------------------------------------------------------------------------------

# One row per (pipeline, minute) for the pipelines in the arrays and the epoch minutes [first, last],
# ordered minute-major like the collector writes them. %(lag_from)s: the epoch minute from which the
# CloudWatch fields are still NULL. Values are a deterministic function of (pipeline, minute), no
# random(), so reruns and top-ups agree. Each level is fenced with OFFSET 0 so Postgres computes its
# columns once per row instead of inlining the expressions into every reference.
GEN_SQL = """
SELECT pid AS pipeline_id, minute,
  CASE WHEN NOT down THEN visible END AS visible,
  CASE WHEN NOT down THEN round(rate * 0.05 * (0.5 + r2))::int END AS in_flight,
  CASE WHEN NOT down THEN CASE WHEN pid %% 10 = 3 THEN floor(10 * r3)::int ELSE 0 END END AS delayed,
  CASE WHEN NOT down AND dlq THEN dlq_n END AS dlq_visible,
  CASE WHEN cw THEN round(20 + 40 * r2 + 60 * visible / rate)::int END AS oldest_age,
  CASE WHEN cw AND dlq THEN CASE WHEN dlq_n > 0 THEN dlq_n * 300 + floor(60 * r1)::int ELSE 0 END END AS dlq_oldest_age,
  CASE WHEN cw THEN sent END AS sent,
  CASE WHEN cw THEN sent + floor(3 * r3)::int END AS received,
  CASE WHEN cw THEN greatest(0, sent - err) END AS deleted,
  CASE WHEN cw THEN floor(30 * r2)::int END AS empty_receives,
  CASE WHEN cw AND fn THEN (sent + 9) / 10 END AS lambda_invocations,
  CASE WHEN cw AND fn THEN err END AS lambda_errors,
  CASE WHEN cw AND fn THEN CASE WHEN inc < 60 AND r3 > 0.9 THEN 1 + floor(3 * r1)::int ELSE 0 END END AS lambda_throttles,
  CASE WHEN cw AND fn THEN 40 + 60 * r2 END AS lambda_duration_avg,
  CASE WHEN cw AND fn THEN (40 + 60 * r2) * (2.5 + r1) END AS lambda_duration_p99,
  CASE WHEN cw AND fn THEN 1 + floor(rate / 40 * (0.5 + r3))::int END AS lambda_concurrency,
  CASE WHEN cw AND api THEN sent END AS api_count,
  CASE WHEN cw AND api THEN floor(sent * 0.01 * r3)::int END AS api_4xx,
  CASE WHEN cw AND api THEN CASE WHEN r1 < 0.01 THEN 1 ELSE 0 END END AS api_5xx,
  CASE WHEN cw AND api THEN 20 + 30 * r3 END AS api_latency_avg,
  CASE WHEN cw AND api THEN (20 + 30 * r3) * (3 + r2) END AS api_latency_p99
FROM (
  SELECT *,
    greatest(0, round(rate * 0.2 * (0.5 + r1)
      + CASE WHEN inc < 90 THEN inc * rate * 0.4 WHEN inc < 120 THEN (120 - inc) * rate * 1.2 ELSE 0 END))::int
      AS visible,                                                  -- a backlog builds for 90 min, drains in 30
    round(rate * (0.9 + 0.2 * r1))::int AS sent,
    CASE WHEN r3 < 0.03 OR (inc < 90 AND r3 < 0.3) THEN floor(5 * r2)::int ELSE 0 END AS err,
    CASE WHEN pid %% 7 = 0 THEN ((e / 180 + pid) %% 40)::int ELSE 0 END AS dlq_n
  FROM (
    SELECT pid, dlq, fn, api, e, minute, rate, inc, down, cw,
      x1 - floor(x1) AS r1, x2 - floor(x2) AS r2, x3 - floor(x3) AS r3  -- noise in [0, 1)
    FROM (
      SELECT p.pid, p.dlq, p.fn, p.api, g.e,
        to_timestamp(g.e * 60.0) AS minute,
        sin(g.e * 12.9898 + p.pid * 78.233) * 43758.5453 AS x1,
        sin(g.e * 39.3468 + p.pid * 11.135) * 24634.6345 AS x2,
        sin(g.e * 73.156 + p.pid * 52.235) * 13758.937 AS x3,
        (5 + (p.pid %% 40) * 5) * (1 + 0.8 * sin(2 * pi() * g.e / 1440.0 + p.pid)) AS rate,  -- messages/min, daily cycle
        (g.e + p.pid * 7919) %% 4320 AS inc,                       -- a backlog incident every 3 days
        (g.e + p.pid * 7907) %% 10080 < 15 AS down,                -- 15 min a week without live counts
        NOT ((g.e + p.pid * 104729) %% 10080 < 10 OR g.e >= %(lag_from)s) AS cw  -- CloudWatch gaps, and its lag
      FROM generate_series(%(first)s::int, %(last)s::int) AS g(e)
      CROSS JOIN unnest(%(ids)s::bigint[], %(dlq)s::boolean[], %(fn)s::boolean[], %(api)s::boolean[]) AS p(pid, dlq, fn, api)
      OFFSET 0
    ) s0 OFFSET 0
  ) s1 OFFSET 0
) s2
ORDER BY minute, pipeline_id
"""


def _aggregates():
    """(column, SQL aggregate) per rollup field, from retention.AGGREGATES (avg levels, sum counts, max ages)."""
    out = []
    for name, fn in retention.AGGREGATES.items():
        if fn is Avg:
            out.append((name, f"avg({name})" if name in retention.FLOAT_FIELDS else f"round(avg({name}))::int"))
        elif fn is Sum:
            out.append((name, f"sum({name})::int"))
        elif fn is Max:
            out.append((name, f"max({name})"))
        else:
            raise ValueError(f"unexpected aggregate for {name}: {fn}")
    return out


def rollup_sql(source: str, where: str) -> str:
    """INSERT ... SELECT date_trunc('hour', minute) ... GROUP BY, upserting on (pipeline, hour)."""
    aggs = _aggregates()
    cols = ["samples", "visible_max", *(c for c, _ in aggs)]
    return (
        f"INSERT INTO pipelines_metricrollup (pipeline_id, hour, {', '.join(cols)}) "
        f"SELECT pipeline_id, date_trunc('hour', minute), count(*), max(visible), {', '.join(e for _, e in aggs)} "
        f"FROM {source} WHERE {where} GROUP BY 1, 2 "
        f"ON CONFLICT (pipeline_id, hour) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in cols)}"
    )


def insert_sql(conflict: bool) -> str:
    cols = ", ".join(SAMPLE_COLS)
    return (
        f"INSERT INTO pipelines_metricsample (pipeline_id, minute, {cols}) "
        f"SELECT pipeline_id, minute, {cols} FROM gen"
        + (" ON CONFLICT (pipeline_id, minute) DO NOTHING" if conflict else "")
    )


def gen_params(pipes: list[dict], first: int, last: int, lag_from: int) -> dict:
    return {
        "ids": [p["id"] for p in pipes],
        "dlq": [p["dlq"] for p in pipes],
        "fn": [p["fn"] for p in pipes],
        "api": [p["api"] for p in pipes],
        "first": first,
        "last": last,
        "lag_from": lag_from,
    }


def generate(
    pipes: list[dict],
    first: int,
    last: int,
    lag_from: int,
    *,
    samples: bool,
    conflict: bool,
    roll: tuple[datetime, datetime] | None,
) -> None:
    """Minute rows for epoch minutes [first, last] (if `samples`) and their hourly rollups for the
    hours in `roll`, in one statement: the generated rows are materialised once and used for both."""
    params = gen_params(pipes, first, last, lag_from)
    parts = [f"WITH gen AS MATERIALIZED ({GEN_SQL})"]
    if samples and roll:
        parts.append(f", ins AS ({insert_sql(conflict)})")
    if roll:
        parts.append(rollup_sql("gen", "minute >= %(roll_from)s AND minute < %(roll_to)s"))
        params.update(roll_from=roll[0], roll_to=roll[1])
    else:
        parts.append(insert_sql(conflict))
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute(" ".join(parts), params)


# --- load ----------------------------------------------------------------------------------------------


def make_pipelines(account, at: datetime) -> None:
    themes = [
        "orders",
        "payments",
        "invoices",
        "events",
        "emails",
        "webhooks",
        "imports",
        "exports",
        "audit",
        "search-index",
        "thumbnails",
        "notifications",
    ]
    region, acct = "eu-west-1", "123456789012"
    pipes = []
    for i in range(N_PIPELINES):
        fifo = i % 25 == 24
        name = f"{themes[i % len(themes)]}-{i:03d}"
        qname = f"{name}.fifo" if fifo else name
        dlq = i % 5 != 0
        fn = i % 8 != 7
        api = i % 2 == 0
        dlq_name = f"{name}-dlq.fifo" if fifo else f"{name}-dlq"
        pipes.append(
            Pipeline(
                name=name,
                account=account,
                queue_url=f"https://sqs.{region}.amazonaws.com/{acct}/{qname}",
                queue_arn=f"arn:aws:sqs:{region}:{acct}:{qname}",
                queue_name=qname,
                is_fifo=fifo,
                visibility_timeout=180,
                retention_period=345600,
                dlq_url=f"https://sqs.{region}.amazonaws.com/{acct}/{dlq_name}" if dlq else "",
                dlq_arn=f"arn:aws:sqs:{region}:{acct}:{dlq_name}" if dlq else "",
                max_receive_count=5 if dlq else None,
                dlq_retention_period=1209600 if dlq else None,
                function_name=f"{name}-consumer" if fn else "",
                function_arn=f"arn:aws:lambda:{region}:{acct}:function:{name}-consumer" if fn else "",
                function_timeout=30 if fn else None,
                reserved_concurrency=(20 if i % 3 == 0 else None) if fn else None,
                batch_size=10 if fn else None,
                maximum_concurrency=(10 if i % 4 == 0 else None) if fn else None,
                report_batch_item_failures=(i % 2 == 1) if fn else None,
                mapping_uuid=f"00000000-0000-4000-8000-{i:012d}" if fn else "",
                mapping_state="Enabled" if fn else "",
                api_kind=ApiKind.HTTP if api else "",
                api_id=f"a{i:09d}" if api else "",
                api_stage="$default" if api else "",
                api_name=f"{name}-api" if api else "",
                consumer_log_group=f"/aws/lambda/{name}-consumer" if fn else "",
                backlog_threshold=[1000, 5000, 20000][i % 3],
                oldest_age_sla=[900, 1800, 3600][i % 3],
                enabled=i % 100 != 99,
                last_error="ThrottlingException: Rate exceeded" if i % 97 == 96 else "",
                discovered_at=at,
                last_sync_at=at,
                metrics_synced_until=at,
            )
        )
    Pipeline.objects.bulk_create(pipes, batch_size=500)


def bench_pipelines(account) -> tuple[list[dict], list[dict]]:
    """(pipelines with history, the others), as dicts for the generator."""
    rows = [
        {"id": pk, "dlq": bool(dlq), "fn": bool(fn), "api": bool(api)}
        for pk, dlq, fn, api in Pipeline.objects.filter(account=account)
        .order_by("pk")
        .values_list("pk", "dlq_url", "function_name", "api_id")
    ]
    return rows[:N_HISTORY], rows[N_HISTORY:]


def history_state(history: list[dict]) -> tuple[int, datetime | None]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*), max(minute) FROM pipelines_metricsample WHERE pipeline_id = ANY(%s)",
            [[p["id"] for p in history]],
        )
        n, newest = cur.fetchone()
    return n, newest


def wipe(account) -> None:
    """Remove the bench account's pipelines and history (TRUNCATE when nothing else is in the tables)."""
    ids = list(Pipeline.objects.filter(account=account).values_list("pk", flat=True))
    others = Pipeline.objects.exclude(account=account).exists()
    with connection.cursor() as cur:
        if not others:
            cur.execute("TRUNCATE pipelines_metricsample, pipelines_metricrollup")
        elif ids:
            cur.execute("DELETE FROM pipelines_metricsample WHERE pipeline_id = ANY(%s)", [ids])
            cur.execute("DELETE FROM pipelines_metricrollup WHERE pipeline_id = ANY(%s)", [ids])
    Pipeline.objects.filter(account=account).delete()


def day_chunks(first: int, last: int) -> list[tuple[int, int]]:
    """[first, last] in epoch minutes, cut at whole hours into pieces of at most a day."""
    out, start = [], first
    while start <= last:
        end = min(last, (start // 60) * 60 + 24 * 60 - 1)
        out.append((start, end))
        start = end + 1
    return out


def full_load(account, anchor: datetime, workers: int) -> None:
    t0 = time.monotonic()
    wipe(account)
    make_pipelines(account, anchor)
    history, _ = bench_pipelines(account)
    last = epoch_minute(anchor)
    first = last - HISTORY_MINUTES + 1
    lag_from = last - CW_LAG_MINUTES + 1
    current_hour = floor_hour(anchor)
    chunks = day_chunks(first, last)
    print(
        f"generating {len(history)} pipelines x {HISTORY_MINUTES:,} minutes in {len(chunks)} day-chunks "
        f"({workers} at a time) ...",
        flush=True,
    )
    done = [0]

    def one(chunk):
        a, b = chunk
        t = time.monotonic()
        try:
            roll_to = min(current_hour, datetime.fromtimestamp((b + 1) * 60, UTC))
            generate(
                history,
                a,
                b,
                lag_from,
                samples=True,
                conflict=False,
                roll=(datetime.fromtimestamp(a * 60, UTC), roll_to),
            )
        finally:
            connection.close()
        done[0] += 1
        if done[0] % 5 == 0 or done[0] == len(chunks):
            print(
                f"   {done[0]:>2}/{len(chunks)} chunks, last {len(history) * (b - a + 1):,} rows in "
                f"{time.monotonic() - t:.1f} s",
                flush=True,
            )

    t = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-load") as pool:
        list(pool.map(one, chunks))
    insert_s = time.monotonic() - t
    n = len(history) * HISTORY_MINUTES
    print(f"minute rows + rollups for the history: {n:,} rows in {insert_s:.1f} s ({n / insert_s:,.0f} rows/s)")
    t = time.monotonic()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE pipelines_metricsample")
        cur.execute("VACUUM ANALYZE pipelines_metricrollup")
        cur.execute("VACUUM ANALYZE pipelines_pipeline")
    print(f"VACUUM ANALYZE in {time.monotonic() - t:.1f} s; full load {time.monotonic() - t0:.1f} s", flush=True)


def top_up(account, at: datetime, newest: datetime | None) -> dict:
    """Bring everything up to the current minute: new minutes in, old ones out, rollups of the new hours,
    the 300 short-history pipelines' last 30 minutes and 24 hours, every pipeline's live fields."""
    t0 = time.monotonic()
    history, others = bench_pipelines(account)
    hids, oids = [p["id"] for p in history], [p["id"] for p in others]
    anchor = floor_minute(at)
    last = epoch_minute(anchor)
    lag_from = last - CW_LAG_MINUTES + 1
    window_start = anchor - timedelta(minutes=HISTORY_MINUTES - 1)
    current_hour = floor_hour(anchor)
    added = 0
    with connection.cursor() as cur:
        if newest is not None and newest < anchor:
            # Minutes that were within the CloudWatch lag last time are regenerated with their values.
            first = epoch_minute(newest) - CW_LAG_MINUTES + 1
            cur.execute(
                "DELETE FROM pipelines_metricsample WHERE pipeline_id = ANY(%s) AND minute >= %s",
                [hids, datetime.fromtimestamp(first * 60, UTC)],
            )
            generate(history, first, last, lag_from, samples=True, conflict=True, roll=None)
            added = len(history) * (last - first + 1)
            cur.execute(
                rollup_sql(
                    "pipelines_metricsample", "pipeline_id = ANY(%(ids)s) AND minute >= %(a)s AND minute < %(b)s"
                ),
                {"ids": hids, "a": floor_hour(newest) - timedelta(hours=1), "b": current_hour},
            )
        cur.execute(
            "DELETE FROM pipelines_metricsample WHERE pipeline_id = ANY(%s) AND minute < %s", [hids, window_start]
        )
        trimmed = cur.rowcount
        cur.execute(
            "DELETE FROM pipelines_metricrollup WHERE pipeline_id = ANY(%s) AND hour < %s",
            [hids, floor_hour(window_start)],
        )
        # The short-history pipelines: the last 30 minutes and the last 24 complete hours.
        cur.execute("DELETE FROM pipelines_metricsample WHERE pipeline_id = ANY(%s)", [oids])
        cur.execute("DELETE FROM pipelines_metricrollup WHERE pipeline_id = ANY(%s)", [oids])
    generate(others, last - RECENT_MINUTES + 1, last, lag_from, samples=True, conflict=False, roll=None)
    roll_from = current_hour - timedelta(hours=RECENT_HOURS)
    generate(
        others,
        epoch_minute(roll_from),
        epoch_minute(current_hour) - 1,
        lag_from,
        samples=False,
        conflict=False,
        roll=(roll_from, current_hour),
    )
    refresh_live_fields(hids + oids, anchor)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE pipelines_metricsample")
        cur.execute("VACUUM ANALYZE pipelines_metricrollup")
    return {"added": added, "trimmed": trimmed, "seconds": time.monotonic() - t0}


def refresh_live_fields(ids: list[int], anchor: datetime) -> None:
    """Each pipeline's live fields from its newest minute row (the oldest age from its newest value), synced now."""
    with connection.cursor() as cur:
        cur.execute(
            """
            UPDATE pipelines_pipeline p
               SET backlog = s.visible, in_flight = s.in_flight, delayed = s.delayed,
                   dlq_depth = CASE WHEN p.dlq_url <> '' THEN s.dlq_visible END,
                   oldest_age = (SELECT oldest_age FROM pipelines_metricsample o
                                  WHERE o.pipeline_id = p.id AND o.minute >= %(since)s AND o.oldest_age IS NOT NULL
                                  ORDER BY o.minute DESC LIMIT 1),
                   last_sync_at = %(now)s, metrics_synced_until = %(anchor)s
              FROM (SELECT DISTINCT ON (pipeline_id) pipeline_id, visible, in_flight, delayed, dlq_visible
                      FROM pipelines_metricsample
                     WHERE pipeline_id = ANY(%(ids)s) AND minute >= %(since)s AND visible IS NOT NULL
                     ORDER BY pipeline_id, minute DESC) s
             WHERE p.id = s.pipeline_id
        """,
            {"ids": ids, "since": anchor - timedelta(minutes=RECENT_MINUTES), "now": now(), "anchor": anchor},
        )
    # Health, trends and sparklines as the collector stores them after each sync and rollup.
    history.refresh(list(Pipeline.objects.filter(pk__in=ids)), now())
    retention.refresh_sparklines(now(), ids)
    with connection.cursor() as cur:
        # A few pipelines stale on purpose (no sync for 10 minutes), as in real life.
        cur.execute(
            "UPDATE pipelines_pipeline SET last_sync_at = %s WHERE id = ANY(%s)",
            [now() - timedelta(minutes=10), ids[49::50]],
        )


def table_stats() -> dict:
    out = {}
    with connection.cursor() as cur:
        for table in ("pipelines_metricsample", "pipelines_metricrollup"):
            cur.execute(f"SELECT count(*) FROM {table}")
            n = cur.fetchone()[0]
            cur.execute(
                "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)", [table, table, table]
            )
            out[table] = (n, *cur.fetchone())
    return out


def load(args) -> dict:
    t = time.monotonic()
    setup.migrate()
    print(f"migrate: {time.monotonic() - t:.1f} s", flush=True)
    account, _ = AwsAccount.objects.get_or_create(name=ACCOUNT, defaults={"region": "eu-west-1"})
    at = now()
    history, others = bench_pipelines(account)
    reason = None
    if args.reload:
        reason = "--reload"
    elif len(history) + len(others) != N_PIPELINES:
        reason = f"{len(history) + len(others)} bench pipelines, not {N_PIPELINES}"
    else:
        t = time.monotonic()
        n, newest = history_state(history)
        print(
            f"found {n:,} minute rows for the {len(history)} history pipelines, newest {newest:%Y-%m-%d %H:%M} "
            f"({time.monotonic() - t:.1f} s to count)"
            if newest
            else f"found {n:,} minute rows",
            flush=True,
        )
        if n != N_HISTORY * HISTORY_MINUTES:
            reason = f"{n:,} minute rows, not {N_HISTORY * HISTORY_MINUTES:,}"
        elif newest is None or at - newest > TOPUP_LIMIT:
            reason = "history older than 2 days"
    info = {"loaded": reason is not None}
    if reason:
        print(f"loading ({reason}) ...", flush=True)
        t = time.monotonic()
        full_load(account, floor_minute(at), args.load_workers)
        info["load_seconds"] = time.monotonic() - t
        newest = floor_minute(at)
    else:
        print("history in place: topping up only (--reload regenerates it)", flush=True)
    top = top_up(account, now(), newest)
    print(
        f"top-up to the current minute in {top['seconds']:.1f} s: {top['added']:,} history rows written (the minutes "
        f"since the last load, the last {CW_LAG_MINUTES} again with their CloudWatch values), {top['trimmed']:,} older "
        f"than 30 days deleted; the 300 short-history pipelines regenerated; live fields refreshed; VACUUM ANALYZE",
        flush=True,
    )
    info["top_up"] = top
    info["stats"] = table_stats()
    info["pipelines"] = Pipeline.objects.count()
    return info


# --- measurement -------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def measure(client, label: str, url: str, n: int, warmup: int, explain: bool, profile: bool) -> dict:
    for _ in range(warmup):
        r = client.get(url)
        if r.status_code != 200:
            raise SystemExit(f"{label}: GET {url} answered {r.status_code}: {r.content[:300]!r}")
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t) * 1000)
    timings: list[float] = []

    def timed(execute, sql, params, many, context):  # CaptureQueriesContext keeps whole milliseconds only
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append((time.perf_counter() - t) * 1000)

    with CaptureQueriesContext(connection) as ctx, connection.execute_wrapper(timed):
        t = time.perf_counter()
        r = client.get(url)
        captured_ms = (time.perf_counter() - t) * 1000
    queries = list(zip(timings, (q["sql"] for q in ctx.captured_queries)))
    slowest = max(queries, default=(0.0, ""))
    out = {
        "label": label,
        "url": url,
        "n": n,
        "p50": statistics.median(times),
        "p95": pct(times, 95),
        "max": max(times),
        "min": min(times),
        "queries": len(queries),
        "sql_ms": sum(q for q, _ in queries),
        "captured_ms": captured_ms,
        "slowest_ms": slowest[0],
        "slowest_sql": slowest[1],
        "bytes": len(r.content),
        "status": r.status_code,
    }
    if r["Content-Type"].startswith("application/json"):
        data = json.loads(r.content)
        out.update(points=len(data["t"]), bucket=data["bucket_seconds"], source=data["source"])
    elif b'id="ob-overview"' in r.content or b'class="ob-row ' in r.content:
        out["rows"] = r.content.count(b'<tr class="ob-row ')
    if explain and slowest[1]:
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest[1])
            out["plan"] = "\n".join(row[0] for row in cur.fetchall())
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        client.get(url)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
        out["profile"] = buf.getvalue()
    return out


def run_measurements(args) -> list[dict]:
    user = User.objects.filter(username=ADMIN_USER).first()
    if user is None:
        user = User.objects.create_superuser(ADMIN_USER, f"{ADMIN_USER}@example.invalid", None)
    client = Client()
    client.force_login(user)
    account = AwsAccount.objects.get(name=ACCOUNT)
    history, _ = bench_pipelines(account)
    pid = next(p["id"] for p in history if p["dlq"] and p["fn"] and p["api"])
    name = Pipeline.objects.get(pk=pid).name
    series = reverse("admin:pipelines_pipeline_series", args=[pid])
    pages = [
        (f"overview ({Pipeline.objects.count()} pipelines)", reverse("admin:index")),
        ("overview rows refresh", reverse("admin:overview_rows")),
        (f"pipeline page ({name})", reverse("admin:pipelines_pipeline_dashboard", args=[pid])),
        ("series JSON, range=30d", f"{series}?range=30d"),
        ("series JSON, range=24h", f"{series}?range=24h"),
    ]
    results = []
    print(
        f"load average before measuring: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)",
        flush=True,
    )
    for label, url in pages:
        print(f"measuring {label}: {url} ...", flush=True)
        results.append(measure(client, label, url, args.requests, args.warmup, args.explain, args.profile))
    return results


def print_report(info: dict, results: list[dict], args, elapsed: float) -> None:
    print(
        f"\n=== opsboard dashboard bench ({elapsed:.0f} s; database {connection.settings_dict['NAME']} on "
        f"{connection.settings_dict['HOST']}, PostgreSQL {connection.pg_version // 10000}) ===\n"
    )
    if info["loaded"]:
        print(f"history generated this run in {info['load_seconds']:.1f} s (see the load lines above)")
    else:
        print("history reused from an earlier run (--reload to regenerate)")
    for table, (n, total, heap, idx) in info["stats"].items():
        print(
            f"   {table:<24} {n:>11,} rows   heap {heap / 2**20:>7.0f} MB   indexes {idx / 2**20:>6.0f} MB   "
            f"total {total / 2**20:>7.0f} MB"
        )
    print(f"   pipelines in the database: {info['pipelines']} ({N_HISTORY} with 30 days of minute rows)")
    print(
        f"\n{args.requests} timed requests per page after {args.warmup} warm-up requests; Django test Client in "
        f"process, DEBUG off; times in ms; 'queries' and 'SQL ms' (time in cursor.execute) from one more request "
        f"(CaptureQueriesContext); load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
        f"{os.cpu_count()} CPUs\n"
    )
    head = (
        f"{'page':<40} {'p50':>7} {'p95':>7} {'max':>7} {'queries':>7} {'SQL ms':>7} {'KB':>7} "
        f"{'points':>6}  p95 <= {TARGET_MS:.0f} ms"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        pts = str(r.get("points", "")) if "points" in r else ""
        ok = setup.yes(r["p95"] <= TARGET_MS)
        print(
            f"{r['label']:<40} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['max']:>7.1f} {r['queries']:>7} "
            f"{r['sql_ms']:>7.1f} {r['bytes'] / 1024:>7.1f} {pts:>6}  {ok}"
        )
    print()
    for r in results:
        extra = (
            f"{r['points']} points per series, {r['bucket']} s buckets from {r['source']}"
            if "points" in r
            else f"{r['rows']} pipeline rows rendered"
            if "rows" in r
            else "HTML page, charts load the series JSON"
        )
        print(
            f"{r['label']}: {extra}; slowest query {r['slowest_ms']:.1f} ms: {r['slowest_sql'][:150]}"
            f"{'...' if len(r['slowest_sql']) > 150 else ''}"
        )
    missed = [r["label"] for r in results if r["p95"] > TARGET_MS]
    print(
        f"\ntarget p95 <= {TARGET_MS:.0f} ms: "
        + ("met on every page" if not missed else f"MISSED on {', '.join(missed)}")
    )
    for r in results:
        if "plan" in r:
            print(f"\n--- EXPLAIN (ANALYZE, BUFFERS) of the slowest query, {r['label']} ---\n{r['plan']}")
        if "profile" in r:
            print(f"\n--- cProfile of one request, {r['label']} ---\n{r['profile']}")


# --- main ----------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> None:
    with setup.time_limit(args.time_limit):
        setup.ensure_postgres(args.database_url)  # Django is set up but has not connected yet
        info = load(args)
        results = run_measurements(args)
        print_report(info, results, args, time.monotonic() - STARTED)


if __name__ == "__main__":
    main(ARGS)
