"""A pipeline simulator: it plays the parts an AWS emulator cannot.

* **The API**: requests arrive on a daily curve plus bursts; each gets a request id, an access-log
  line in the API's log group (as API Gateway writes it) and, when accepted, a message in the queue
  carrying the id as a message attribute.
* **The consumer**: a Lambda-like worker with a concurrency limit and a batch size, realistic
  durations, a failure rate and poison messages that always fail (their receive count climbs until
  the queue's RedrivePolicy moves them to the DLQ); START / END / REPORT and error lines carrying the
  request id go to the function's log group. Each poison message fails one way, chosen when it is
  sent from its scenario's `poison_kinds` (`POISON_FAILURES`) and recorded in `SimPipeline.poisoned`:
  a missing key, a validation error whose numbers vary, a Node-style timeout, an invalid payload.
* **The metrics AWS would publish**: AWS/SQS, AWS/Lambda and AWS/ApiGateway datapoints every minute,
  computed from what the simulator actually did.

`Simulator.step()` advances live traffic against real queues; `Simulator.history()` publishes a
fluid model of the same scenarios for past hours, so a fresh demo has charts from its first minute.
The same simulator is the load generator for end-to-end tests and benchmarks.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from opsboard_demo.history import History
from opsboard_demo.provision import PipelineSpec, provision
from opsboard_demo.scenarios import Scenario
from opsboard_demo.state import Minute, SimPipeline, stats
from pipelines import aws

log = logging.getLogger(__name__)
UTC = UTC

PY_HANDLER_FRAME = '  File "/var/task/handler.py", line 12, in handler\n    process(record)'


def _invalid_payload(rng: random.Random, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    reason = "ValueError: order payload failed validation"
    return {"error": reason}, f"Traceback (most recent call last):\n{PY_HANDLER_FRAME}\n{reason}"


def _missing_customer(rng: random.Random, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    frame = '  File "/var/task/orders.py", line 41, in load_customer\n    return body["customer_id"]'
    return {"error": "KeyError: 'customer_id'"}, (
        f"Traceback (most recent call last):\n{PY_HANDLER_FRAME}\n{frame}\nKeyError: 'customer_id'"
    )


def _negative_amount(rng: random.Random, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    reason = f"ValueError: order {body.get('orderId')} amount {body.get('amount')} is negative"
    frame = '  File "/var/task/orders.py", line 77, in validate\n    raise ValueError(msg)'
    return {"error": reason}, f"Traceback (most recent call last):\n{PY_HANDLER_FRAME}\n{frame}\n{reason}"


def _inventory_timeout(rng: random.Random, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A Node consumer's error object, logged whole: type, message (a varying request number), stack."""
    message = f"inventory request {rng.randint(1000, 9999)} timed out after 3000 ms"
    return {
        "errorType": "TimeoutError",
        "errorMessage": message,
        "stack": [
            f"TimeoutError: {message}",
            "    at reserveItems (/var/task/inventory.js:88:11)",
            "    at async Runtime.handler (/var/task/index.js:12:5)",
        ],
    }, ""


#: How a poison message fails: kind -> (fields of its JSON error line, traceback logged after it).
POISON_FAILURES = {
    "invalid_payload": _invalid_payload,
    "missing_customer": _missing_customer,
    "negative_amount": _negative_amount,
    "inventory_timeout": _inventory_timeout,
}


class Simulator(History):
    def __init__(self, target: aws.Target, seed: int = 42):
        self.target = target
        self.rng = random.Random(seed)
        self.pipelines: list[SimPipeline] = []
        self._sqs = aws.client(target, "sqs")
        self._logs = aws.client(target, "logs")
        self._cw = aws.client(target, "cloudwatch")

    # --- set-up -----------------------------------------------------------------------------

    def add(self, name: str, scenario: Scenario, api: bool = True, tags: dict[str, str] | None = None) -> SimPipeline:
        """Provision a pipeline in the endpoint for this scenario and simulate it."""
        spec = PipelineSpec(
            name=name,
            fifo=scenario.fifo,
            api=api,
            max_receive_count=scenario.max_receive_count,
            retention_period=scenario.retention_period,
            batch_size=scenario.batch_size,
            maximum_concurrency=max(2, scenario.concurrency),
            tags=tags or {},
        )
        sim = SimPipeline(name=name, scenario=scenario, res=provision(self.target, spec))
        self.pipelines.append(sim)
        return sim

    # --- live traffic -----------------------------------------------------------------------

    def step(self, dt: float, at: datetime | None = None) -> None:
        """Advance every pipeline by dt seconds of live traffic."""
        at = at or datetime.now(UTC)
        for sim in self.pipelines:
            try:
                self._roll_minute(sim, at)
                self._api(sim, dt, at)
                self._consume(sim, dt, at)
            except aws.AwsError as exc:
                log.warning("simulator: %s: %s", sim.name, exc)
            except Exception as exc:
                log.warning("simulator: %s: %s", sim.name, aws.translate(exc, "simulating"))

    def run(self, tick: float = 2.0, stop=None, duration: float | None = None) -> None:
        """Generate traffic until `stop` (a threading.Event) is set or `duration` seconds pass."""
        started = last = time.monotonic()
        while not (stop and stop.is_set()):
            now_m = time.monotonic()
            if duration is not None and now_m - started >= duration:
                break
            self.step(max(0.1, now_m - last))
            last = now_m
            elapsed = time.monotonic() - now_m
            if stop:
                stop.wait(max(0.0, tick - elapsed))
            else:
                time.sleep(max(0.0, tick - elapsed))

    def _api(self, sim: SimPipeline, dt: float, at: datetime) -> None:
        sc = sim.scenario
        expected = sc.rate_at(at) * dt + sim.carry
        n = int(expected)
        sim.carry = expected - n
        if n <= 0:
            return
        ts_ms = int(at.timestamp() * 1000)
        access, entries, kinds = [], [], []
        for _ in range(n):
            rid = str(uuid.uuid4())
            roll = self.rng.random()
            status = 500 if roll < sc.api_5xx_rate else 400 if roll < sc.api_5xx_rate + sc.api_4xx_rate else 200
            latency = max(5.0, self.rng.lognormvariate(math.log(sc.latency_at(at)), 0.35))
            sim.minute.api_count += 1
            sim.minute.latencies.append(latency)
            if status >= 500:
                sim.minute.api_5xx += 1
            elif status >= 400:
                sim.minute.api_4xx += 1
            access.append(
                {
                    "timestamp": ts_ms,
                    "message": json.dumps(
                        {
                            "requestId": rid,
                            "ip": f"203.0.113.{self.rng.randint(1, 254)}",
                            "requestTime": at.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                            "httpMethod": "POST",
                            "resourcePath": "/",
                            "status": status,
                            "protocol": "HTTP/1.1",
                            "responseLength": 2 if status == 200 else 36,
                            "responseLatency": int(latency),
                            "integrationLatency": int(latency * 0.7) if status == 200 else None,
                        }
                    ),
                }
            )
            if status == 200:
                poison = self.rng.random() < sc.poison_rate
                body = {"requestId": rid, "orderId": self.rng.randint(10_000, 99_999), "poison": poison}
                kind = self._poison_kind(sc, body) if poison else ""
                kinds.append(kind)
                entry = {
                    "Id": str(len(entries)),
                    "MessageBody": json.dumps(body),
                    "MessageAttributes": {"requestId": {"DataType": "String", "StringValue": rid}},
                }
                if sc.fifo:
                    entry["MessageGroupId"] = f"customer-{self.rng.randint(1, 20)}"
                    entry["MessageDeduplicationId"] = rid
                entries.append(entry)
        if sim.res.api_log_group:
            self._put_logs(sim.res.api_log_group, "access", access)
        for i in range(0, len(entries), 10):
            chunk = entries[i : i + 10]
            for j, e in enumerate(chunk):
                e["Id"] = str(j)
            resp = self._sqs.send_message_batch(QueueUrl=sim.res.queue_url, Entries=chunk)
            for ok in resp.get("Successful", []):
                sim.outstanding[ok["MessageId"]] = at.timestamp()
                if kinds[i + int(ok["Id"])]:
                    sim.poisoned[ok["MessageId"]] = kinds[i + int(ok["Id"])]
            sim.minute.sent += len(resp.get("Successful", []))

    def _poison_kind(self, sc: Scenario, body: dict[str, Any]) -> str:
        """Choose how a poison message fails and shape its body to match (the default kind alone
        draws nothing from the random generator, so scenarios without kinds replay as before)."""
        kind = sc.poison_kinds[0] if len(sc.poison_kinds) == 1 else self.rng.choice(sc.poison_kinds)
        if kind != "invalid_payload":
            body["poison"] = kind
        if kind == "negative_amount":
            body["amount"] = -self.rng.randint(1, 500)
        return kind

    def _consume(self, sim: SimPipeline, dt: float, at: datetime) -> None:
        sc = sim.scenario
        # Work the consumer may do: its capacity over this tick, banked up to two ticks' worth or one
        # batch, whichever is more (a slow consumer takes several ticks to finish one message).
        sim.credit = min(sim.credit + sc.capacity * dt, max(sc.capacity * dt * 2, min(sc.batch_size, 10)))
        batches = 0
        busy_ms = 0.0
        while sim.credit >= 1 and batches < sc.concurrency * 4:
            want = min(sc.batch_size, 10, max(1, int(sim.credit)))
            resp = self._sqs.receive_message(
                QueueUrl=sim.res.queue_url,
                MaxNumberOfMessages=want,
                VisibilityTimeout=sc.retry_delay,
                MessageAttributeNames=["All"],
                AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                sim.minute.empty_receives += 1
                break
            batches += 1
            sim.minute.received += len(msgs)
            busy_ms += self._invoke(sim, msgs, at)
            sim.credit -= len(msgs)
        if batches:
            sim.minute.concurrency = max(
                sim.minute.concurrency, min(sc.concurrency, max(1, math.ceil(busy_ms / (dt * 1000))))
            )
        # More work waiting than the concurrency limit admits: the poller is throttled, at the same
        # rate the history model uses (twice the concurrency per minute).
        if sim.credit < 1 and len(sim.outstanding) > sc.concurrency * sc.batch_size * 3:
            sim.throttled += sc.concurrency * 2 * dt / 60
            whole = int(sim.throttled)
            sim.minute.throttles += whole
            sim.throttled -= whole

    def _invoke(self, sim: SimPipeline, msgs: list[dict[str, Any]], at: datetime) -> float:
        """One Lambda invocation for a batch: delete what succeeded, leave what failed, log it all."""
        sc = sim.scenario
        inv_id = str(uuid.uuid4())
        ts = int(at.timestamp() * 1000)
        lines = [f"START RequestId: {inv_id} Version: $LATEST"]
        done, failed = [], []
        duration = 0.0
        for m in msgs:
            rid = (m.get("MessageAttributes", {}).get("requestId") or {}).get("StringValue", "")
            body = json.loads(m["Body"]) if m["Body"].startswith("{") else {}
            receives = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            duration += max(2.0, self.rng.gauss(sc.ms_per_message, sc.ms_per_message * 0.25))
            if body.get("poison") or self.rng.random() < sc.failure_rate:
                if body.get("poison"):
                    kind = body["poison"] if isinstance(body["poison"], str) else "invalid_payload"
                    fields, traceback = POISON_FAILURES.get(kind, _invalid_payload)(self.rng, body)
                else:
                    reason = "TimeoutError: downstream service did not answer"
                    fields = {"error": reason}
                    traceback = f"Traceback (most recent call last):\n{PY_HANDLER_FRAME}\n{reason}"
                record = {"level": "ERROR", "message": "message failed", "correlation_id": rid}
                record.update(messageId=m["MessageId"], receiveCount=receives, **fields)
                lines.append(json.dumps(record))
                if traceback:
                    lines.append(traceback)
                failed.append(m)
                if receives >= sc.max_receive_count:  # the next receive moves it to the DLQ
                    sent = sim.outstanding.pop(m["MessageId"], None)
                    sim.dead[m["MessageId"]] = sent if sent is not None else at.timestamp()
            else:
                lines.append(
                    json.dumps(
                        {
                            "level": "INFO",
                            "message": "processed",
                            "correlation_id": rid,
                            "messageId": m["MessageId"],
                            "receiveCount": receives,
                        }
                    )
                )
                done.append(m)
        if done:
            resp = self._sqs.delete_message_batch(
                QueueUrl=sim.res.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            sim.minute.deleted += len(resp.get("Successful", []))
            for m in done:
                sim.outstanding.pop(m["MessageId"], None)
        lines.append(f"END RequestId: {inv_id}")
        lines.append(
            f"REPORT RequestId: {inv_id}\tDuration: {duration:.2f} ms\tBilled Duration: {math.ceil(duration)} ms"
            f"\tMemory Size: 256 MB\tMax Memory Used: {self.rng.randint(70, 120)} MB"
        )
        sim.minute.invocations += 1
        sim.minute.durations.append(duration)
        if failed:
            sim.minute.errors += 1
        if sim.res.consumer_log_group:
            self._put_logs(
                sim.res.consumer_log_group,
                f"{at:%Y/%m/%d}/[$LATEST]{inv_id[:8]}",
                [{"timestamp": ts + i, "message": line} for i, line in enumerate(lines)],
            )
        return duration

    def _put_logs(self, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        try:
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except self._logs.exceptions.ResourceAlreadyExistsException:
            pass
        self._logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    # --- metrics ----------------------------------------------------------------------------

    def _roll_minute(self, sim: SimPipeline, at: datetime) -> None:
        start = at.replace(second=0, microsecond=0)
        if sim.minute_start is None:
            sim.minute_start = start
            return
        if start <= sim.minute_start:
            return
        counts = {}
        for role, url in (("queue", sim.res.queue_url), ("dlq", sim.res.dlq_url)):
            if url:
                counts[role] = aws.queue_counts(self.target, url)
        oldest = at.timestamp() - min(sim.outstanding.values()) if sim.outstanding else 0.0
        dlq_oldest = at.timestamp() - min(sim.dead.values()) if sim.dead else 0.0
        self.publish(sim, sim.minute_start, sim.minute, counts, oldest, dlq_oldest)
        sim.minute, sim.minute_start = Minute(), start

    def publish(
        self,
        sim: SimPipeline,
        ts: datetime,
        m: Minute,
        counts: dict[str, dict[str, int]],
        oldest: float,
        dlq_oldest: float,
        buffer: dict[str, list] | None = None,
    ) -> None:
        """Publish one minute of AWS/SQS, AWS/Lambda and AWS/ApiGateway datapoints.

        With a `buffer`, datapoints are collected there for `flush` instead of sent at once.
        """
        q = [{"Name": "QueueName", "Value": sim.queue_name}]
        data: dict[str, list[dict[str, Any]]] = buffer if buffer is not None else defaultdict(list)

        def put(ns, name, dims, value=None, stats=None, unit="Count"):
            d = {"MetricName": name, "Dimensions": dims, "Timestamp": ts, "Unit": unit}
            if stats:
                d["StatisticValues"] = stats
            else:
                d["Value"] = float(value)
            data[ns].append(d)

        for name, value in (
            ("NumberOfMessagesSent", m.sent),
            ("NumberOfMessagesReceived", m.received),
            ("NumberOfMessagesDeleted", m.deleted),
            ("NumberOfEmptyReceives", m.empty_receives),
        ):
            put("AWS/SQS", name, q, value)
        put("AWS/SQS", "ApproximateAgeOfOldestMessage", q, round(oldest), unit="Seconds")
        if "queue" in counts:
            put("AWS/SQS", "ApproximateNumberOfMessagesVisible", q, counts["queue"]["visible"])
            put("AWS/SQS", "ApproximateNumberOfMessagesNotVisible", q, counts["queue"]["in_flight"])
            put("AWS/SQS", "ApproximateNumberOfMessagesDelayed", q, counts["queue"]["delayed"])
        if sim.res.dlq_arn:
            dq = [{"Name": "QueueName", "Value": sim.res.dlq_arn.rsplit(":", 1)[-1]}]
            if "dlq" in counts:
                put("AWS/SQS", "ApproximateNumberOfMessagesVisible", dq, counts["dlq"]["visible"])
            put("AWS/SQS", "ApproximateAgeOfOldestMessage", dq, round(dlq_oldest), unit="Seconds")
        if sim.res.function_name:
            fn = [{"Name": "FunctionName", "Value": sim.res.function_name}]
            put("AWS/Lambda", "Invocations", fn, m.invocations)
            put("AWS/Lambda", "Errors", fn, m.errors)
            put("AWS/Lambda", "Throttles", fn, m.throttles)
            put("AWS/Lambda", "ConcurrentExecutions", fn, m.concurrency)
            if m.durations:
                put("AWS/Lambda", "Duration", fn, stats=stats(m.durations), unit="Milliseconds")
        if sim.res.api_id:
            api = [{"Name": "ApiName", "Value": f"{sim.name}-api"}, {"Name": "Stage", "Value": sim.res.api_stage}]
            put("AWS/ApiGateway", "Count", api, m.api_count)
            put("AWS/ApiGateway", "4XXError", api, m.api_4xx)
            put("AWS/ApiGateway", "5XXError", api, m.api_5xx)
            if m.latencies:
                put("AWS/ApiGateway", "Latency", api, stats=stats(m.latencies), unit="Milliseconds")
        if buffer is None:
            self.flush(data)

    def flush(self, data: dict[str, list[dict[str, Any]]]) -> None:
        for ns, items in data.items():
            for i in range(0, len(items), 1000):
                self._cw.put_metric_data(Namespace=ns, MetricData=items[i : i + 1000])
        data.clear()
