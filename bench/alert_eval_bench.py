"""Alert evaluation cost: what evaluating the rules after a cycle adds, for many pipelines.

Run from the repository root (also `make bench-alerts-eval`):

    .venv/bin/python bench/alert_eval_bench.py                       # 1000 pipelines, Postgres
    .venv/bin/python bench/alert_eval_bench.py --pipelines 200 --database-url sqlite:////tmp/e.sqlite3

It prints figures; it asserts nothing. The database (`opsboard_bench_alerts` on 127.0.0.1 by default,
recreated each run) gets N pipelines with the last 70 minutes of minute rows each (what the rules
read), a tenth of them in trouble (backlog over its threshold for the whole window, a DLQ filling,
throttles, 20% Lambda errors). Then, in one process:

1. The way a cycle does it: `history.refresh` (which every cycle ran before alerts existed; it now
   also hands over the rows it read) and then `evaluate.evaluate` for the fast and the metrics rules,
   first when the incidents open (they all open in that evaluation), then timed in the steady state
   (they keep firing), with queries counted.
2. A naive baseline doing the same evaluation per pipeline: one history query, one override query
   and one incident query for each, the same rules and transitions, each firing incident saved.

Times are wall-clock medians of 5 runs; the query counts are exact.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--pipelines", type=int, default=1000)
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/opsboard_bench_alerts")
    return ap.parse_args(argv)


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
setup.configure_django(ARGS.database_url)


from pipelines.alerting import evaluate, history, incidents, rules  # noqa: E402
from pipelines.clock import now  # noqa: E402
from pipelines.collection import store  # noqa: E402
from pipelines.models import UNRESOLVED, AlertRule, AwsAccount, Incident, MetricSample, Pipeline  # noqa: E402


def load(n: int, at) -> list:
    account = AwsAccount.objects.create(name="bench", region=setup.REGION)
    pipes = Pipeline.objects.bulk_create(
        [
            Pipeline(
                name=f"p{i:04d}",
                account=account,
                queue_url=f"https://sqs/123456789012/p{i}",
                queue_name=f"p{i}",
                dlq_url=f"https://sqs/123456789012/p{i}-dlq",
                function_name=f"f{i}",
                api_id=f"api{i}",
                retention_period=4 * 86400,
                last_sync_at=at,
                backlog=5000 if i % 10 == 0 else 20,
                dlq_depth=30 if i % 10 == 0 else 0,
                oldest_age=60,
                backlog_threshold=1000,
            )
            for i in range(n)
        ]
    )
    rows = []
    for p in pipes:
        bad = p.name.endswith("0")
        for m in range(70):
            minute = at - timedelta(minutes=69 - m)
            rows.append(
                MetricSample(
                    pipeline=p,
                    minute=minute,
                    visible=5000 if bad else 20,
                    in_flight=5,
                    delayed=0,
                    dlq_visible=(m // 2 if bad else 0),
                    oldest_age=60,
                    sent=100,
                    received=100,
                    deleted=100,
                    lambda_invocations=50,
                    lambda_errors=10 if bad else 0,
                    lambda_throttles=3 if bad else 0,
                    api_count=100,
                    api_5xx=0,
                    api_latency_avg=45.0,
                )
            )
    MetricSample.objects.bulk_create(rows, batch_size=5000)
    return list(Pipeline.objects.filter(account=account).order_by("pk"))


def naive(pipes, at, source) -> None:
    """Per pipeline: its own history, incidents and overrides, then the same rules and transitions."""
    for p in pipes:
        rows = history.recent_rows([p.pk], at, history.HISTORY_MINUTES).get(p.pk, [])
        trend = history.trend_from(
            p, [r for r in rows if r.minute >= at - timedelta(minutes=history.TREND_MINUTES)], at
        )
        overrides = {r.kind: r for r in AlertRule.objects.filter(pipeline=p)}
        current = {i.rule: i for i in Incident.objects.filter(pipeline=p, status__in=UNRESOLVED)}
        report = incidents.EvalReport()
        ctx = rules.Context(p, rows, trend, at)
        for kind, rule in rules.RULES.items():
            if source not in rule.sources:
                continue
            cfg = rule.config(p, overrides.get(kind))
            finding = rule.check(ctx, cfg) if cfg.enabled and rule.applies(p) else None
            incidents.apply_finding(p, kind, finding, current.get(kind), at, report)
        for inc in report.updated:
            inc.save(update_fields=["summary", "value", "threshold", "last_seen_at", "severity"])


def main(args: argparse.Namespace) -> None:
    if args.database_url.startswith("postgres"):
        setup.recreate_postgres(args.database_url)  # Django is set up but has not connected yet
    setup.migrate()
    at = store.floor_minute(now())
    started = time.perf_counter()
    pipes = load(args.pipelines, at)
    print(
        f"{len(pipes)} pipelines, {len(pipes) * 70:,} minute rows loaded in {time.perf_counter() - started:.1f} s "
        f"({args.database_url.split('://')[0]})"
    )

    def cycle(source):
        recent = history.refresh(pipes, at)
        return evaluate.evaluate(pipes, at, recent, source)

    first = cycle(rules.FAST), cycle(rules.METRICS)
    opened = sum(len(r.opened) for r in first)
    print(f"first evaluation opened {opened} incidents ({Incident.objects.count()} in all)")
    refresh_secs, refresh_queries = setup.timed(lambda: history.refresh(pipes, at))
    print(
        f"history.refresh (runs after every cycle already; it now also returns the rows the rules read): "
        f"{refresh_secs * 1000:.0f} ms, {refresh_queries} queries"
    )
    print(f"\n{'steady state, incidents firing':<40} {'median':>9} {'queries':>8}")
    recent = history.refresh(pipes, at)
    for source in (rules.FAST, rules.METRICS):
        batched = setup.timed(lambda source=source: evaluate.evaluate(pipes, at, recent, source))
        per_pipeline = setup.timed(lambda source=source: naive(pipes, at, source))
        print(f"{'evaluate.evaluate, ' + source + ' rules':<40} {batched[0] * 1000:>7.0f} ms {batched[1]:>8}")
        print(
            f"{'naive per-pipeline, ' + source + ' rules':<40} {per_pipeline[0] * 1000:>7.0f} ms {per_pipeline[1]:>8}"
        )
        print(f"{'  naive / batched':<40} {per_pipeline[0] / batched[0]:>8.1f}×")


if __name__ == "__main__":
    main(ARGS)
