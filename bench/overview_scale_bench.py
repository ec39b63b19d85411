"""Overview scale benchmark: the first page's size and server time, and its refresh's size, at 500, 2,000
and 10,000 pipelines in 50 accounts.

Run from the repository root, with a Postgres server at 127.0.0.1:5432 (trust auth, user postgres):

    .venv/bin/python bench/overview_scale_bench.py                       # 500, 2,000 and 10,000 pipelines
    .venv/bin/python bench/overview_scale_bench.py --sizes 500 2000 --loads 20
    .venv/bin/python bench/overview_scale_bench.py --sqlite              # a throwaway SQLite file instead

It prints figures and a yes/NO per target; it asserts nothing.

Data (a database of its own, `opsboard_overview_bench`, dropped and created afresh, then migrated):
pipelines in 50 accounts, each with a group (one of 20) and tags (a team, a tier, a flag on every
7th), discovered configuration, live values (backlog, in flight, DLQ depth, oldest age, trend, a
24-hour sparkline) and stored findings as a sync leaves them: out of each hundred, one critical, two
warnings, one stale (last sync an hour ago), one disabled; the rest OK. Every pipeline has its last
10 minutes of minute rows and 24 hourly rollups, which the page's SLO budgets and top spenders read.
The sizes are reached by adding pipelines to the same database (500, then 1,500 more, …).

Measurement: Django's test `Client` in process, logged in as a user with the view permissions,
DEBUG off; server time is one request's wall time in the process (no network). For each size:

* first page: `/admin/` as an operator opens it, `--loads` times after 3 untimed loads: bytes, the
  number of SQL queries, p50 and p95 of the time;
* refresh, nothing changed: `/admin/overview/rows/` with what the page holds (the rows' etags, the
  counts' etag, its server time), as overview.js asks every 30 s: bytes, p50 and p95;
* top spenders: `/admin/overview/spenders/`, which the page fetches once after it is shown: one
  request's time (it reads every pipeline's month of rollups, so it grows with the fleet);
* refresh, 1 % changed: 1 % of all pipelines, chosen at random, get a new backlog and one in five of
  them turns critical (so the order and the counts move); the same request as before: bytes.

Targets: first page ≤ 300 KB and p95 ≤ 150 ms; refresh with nothing changed ≤ 50 KB.
"""

from __future__ import annotations

import math
import random
import re
import sys
import time
from datetime import timedelta

import setup

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/opsboard_overview_bench"
ACCOUNTS = 50
GROUPS = [f"team-{n:02d}" for n in range(20)]
PAGE_KB, REFRESH_KB, P95_MS = 300, 50, 150


def parse_args(argv=None):
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000], help="fleet sizes, ascending")
    ap.add_argument("--loads", type=int, default=50, help="timed loads per page and size (default 50)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--sqlite", action="store_true", help="a throwaway SQLite file instead of Postgres")
    where.add_argument("--database-url", default=POSTGRES_URL, help=f"a database to recreate (default {POSTGRES_URL})")
    ap.add_argument("--time-limit", type=int, default=1800, help="abort after this many seconds (default 1800)")
    return ap.parse_args(argv)


ARGS = parse_args()
TMP = setup.temp_dir("opsboard-overview-bench-")
DATABASE_URL = setup.sqlite_url(TMP) if ARGS.sqlite else ARGS.database_url
if not ARGS.sqlite:
    setup.recreate_postgres(DATABASE_URL)
setup.configure_django(DATABASE_URL, TMP, allowed_hosts=["testserver"])

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from pipelines.clock import now  # noqa: E402
from pipelines.models import AwsAccount, Health, MetricRollup, MetricSample, Pipeline  # noqa: E402

ROW = re.compile(r'data-pk="(\d+)" data-etag="(\w+)"')


# --- the data ------------------------------------------------------------------------------------------


def kind(i: int) -> str:
    return {0: "critical", 1: "warning", 2: "warning", 3: "stale", 4: "disabled"}.get(i % 100, "ok")


def pipeline(i: int, account: AwsAccount, at, rng: random.Random) -> Pipeline:
    k = kind(i)
    backlog = 40000 + rng.randrange(20000) if k == "critical" else rng.randrange(2000)
    findings = {
        "critical": [["critical", f"backlog {backlog:,} above 1,000", "backlog"]],
        "warning": [["warning", "oldest message 22 min above its 15 min SLA", "oldest_age"]],
    }.get(k, [])
    name = f"{GROUPS[i % len(GROUPS)]}-svc-{i:05d}"
    return Pipeline(
        name=name,
        account=account,
        queue_url=f"https://sqs.eu-west-1.amazonaws.com/{account.pk:012d}/{name}",
        queue_name=name,
        group=GROUPS[i % len(GROUPS)],
        tags={
            "team": GROUPS[i % len(GROUPS)],
            "tier": ["gold", "silver", "bronze"][i % 3],
            **({"pci": ""} if i % 7 == 0 else {}),
        },
        enabled=k != "disabled",
        health=Health.CRITICAL if k == "critical" else Health.WARNING if k == "warning" else Health.OK,
        health_reasons=findings,
        last_sync_at=at - timedelta(hours=1 if k == "stale" else 0, seconds=rng.randrange(60)),
        metrics_synced_until=at,
        discovered_at=at,
        backlog=backlog,
        in_flight=rng.randrange(50),
        dlq_url=f"https://sqs.eu-west-1.amazonaws.com/{account.pk:012d}/{name}-dlq" if i % 6 else "",
        dlq_depth=rng.randrange(40) if i % 10 == 2 else 0,
        oldest_age=30 + rng.randrange(900),
        retention_period=345600,
        function_name=f"{name}-consumer" if i % 8 != 7 else "",
        function_memory_mb=512,
        batch_size=10,
        drain_rate=rng.uniform(-20, 20),
        time_to_loss_known=True,
        recent_invocations=rng.randrange(5000),
        recent_errors=rng.randrange(5) if i % 13 == 5 else 0,
        sparkline=[int(500 + 400 * math.sin((i + h) / 4)) for h in range(24)],
    )


def history(pipes: list[Pipeline], at, rng: random.Random) -> int:
    """The last 10 minutes of minute rows and the last 24 hourly rollups of each pipeline."""
    minute, hour = at.replace(second=0, microsecond=0), at.replace(minute=0, second=0, microsecond=0)
    samples, rollups = [], []
    for p in pipes:
        for m in range(10):
            sent = 100 + rng.randrange(100)
            samples.append(
                MetricSample(
                    pipeline=p,
                    minute=minute - timedelta(minutes=m),
                    visible=p.backlog,
                    in_flight=p.in_flight,
                    dlq_visible=p.dlq_depth,
                    oldest_age=p.oldest_age,
                    sent=sent,
                    received=sent,
                    deleted=sent,
                    lambda_invocations=sent // 10,
                    lambda_errors=0,
                    lambda_throttles=0,
                    lambda_duration_avg=50.0,
                )
            )
        for h in range(1, 25):
            sent = 6000 + rng.randrange(6000)
            rollups.append(
                MetricRollup(
                    pipeline=p,
                    hour=hour - timedelta(hours=h),
                    samples=60,
                    visible_max=p.backlog,
                    visible=p.backlog,
                    sent=sent,
                    received=sent,
                    deleted=sent,
                    lambda_invocations=sent // 10,
                    lambda_errors=0,
                    lambda_throttles=0,
                    lambda_duration_avg=50.0,
                    age_minutes=60,
                    late_minutes=0,
                    dlq_minutes=60,
                    dlq_arrivals=0,
                )
            )
    MetricSample.objects.bulk_create(samples, batch_size=5000)
    MetricRollup.objects.bulk_create(rollups, batch_size=5000)
    return len(samples) + len(rollups)


def grow(to: int, accounts: list[AwsAccount], rng: random.Random) -> int:
    """Add pipelines (with their history) until the fleet has `to`; the rows written."""
    at, start = now(), Pipeline.objects.count()
    pipes = [pipeline(i, accounts[i % len(accounts)], at, rng) for i in range(start, to)]
    Pipeline.objects.bulk_create(pipes, batch_size=2000)
    return history(list(Pipeline.objects.order_by("pk")[start:]), at, rng)


def operator() -> Client:
    user = User.objects.create_user("operator", password=None, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="pipelines", codename__startswith="view_")
    )
    client = Client()
    client.force_login(user)
    return client


# --- the measurement -------------------------------------------------------------------------------------


def timed(client: Client, path: str, params: dict, loads: int) -> tuple[list[float], bytes, int]:
    """`loads` timed requests after three untimed ones: their times, the last body, and its query count."""
    for _ in range(3):
        client.get(path, params)
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        res = client.get(path, params)
        times.append(time.perf_counter() - started)
        assert res.status_code == 200, (path, res.status_code)
    count = [0]

    def counter(execute, sql, params_, many, context):
        count[0] += 1
        return execute(sql, params_, many, context)

    with connection.execute_wrapper(counter):
        body = client.get(path, params).content
    return times, body, count[0]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def held(page: bytes) -> dict:
    """What overview.js sends with its refresh, read from the page."""
    html = page.decode()
    return {
        "known": ",".join(f"{pk}.{tag}" for pk, tag in ROW.findall(html)),
        "counts": re.search(r'data-counts="([\w-]+)"', html)[1],
        "since": re.search(r'data-at="([\d.]+)"', html)[1],
    }


def change_one_percent(rng: random.Random) -> int:
    """1 % of the pipelines, at random: a new backlog; one in five of them turns critical."""
    ids = list(Pipeline.objects.values_list("pk", flat=True))
    chosen = rng.sample(ids, max(1, len(ids) // 100))
    for n, pk in enumerate(chosen):
        fields = {"backlog": 2500 + n}
        if n % 5 == 0:
            fields.update(health=Health.CRITICAL, health_reasons=[["critical", "backlog above 1,000", "backlog"]])
        Pipeline.objects.filter(pk=pk).update(**fields)
    return len(chosen)


def synced_now() -> None:
    """Every pipeline but the stale ones (numbers ending in 03) synced a few seconds ago, as a live
    fleet is: writing 10,000 pipelines' history takes longer than three poll intervals."""
    Pipeline.objects.exclude(name__endswith="03").update(last_sync_at=now() - timedelta(seconds=5))


def measure(client: Client, size: int, loads: int, rng: random.Random) -> dict:
    synced_now()
    page_times, page, queries = timed(client, "/admin/", {}, loads)
    state = held(page)
    refresh_times, quiet, refresh_queries = timed(client, "/admin/overview/rows/", state, loads)
    started = time.perf_counter()
    assert client.get("/admin/overview/spenders/").status_code == 200
    spenders_ms = (time.perf_counter() - started) * 1000
    changed = change_one_percent(rng)
    moved = client.get("/admin/overview/rows/", state).content
    return {
        "size": size,
        "page_kb": len(page) / 1024,
        "rows": len(ROW.findall(page.decode())),
        "queries": queries,
        "p50": pct(page_times, 50) * 1000,
        "p95": pct(page_times, 95) * 1000,
        "quiet_b": len(quiet),
        "refresh_p50": pct(refresh_times, 50) * 1000,
        "refresh_p95": pct(refresh_times, 95) * 1000,
        "refresh_queries": refresh_queries,
        "changed": changed,
        "moved_kb": len(moved) / 1024,
        "spenders_ms": spenders_ms,
    }


def report(results: list[dict], engine: str) -> None:
    print(f"\n{engine}, {ACCOUNTS} accounts, {len(GROUPS)} groups; in-process test client, DEBUG off\n")
    print(
        f"{'pipelines':>10}{'page KB':>9}{'rows':>6}{'queries':>8}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'quiet B':>9}{'r p50':>7}{'r p95':>7}{'r qs':>6}{'1% rows':>9}{'1% KB':>8}{'spend ms':>10}"
    )
    for r in results:
        print(
            f"{r['size']:>10,}{r['page_kb']:>9.1f}{r['rows']:>6}{r['queries']:>8}{r['p50']:>8.0f}{r['p95']:>8.0f}"
            f"{r['quiet_b']:>9,}{r['refresh_p50']:>7.0f}{r['refresh_p95']:>7.0f}{r['refresh_queries']:>6}"
            f"{r['changed']:>9}{r['moved_kb']:>8.1f}{r['spenders_ms']:>10.0f}"
        )
    print(
        "page KB, rows, queries, p50/p95: the first page; quiet B: the refresh's bytes when nothing changed, "
        "r p50/p95 and r qs its time and queries;\n1% rows: pipelines changed, 1% KB: the refresh's bytes "
        "after that; spend ms: the top spenders, fetched once after the page"
    )
    top = results[-1]
    print(
        f"\nat {top['size']:,}: first page {top['page_kb']:.0f} KB ≤ {PAGE_KB} KB: {setup.yes(top['page_kb'] <= PAGE_KB)}; "
        f"p95 {top['p95']:.0f} ms ≤ {P95_MS} ms: {setup.yes(top['p95'] <= P95_MS)}; "
        f"refresh, nothing changed, {top['quiet_b']} B ≤ {REFRESH_KB} KB: {setup.yes(top['quiet_b'] <= REFRESH_KB * 1024)}"
    )
    flat = len({r["queries"] for r in results}) == 1
    print(f"the page's query count is the same at every size: {setup.yes(flat)}")


def main(args) -> int:
    engine = "SQLite" if args.sqlite else "Postgres"
    rng = random.Random(11)
    with setup.time_limit(args.time_limit):
        setup.migrate()
        accounts = [AwsAccount.objects.create(name=f"account-{n:02d}", region="eu-west-1") for n in range(ACCOUNTS)]
        client = operator()
        results = []
        for size in sorted(args.sizes):
            started = time.monotonic()
            written = grow(size, accounts, rng)
            if not args.sqlite:
                with connection.cursor() as cur:
                    cur.execute("ANALYZE")
            print(
                f"{size:,} pipelines ({written:,} history rows added in {time.monotonic() - started:.0f} s)", flush=True
            )
            results.append(measure(client, size, args.loads, rng))
    report(results, engine)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
