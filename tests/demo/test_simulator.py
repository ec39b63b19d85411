"""The simulator against the emulator: traffic, logs, metrics and scenarios behave as AWS would."""

import json
from datetime import UTC, datetime, timedelta

from opsboard_demo.scenarios import Scenario, scenario_named
from opsboard_demo.simulator import Simulator
from pipelines import aws
from pipelines.collection import backfill, cycles
from pipelines.models import MetricSample, Pipeline
from pipelines.registry.discovery import discover

UTC = UTC
T0 = datetime(2026, 11, 26, 12, 0, 5, tzinfo=UTC)  # minute 0 of a 30-minute cycle: the spike's burst


def events(target, group, before=None):
    logs = aws.client(target, "logs")
    out = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group):
        out.extend(e["message"] for e in page["events"] if before is None or e["timestamp"] < before.timestamp() * 1000)
    return out


def metric_sum(target, namespace, name, dims, start, end):
    res = aws.metric_data(
        target,
        [
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        start,
        end,
    )
    return sum(res[0]["Values"])


def test_traffic_carries_the_request_id_through_logs_queue_and_metrics(target):
    sim = Simulator(target, seed=1)
    s = sim.add("orders", Scenario("t", rate=3.0, failure_rate=0.0, poison_rate=0.0, api_5xx_rate=0, api_4xx_rate=0))
    sim.step(10, at=T0)
    sim.step(10, at=T0 + timedelta(seconds=10))
    sim.step(1, at=T0 + timedelta(seconds=61))  # rolls the minute: publishes its metrics
    access = [json.loads(m) for m in events(target, s.res.api_log_group)]
    assert access and all(a["status"] == 200 and a["responseLatency"] > 0 for a in access)
    lambda_lines = events(target, s.res.consumer_log_group)
    assert any(line.startswith("START RequestId:") for line in lambda_lines)
    assert any(line.startswith("REPORT RequestId:") and "Duration:" in line for line in lambda_lines)
    processed = [json.loads(line) for line in lambda_lines if line.startswith("{")]
    assert {p["correlation_id"] for p in processed} <= {a["requestId"] for a in access}
    assert processed, "the consumer handled some requests"
    sent = metric_sum(
        target,
        "AWS/SQS",
        "NumberOfMessagesSent",
        {"QueueName": "orders"},
        T0 - timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    )
    api = metric_sum(
        target,
        "AWS/ApiGateway",
        "Count",
        {"ApiName": "orders-api", "Stage": "prod"},
        T0 - timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    )
    first_minute = [a for a in access if a["requestTime"].startswith("26/Nov/2026:12:00:")]
    assert sent == len(first_minute) == api
    invocations = metric_sum(
        target,
        "AWS/Lambda",
        "Invocations",
        {"FunctionName": "orders-consumer"},
        T0 - timedelta(minutes=1),
        T0 + timedelta(minutes=2),
    )
    first_minute_lines = events(target, s.res.consumer_log_group, before=T0.replace(second=0) + timedelta(minutes=1))
    assert invocations == sum(1 for line in first_minute_lines if line.startswith("START")) > 0


def test_poison_messages_end_in_the_dlq(target):
    sim = Simulator(target, seed=2)
    sc = Scenario("p", rate=2.0, poison_rate=0.5, max_receive_count=2, retry_delay=0, failure_rate=0)
    s = sim.add("invoices", sc)
    for i in range(12):
        sim.step(2, at=T0 + timedelta(seconds=2 * i))
    dlq = aws.queue_counts(target, s.res.dlq_url)
    assert dlq["visible"] > 0
    errors = [line for line in events(target, s.res.consumer_log_group) if '"level": "ERROR"' in line]
    assert errors and "order payload failed validation" in errors[0]


def test_a_spike_builds_a_backlog_the_collector_sees(target, account):
    sim = Simulator(target, seed=3)
    s = sim.add("checkout-events", scenario_named("spike"))
    p = Pipeline(name="checkout-events", account=account)
    p.apply_discovery(discover(account.target(), s.res.queue_url).fields)
    p.save()
    for i in range(4):
        sim.step(10, at=T0 + timedelta(seconds=10 * i))
    cycles.run_fast_cycle(account, [p], at=T0 + timedelta(seconds=45))
    assert MetricSample.objects.get(pipeline=p).visible > 0


def test_history_feeds_the_backfill(target, account):
    sim = Simulator(target, seed=4)
    made = {name: sim.add(name, scenario_named(name)) for name in ("spike", "poison")}
    pipes = []
    for name, s in made.items():
        p = Pipeline(name=name, account=account, api_kind="rest", api_id=s.res.api_id, api_stage="prod")
        p.apply_discovery(discover(account.target(), s.res.queue_url, "rest", s.res.api_id, "prod").fields)
        p.save()
        pipes.append(p)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    sim.history(0.75, end=end)
    backfill.backfill(account, pipes, end - timedelta(minutes=45), end, at=end, max_window=timedelta(minutes=15))
    spike, poison = pipes
    assert MetricSample.objects.filter(pipeline=spike, visible__gt=0).exists()
    assert MetricSample.objects.filter(pipeline=poison, dlq_visible__gt=0).exists()
    assert MetricSample.objects.filter(pipeline=spike, api_count__gt=0, lambda_invocations__gt=0).exists()


def test_a_slow_consumer_processes_live_what_the_history_says_it_does(target):
    # The throttle scenario's consumer does one message per 5 s: 12 a minute, live as in the history.
    sim = Simulator(target, seed=3)
    s = sim.add("slow", scenario_named("throttle"), api=False)
    sim._seed(s, backlog=40, dlq=0, oldest=600, dlq_oldest=0, end=T0)  # more waiting than it can do
    start = T0.replace(second=0)
    for i in range(30):  # one minute of 2-second ticks
        sim.step(2, at=start + timedelta(seconds=2 * i))
    assert 10 <= s.minute.received <= 12, s.minute.received
