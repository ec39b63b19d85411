"""Collection cycles against the emulator over HTTP: values, upserts, batching, faults, staleness."""

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError

from pipelines import aws
from pipelines.collection import backfill, cloudwatch, cycles, store
from pipelines.collection.cost import monthly_cost
from pipelines.models import AwsAccount, Health, MetricSample, Pipeline, PollCycle

UTC = UTC


def sqs_of(target):
    return aws.client(target, "sqs")


def seed_counts(target, p, visible, in_flight, delayed, dlq):
    sqs = sqs_of(target)
    for i in range(visible + in_flight):
        sqs.send_message(QueueUrl=p.queue_url, MessageBody=f"m{i}")
    for _ in range(in_flight):
        sqs.receive_message(QueueUrl=p.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=300)
    for i in range(delayed):
        sqs.send_message(QueueUrl=p.queue_url, MessageBody=f"d{i}", DelaySeconds=900)
    for i in range(dlq):
        sqs.send_message(QueueUrl=p.dlq_url, MessageBody=f"x{i}")


def put_metric(target, namespace, name, dims, points):
    """points: {datetime: value}"""
    aws.client(target, "cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                "Timestamp": ts,
                "Value": float(v),
            }
            for ts, v in points.items()
        ],
    )


def test_it_stores_the_counts_the_emulator_holds(target, register, account):
    a = register("orders")
    b = register("billing")
    seed_counts(target, a, visible=5, in_flight=2, delayed=3, dlq=4)
    seed_counts(target, b, visible=1, in_flight=0, delayed=0, dlq=0)
    report = cycles.run_fast_cycle(account)
    assert report.errors == {}
    assert report.calls == {"sqs:GetQueueAttributes": 4}  # the floor: one per queue and DLQ
    sa = MetricSample.objects.get(pipeline=a)
    assert (sa.visible, sa.in_flight, sa.delayed, sa.dlq_visible) == (5, 2, 3, 4)
    sb = MetricSample.objects.get(pipeline=b)
    assert (sb.visible, sb.in_flight, sb.delayed, sb.dlq_visible) == (1, 0, 0, 0)
    a.refresh_from_db()
    assert (a.backlog, a.in_flight, a.dlq_depth) == (5, 2, 4) and a.last_sync_at is not None
    cycle = PollCycle.objects.get(kind="fast")
    assert cycle.api_calls == 4 and cycle.pipelines == 2 and cycle.samples_written == 2


def test_it_upserts_instead_of_duplicating(target, register, account):
    p = register("orders")
    at = datetime(2026, 11, 26, 12, 0, 10, tzinfo=UTC)
    seed_counts(target, p, 2, 0, 0, 0)
    cycles.run_fast_cycle(account, [p], at=at)
    seed_counts(target, p, 3, 0, 0, 0)
    cycles.run_fast_cycle(account, [p], at=at + timedelta(seconds=30))
    rows = list(MetricSample.objects.filter(pipeline=p))
    assert len(rows) == 1 and rows[0].visible == 5
    assert rows[0].minute == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("run", ["fast", "metrics"])
def test_a_cycle_whose_database_fails_while_storing_is_recorded_as_failed(register, account, monkeypatch, run):
    p = register("orders")

    def cut(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(cycles.history, "refresh", cut)
    report = getattr(cycles, f"run_{run}_cycle")(account)
    assert report.errors == {
        "orders": "the database failed while storing (OperationalError); the next cycle reads again"
    }
    cycle = PollCycle.objects.get()
    assert (cycle.kind, cycle.failed) == (run, 1) and "the database failed" in cycle.errors[0]
    if run == "fast":  # its writes are one transaction: none of them is kept
        assert not MetricSample.objects.exists()
        p.refresh_from_db()
        assert p.last_sync_at is None


def test_it_polls_only_pipelines_that_are_due(register, account):
    fast = register("fast")
    slow = register("slow")
    Pipeline.objects.filter(pk=slow.pk).update(poll_interval=600)
    t0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    cycles.run_fast_cycle(account, at=t0)
    report = cycles.run_fast_cycle(account, at=t0 + timedelta(seconds=60))
    assert report.pipelines == 1 and report.calls == {"sqs:GetQueueAttributes": 2}
    assert MetricSample.objects.filter(pipeline=slow).count() == 1
    assert MetricSample.objects.filter(pipeline=fast).count() == 2


def test_it_fetches_cloudwatch_metrics_and_degrades_on_percentiles(target, register, account):
    p = register("orders", api=True)
    end = store.floor_minute(datetime.now(UTC))
    minutes = [end - timedelta(minutes=i) for i in range(1, 4)]
    put_metric(
        target, "AWS/SQS", "NumberOfMessagesSent", {"QueueName": "orders"}, {m: 10 + i for i, m in enumerate(minutes)}
    )
    put_metric(target, "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": "orders"}, dict.fromkeys(minutes, 42))
    put_metric(target, "AWS/Lambda", "Errors", {"FunctionName": "orders-consumer"}, {minutes[0]: 3})
    put_metric(target, "AWS/Lambda", "Duration", {"FunctionName": "orders-consumer"}, {minutes[0]: 250})
    put_metric(target, "AWS/ApiGateway", "Count", {"ApiName": "orders-api", "Stage": "prod"}, {minutes[1]: 7})
    report = cycles.run_metrics_cycle(account, at=end + timedelta(seconds=20))
    assert report.errors == {}
    rows = {s.minute: s for s in MetricSample.objects.filter(pipeline=p)}
    assert rows[minutes[0]].sent == 10 and rows[minutes[2]].sent == 12
    assert rows[minutes[0]].lambda_errors == 3 and rows[minutes[1]].api_count == 7
    assert rows[minutes[0]].oldest_age == 42 and rows[minutes[0]].lambda_duration_avg == 250
    p.refresh_from_db()
    assert p.oldest_age == 42 and p.metrics_synced_until == end and p.metrics_error == ""
    account.refresh_from_db()
    assert account.unsupported_statistics == ["percentile"]
    # The next cycle asks only for what the endpoint supports: one call, no retry.
    report = cycles.run_metrics_cycle(account, at=end + timedelta(minutes=5))
    assert report.calls == {"cloudwatch:GetMetricData": 1} and report.errors == {}


def test_it_batches_over_500_queries_into_the_fewest_calls(account):
    # 40 pipelines × 15 metrics (no percentiles) = 600 queries -> 2 calls; no AWS resources needed.
    account.unsupported_statistics = ["percentile"]
    account.save()
    for i in range(40):
        Pipeline.objects.create(
            name=f"p{i}",
            account=account,
            queue_url=f"{account.endpoint_url}/123456789012/p{i}",
            queue_name=f"p{i}",
            dlq_arn=f"arn:aws:sqs:us-east-1:123456789012:p{i}-dlq",
            dlq_url=f"{account.endpoint_url}/123456789012/p{i}-dlq",
            function_name=f"f{i}",
            api_id=f"a{i}",
            api_kind="http",
            api_stage="$default",
        )
    pipes = list(Pipeline.objects.all())
    queries = [q for p in pipes for q in cloudwatch.build_queries(p, cloudwatch.plan_metrics(p, ["percentile"]), 60)]
    assert len(queries) == 600
    assert [len(c) for c in cloudwatch.chunk_queries(queries, 15)] == [500, 100]
    # The datapoint limit binds too: 1,440 points per query -> 70 queries per call.
    assert [len(c) for c in cloudwatch.chunk_queries(queries, 1440)][:2] == [70, 70]
    report = cycles.run_metrics_cycle(account, at=quarter_hour())  # a cycle that fetches the DLQ age too
    assert report.calls == {"cloudwatch:GetMetricData": math.ceil(600 / 500)}
    assert report.metrics_requested == 600


def quarter_hour():
    """A recent time on a 15-minute boundary: a metrics cycle that fetches every metric."""
    now = datetime.now(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)


def test_it_skips_the_dlq_age_while_the_dlq_is_known_empty(register, account, target):
    p = register("orders")
    at = quarter_hour()
    cycles.run_fast_cycle(account, at=at)  # sees the DLQ empty
    report = cycles.run_metrics_cycle(account, at=at)
    with_dlq_age = len(cloudwatch.plan_metrics(p, account.unsupported_statistics))
    assert report.metrics_requested == with_dlq_age - 1
    sqs_of(target).send_message(QueueUrl=p.dlq_url, MessageBody="failed")
    cycles.run_fast_cycle(account, at=at + timedelta(minutes=1))
    report = cycles.run_metrics_cycle(account, at=at + timedelta(minutes=1, seconds=5))
    assert report.metrics_requested == with_dlq_age


def test_the_dlq_age_is_fetched_every_third_cycle_over_a_window_without_gaps(register, account, target, settings):
    p = register("orders")
    sqs_of(target).send_message(QueueUrl=p.dlq_url, MessageBody="failed")
    at = quarter_hour()
    cycles.run_fast_cycle(account, at=at)
    dlq_name = p.dlq_arn.rsplit(":", 1)[-1]
    put_metric(
        target,
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        {"QueueName": dlq_name},
        {at - timedelta(minutes=m): 600 + 60 * m for m in range(1, 16)},
    )
    planned = len(cloudwatch.plan_metrics(p, account.unsupported_statistics))
    requested = []
    for i in range(3):  # three consecutive 5-minute cycles
        requested.append(cycles.run_metrics_cycle(account, at=at + timedelta(minutes=5 * i)).metrics_requested)
    assert requested == [planned, planned - 1, planned - 1]
    # The cycle that fetched it covered three intervals: every minute since the previous such cycle.
    ages = MetricSample.objects.filter(pipeline=p, dlq_oldest_age__isnull=False).count()
    assert ages == 15


def test_http_apis_use_their_own_metric_names(db):
    account = AwsAccount.objects.create(name="a", region="us-east-1")
    p = Pipeline.objects.create(
        name="h",
        account=account,
        queue_url="http://h/123456789012/h",
        queue_name="h",
        api_kind="http",
        api_id="abc123",
        api_stage="$default",
    )
    names = {
        q["MetricStat"]["Metric"]["MetricName"]: q["MetricStat"]["Metric"]["Dimensions"]
        for q in cloudwatch.build_queries(p, cloudwatch.plan_metrics(p), 60)
        if q["MetricStat"]["Metric"]["Namespace"] == "AWS/ApiGateway"
    }
    assert {"Count", "4xx", "5xx", "Latency"} == set(names)
    assert names["4xx"] == [{"Name": "ApiId", "Value": "abc123"}, {"Name": "Stage", "Value": "$default"}]


def test_one_failing_pipeline_does_not_stop_the_others(target, register, account):
    good = register("good")
    gone = register("gone")
    sqs_of(target).delete_queue(QueueUrl=gone.queue_url)
    report = cycles.run_fast_cycle(account)
    assert set(report.errors) == {"gone"} and "does not exist" in report.errors["gone"]
    good.refresh_from_db(), gone.refresh_from_db()
    assert good.last_error == "" and good.last_sync_at is not None
    assert "does not exist" in gone.last_error and gone.consecutive_failures == 1
    assert MetricSample.objects.filter(pipeline=good).exists()


def test_it_survives_throttling_and_an_outage_mid_cycle_then_recovers(
    target, build, proxied_account, fault_proxy, settings
):
    settings.COLLECT_CONCURRENCY = 1  # deterministic order, so the outage hits mid-cycle
    from pipelines.registry.discovery import discover

    pipes = []
    for i in range(6):
        made = build(f"q{i}")
        p = Pipeline(name=f"q{i}", account=proxied_account)
        p.apply_discovery(discover(proxied_account.target(), made.queue_url).fields)
        p.save()
        pipes.append(p)
    at = datetime.now(UTC)
    # Throttling on a share of calls: botocore's retries absorb it.
    fault_proxy.throttle_rate = 0.3
    report = cycles.run_fast_cycle(proxied_account, at=at)
    assert fault_proxy.counts["throttle"] > 0
    assert report.api_calls == 12 + fault_proxy.counts["throttle"]  # retries are metered too
    # The emulator goes down after 5 more requests.
    fault_proxy.throttle_rate = 0.0
    seen = {"n": 0}

    def outage(req):
        seen["n"] += 1
        return "drop" if seen["n"] > 5 else ""

    fault_proxy.rule = outage
    report = cycles.run_fast_cycle(proxied_account, at=at + timedelta(minutes=1))
    # q0 and q1 were read whole, q2's queue but not its DLQ, q3-q5 not at all.
    assert sorted(report.errors) == ["q2", "q3", "q4", "q5"]
    assert "DLQ:" in report.errors["q2"] and "queue:" in report.errors["q3"]
    assert MetricSample.objects.filter(minute=store.floor_minute(at + timedelta(minutes=1))).count() == 3
    failed = Pipeline.objects.filter(consecutive_failures=1)
    assert failed.count() == len(report.errors) and all(p.last_error for p in failed)
    # Back up: the next cycle recovers every pipeline, and nothing was written twice.
    fault_proxy.rule = None
    report = cycles.run_fast_cycle(proxied_account, at=at + timedelta(minutes=2))
    assert report.errors == {}
    assert not Pipeline.objects.exclude(last_error="").exists()
    assert not Pipeline.objects.filter(consecutive_failures__gt=0).exists()
    assert MetricSample.objects.count() == 6 + 3 + 6
    per_minute = MetricSample.objects.values_list("pipeline_id", "minute")
    assert len(per_minute) == len(set(per_minute))


def test_a_metrics_call_that_fails_marks_its_pipelines_and_keeps_going(register, proxied_account, fault_proxy):
    p = Pipeline.objects.create(name="x", account=proxied_account, queue_url="http://h/123456789012/x", queue_name="x")
    fault_proxy.error_rate = 1.0
    report = cycles.run_metrics_cycle(proxied_account)
    p.refresh_from_db()
    assert "x" in report.errors and p.metrics_error and p.metrics_synced_until is None
    fault_proxy.error_rate = 0.0
    report = cycles.run_metrics_cycle(proxied_account)
    p.refresh_from_db()
    assert report.errors == {} and p.metrics_error == "" and p.metrics_synced_until is not None


def test_it_reads_stale_after_three_poll_intervals(db, monkeypatch):
    account = AwsAccount.objects.create(name="a", region="us-east-1")
    t0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    p = Pipeline.objects.create(
        name="p",
        account=account,
        queue_url="http://h/123456789012/p",
        poll_interval=60,
        last_sync_at=t0,
        backlog=0,
        dlq_depth=0,
    )
    assert p.current_health(t0 + timedelta(seconds=179))[0] == Health.OK
    assert p.current_health(t0 + timedelta(seconds=181))[0] == Health.STALE
    monkeypatch.setattr("pipelines.clock.now", lambda: t0 + timedelta(minutes=10))
    health, reasons = p.current_health()
    assert health == Health.STALE and "no data for 10 min" in reasons[0][1]
    p.poll_interval = 600
    assert p.current_health()[0] == Health.OK


def test_it_chooses_the_period_cloudwatch_still_keeps(settings):
    settings.RAW_RETENTION_DAYS = 15
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    segs = backfill.backfill_segments(at - timedelta(days=100), at, at)
    assert [(s.period, s.rollup) for s in segs] == [(3600, True), (3600, True), (60, False)]
    settings.RAW_RETENTION_DAYS = 30
    segs = backfill.backfill_segments(at - timedelta(days=100), at - timedelta(days=1), at)
    assert [(s.period, s.rollup) for s in segs] == [(3600, True), (3600, True), (300, False), (60, False)]
    assert segs[2].start == at - timedelta(days=30) and segs[2].end == at - timedelta(days=15)
    assert backfill.choose_period(at - timedelta(days=2), at) == 60
    assert backfill.choose_period(at - timedelta(days=20), at) == 300
    assert backfill.choose_period(at - timedelta(days=90), at) == 3600


def test_it_backfills_history_into_minutes_and_hours(target, register, account):
    from pipelines.models import MetricRollup

    p = register("orders", consumer=False, dlq=False)
    at = store.floor_minute(datetime.now(UTC))
    recent = {at - timedelta(minutes=m): 5 for m in range(10, 130)}
    old = {store.floor_hour(at - timedelta(days=20)) + timedelta(minutes=m): 2 for m in range(60)}
    put_metric(target, "AWS/SQS", "NumberOfMessagesSent", {"QueueName": "orders"}, {**recent, **old})
    report = backfill.backfill(account, [p], at - timedelta(days=21), at, at=at)
    assert report.errors == {}
    assert MetricSample.objects.filter(pipeline=p, sent=5).count() == 120
    hour = MetricRollup.objects.get(pipeline=p, hour=store.floor_hour(at - timedelta(days=20)))
    assert hour.sent == 120


def test_monthly_cost_at_the_defaults_is_within_budget(register, account):
    p = register("orders", api=True)
    cost = monthly_cost(p)
    assert cost["sqs_calls"] == pytest.approx(2 * 730 * 60)
    # 16 metrics every 5 minutes, the DLQ's oldest age every 15.
    assert cost["metrics_requested"] == pytest.approx((16 + 1 / 3) * 730 * 12)
    assert cost["total"] == pytest.approx(cost["sqs"] + cost["cloudwatch"])
    assert cost["total"] <= 1.50
