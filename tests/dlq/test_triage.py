"""DLQ triage on the emulator: a DLQ filled with known messages and the consumer's log lines for them
is scanned, joined and grouped with exact counts; the queue is left as it was found; the calls stay
few; what could not be read is said."""

import json
import math
import uuid
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from django.test import override_settings

from opsboard_demo.scenarios import Scenario
from opsboard_demo.simulator import POISON_FAILURES, Simulator
from pipelines import aws, clock
from pipelines.dlq import logjoin, peek, triage
from pipelines.dlq.queues import RedriveError
from pipelines.models import AuditAction, AuditEntry, Pipeline, TriageMessage, TriageScan, TriageStatus
from pipelines.registry.discovery import discover
from tests.redrive_support import counts
from tests.users import staff

KEY_TITLE = "KeyError: 'customer_id' — in /var/task/orders.py in load_customer"
AMOUNT_TITLE = "ValueError: order <n> amount <n> is negative — in /var/task/orders.py in validate"
NODE_TITLE = (
    "TypeError: Cannot read properties of undefined (reading 'sku') — in /var/task/inventory.js in reserveItems"
)
TIMEOUT_TITLE = "Task timed out after <n> seconds"
OBJECT_TITLE = "JSON object {note: string, order: number}"


def traceback(frame: str, last: str) -> str:
    return (
        'Traceback (most recent call last):\n  File "/var/task/handler.py", line 12, in handler\n'
        f"    process(record)\n{frame}\n{last}"
    )


def failure_lines(kind: str, n: int, message_id: str, request_id: str, inv: str) -> list[str]:
    """The consumer's last failure for one message, as the consumer logs it for each kind."""
    if kind == "key":
        record = {
            "level": "ERROR",
            "message": "message failed",
            "messageId": message_id,
            "error": "KeyError: 'customer_id'",
        }
        frame = '  File "/var/task/orders.py", line 41, in load_customer\n    return body["customer_id"]'
        return [json.dumps(record), traceback(frame, "KeyError: 'customer_id'")]
    if kind == "amount":  # names only the request id
        error = f"ValueError: order {48000 + n} amount -{n + 1} is negative"
        record = {"level": "ERROR", "message": "message failed", "correlation_id": request_id, "error": error}
        return [json.dumps(record), traceback('  File "/var/task/orders.py", line 77, in validate', error)]
    if kind == "node":  # the Node runtime's own line; the message id is in the error object
        err = {
            "errorType": "TypeError",
            "errorMessage": "Cannot read properties of undefined (reading 'sku')",
            "messageId": message_id,
            "stack": [
                "TypeError: Cannot read properties of undefined (reading 'sku')",
                f"    at reserveItems (/var/task/inventory.js:{80 + n}:11)",
            ],
        }
        return [f"2026-01-05T10:00:00.000Z\t{inv}\tERROR\tInvoke Error \t{json.dumps(err)}"]
    if kind == "timeout":
        return [
            json.dumps({"level": "ERROR", "messageId": message_id, "error": f"Task timed out after {n}.00 seconds"})
        ]
    return []


def put(target, group: str, lines: list[str], ts: int) -> None:
    logs = aws.client(target, "logs")
    stream = f"2026/01/05/[$LATEST]{uuid.uuid4().hex[:8]}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": ts + i, "message": m} for i, m in enumerate(lines)],
    )


def send(target, p, kinds: list[str], first: int = 0) -> dict[str, tuple[str, int]]:
    """One DLQ message per kind (request id req-<i>); returns message id -> (kind, i)."""
    sqs = aws.client(target, "sqs")
    ids: dict[str, tuple[str, int]] = {}
    for start in range(0, len(kinds), 10):
        entries = []
        for i, kind in enumerate(kinds[start : start + 10], first + start):
            body = f"order={i}" if kind == "text" else json.dumps({"order": i, "note": kind})
            attrs = {"requestId": {"DataType": "String", "StringValue": f"req-{i:05d}"}}
            entries.append({"Id": str(i), "MessageBody": body, "MessageAttributes": attrs})
        resp = sqs.send_message_batch(QueueUrl=p.dlq_url, Entries=entries)
        assert not resp.get("Failed")
        for ok in resp["Successful"]:
            ids[ok["MessageId"]] = (kinds[int(ok["Id"]) - first], int(ok["Id"]))
    return ids


def log_failures(target, p, ids: dict[str, tuple[str, int]]) -> None:
    """Log each message's failures in one invocation per attempt: every joined message first fails
    with a timeout (an earlier attempt), then with its own kind, which names its group. Kinds "shape"
    and "text" get no line (they group by body shape: a JSON object, not JSON)."""
    sent_ms = int(clock.now().timestamp() * 1000) - 5_000
    first, last = [], []
    for mid, (kind, i) in ids.items():
        lines = failure_lines(kind, i, mid, f"req-{i:05d}", str(uuid.uuid4()))
        if lines:
            first.append(
                json.dumps({"level": "ERROR", "messageId": mid, "error": "TimeoutError: upstream did not answer"})
            )
            last.extend(lines)
    if first:
        put(target, p.consumer_log_group, first, sent_ms)
        put(target, p.consumer_log_group, last, sent_ms + 1_000)


def fill_dlq(target, p, kinds: list[str], first: int = 0) -> dict[str, tuple[str, int]]:
    ids = send(target, p, kinds, first)
    log_failures(target, p, ids)
    return ids


@pytest.fixture
def scan_now(eager, django_capture_on_commit_callbacks):
    """Start a scan as the page does and run it in-process through the Celery task."""

    def _scan(pipeline, user=None, **kwargs) -> TriageScan:
        with django_capture_on_commit_callbacks(execute=True):
            scan = triage.start_scan(pipeline, user, **kwargs)
        scan.refresh_from_db()
        return scan

    return _scan


def by_title(scan: TriageScan) -> dict[str, int]:
    return {g.title: g.count for g in scan.groups.all()}


KINDS = ["key"] * 7 + ["amount"] * 5 + ["node"] * 3 + ["shape"] * 2 + ["text"]


def test_it_groups_a_dlq_by_failure_with_exact_counts_and_leaves_it_as_found(register, target, scan_now):
    p = register("orders")
    ids = fill_dlq(target, p, KINDS)
    user = staff("operator")
    scan = scan_now(p, user)
    assert (scan.status, scan.examined, scan.joined, scan.gone, scan.complete) == ("completed", 18, 15, 0, True)
    assert by_title(scan) == {KEY_TITLE: 7, AMOUNT_TITLE: 5, NODE_TITLE: 3, OBJECT_TITLE: 2, "not JSON": 1}
    assert triage.causes_summary(scan) == "5 causes: KeyError 'customer_id' 39 %, ValueError 28 %, TypeError 17 %, …"
    assert counts(target, p.dlq_url) == {"visible": 18, "in_flight": 0, "delayed": 0}
    key = scan.groups.get(title=KEY_TITLE)
    key_ids = {mid for mid, (kind, _) in ids.items() if kind == "key"}
    assert set(key.sample_message_ids) <= key_ids and len(key.sample_message_ids) == 5
    assert sorted(key.request_ids) == sorted(f"req-{i:05d}" for kind, i in ids.values() if kind == "key")
    assert "KeyError" in key.sample_error and key.sample_traceback.endswith("KeyError: 'customer_id'")
    assert (key.receive_min, key.receive_max, key.receive_total, key.kind) == (1, 1, 7, "error")
    assert key.first_sent is not None and key.previous_count is None
    assert scan.groups.get(title=OBJECT_TITLE).kind == "shape"
    rows = TriageMessage.objects.filter(scan=scan)
    assert rows.count() == 18 and {r.message_id for r in rows.filter(group=key)} == key_ids
    assert all(r.invocation_id for r in rows.filter(group__title=NODE_TITLE))
    assert all(source["ok"] for source in scan.sources), scan.sources
    entry = AuditEntry.objects.get(action=AuditAction.DLQ_TRIAGE_SCAN)
    assert (entry.username, entry.detail["examined"], entry.detail["queue_url"]) == ("operator", 18, p.dlq_url)
    assert triage.latest(p) == (scan, list(scan.groups.all()))


def test_it_compares_each_group_with_the_previous_scan(register, target, scan_now):
    p = register("orders")
    ids = fill_dlq(target, p, ["key"] * 4 + ["amount"] * 3 + ["text"])
    first = scan_now(p)
    more = fill_dlq(target, p, ["key"] * 2 + ["timeout"], first=100)
    text_id = next(mid for mid, (kind, _) in ids.items() if kind == "text")
    sqs = aws.client(target, "sqs")
    for m in sqs.receive_message(QueueUrl=p.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]:
        if m["MessageId"] == text_id:
            sqs.delete_message(QueueUrl=p.dlq_url, ReceiptHandle=m["ReceiptHandle"])
        else:
            sqs.change_message_visibility(QueueUrl=p.dlq_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert len(more) == 3
    second = scan_now(p)
    groups = {g.title: (g.count, g.previous_count) for g in second.groups.all()}
    assert groups == {KEY_TITLE: (6, 4), AMOUNT_TITLE: (3, 3), TIMEOUT_TITLE: (1, None)}
    assert triage.latest(p)[0] == second and first.groups.count() == 3


def test_it_groups_by_shape_and_names_the_source_when_the_log_group_is_missing(register, target, scan_now):
    p = register("orders")
    fill_dlq(target, p, KINDS)
    aws.client(target, "logs").delete_log_group(logGroupName=p.consumer_log_group)
    scan = scan_now(p)
    assert scan.status == "completed" and scan.joined == 0
    assert by_title(scan) == {OBJECT_TITLE: 17, "not JSON": 1}
    dlq, consumer = scan.sources
    assert dlq["ok"] and not consumer["ok"]
    assert (
        consumer["message"]
        == f"The log group {p.consumer_log_group} does not exist: messages are grouped by body shape."
    )


def test_it_counts_a_message_deleted_during_the_scan_as_gone(register, target, scan_now, monkeypatch):
    p = register("orders")
    fill_dlq(target, p, ["key"] * 25)
    receive = aws.receive_messages
    deleted: list[str] = []

    def receive_then_someone_deletes(*args, **kwargs):
        msgs = receive(*args, **kwargs)
        if msgs and not deleted:  # another reader that holds the same handle deletes two of them
            for m in msgs[:2]:
                aws.client(target, "sqs").delete_message(QueueUrl=p.dlq_url, ReceiptHandle=m["ReceiptHandle"])
                deleted.append(m["MessageId"])
        return msgs

    monkeypatch.setattr(aws, "receive_messages", receive_then_someone_deletes)
    scan = scan_now(p)
    assert (scan.status, scan.examined, scan.gone) == ("completed", 25, 2)
    assert counts(target, p.dlq_url) == {"visible": 23, "in_flight": 0, "delayed": 0}
    assert "2 deleted during the scan" in scan.sources[0]["message"]


@pytest.mark.parametrize("n", [20, 60])
def test_it_makes_few_calls_and_log_calls_that_do_not_grow_with_messages(register, target, n):
    p = register("orders")
    fill_dlq(target, p, (["key", "amount", "node"] * n)[:n])
    scan = triage.start_scan(p)
    with aws.metering() as meter:
        triage.run_scan(scan.pk, meter)
    scan.refresh_from_db()
    assert scan.status == "completed" and scan.joined == n
    assert meter.calls["sqs:ReceiveMessage"] <= math.ceil(n / 10) + 4
    assert meter.calls["sqs:ChangeMessageVisibilityBatch"] <= math.ceil(n / 10)
    assert meter.calls["cloudwatch-logs:FilterLogEvents"] == scan.log_calls == 1  # one window, one page, whatever n is
    assert scan.sqs_calls == sum(v for k, v in meter.calls.items() if k.startswith("sqs:"))


def test_it_says_when_the_call_budget_cut_the_log_read_short(register, target, scan_now, monkeypatch, settings):
    p = register("orders")
    fill_dlq(target, p, ["key"] * 6 + ["amount"] * 6)
    monkeypatch.setattr(logjoin, "PAGE_SIZE", 4)
    settings.TRIAGE_LOG_CALLS = 2
    scan = scan_now(p)
    consumer = scan.sources[1]
    assert scan.log_calls == 2 and not consumer["ok"] and "cut short" in consumer["message"]
    assert scan.examined == 12 and sum(by_title(scan).values()) == 12 and scan.joined < 12


def test_it_refuses_a_pipeline_without_a_dlq_and_a_second_active_scan(register, target):
    with pytest.raises(RedriveError, match="has no dead-letter queue"):
        triage.start_scan(register("plain", dlq=False))
    p = register("orders")
    first = triage.start_scan(p)
    with pytest.raises(RedriveError, match=f"already pending: #{first.pk}"):
        triage.start_scan(p)
    with pytest.raises(RedriveError, match="from 1 to 10,000"):
        triage.start_scan(register("other"), cap=10_001)


def test_it_fails_a_scan_whose_worker_stopped_and_lets_a_new_one_start(register, target):
    p = register("orders")
    stuck = triage.start_scan(p)
    TriageScan.objects.filter(pk=stuck.pk).update(
        status=TriageStatus.RUNNING, heartbeat_at=clock.now() - timedelta(seconds=triage.STALE_SECONDS + 1)
    )
    again = triage.start_scan(p)
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "no heartbeat" in stuck.error and again.status == "pending"
    # The stuck worker, should it wake, keeps nothing: its row has moved on.
    assert triage.run_scan(stuck.pk) is None


def test_the_maintenance_hook_fails_stale_scans(register, target):
    p = register("orders")
    scan = triage.start_scan(p)
    TriageScan.objects.filter(pk=scan.pk).update(created_at=clock.now() - timedelta(minutes=10))
    assert triage.recover_stale() == [scan.pk]
    scan.refresh_from_db()
    assert scan.status == "failed" and "No worker started the scan" in scan.error


@override_settings(TRIAGE_KEEP_SCANS=1)
def test_it_keeps_the_message_rows_of_the_newest_scans_only(register, target, scan_now):
    p = register("orders")
    fill_dlq(target, p, ["key"] * 3)
    first = scan_now(p)
    second = scan_now(p)
    assert TriageMessage.objects.filter(scan=first).count() == 0 and first.groups.get().count == 3
    assert TriageMessage.objects.filter(scan=second).count() == 3
    assert second.groups.get().previous_count == 3


def test_it_holds_messages_longer_than_the_scan_lasts(register, target, monkeypatch):
    p = register("orders")
    send(target, p, ["shape"] * 3)
    holds = []
    receive = aws.receive_messages
    monkeypatch.setattr(
        aws, "receive_messages", lambda t, u, n, hold, wait: holds.append(hold) or receive(t, u, n, hold, wait)
    )
    progress = []
    result = peek.scan(p, 100, seconds=120, progress=progress.append)
    assert result.examined == 3 and min(holds) > 120
    assert progress and progress[-1] == 3


SIMULATED_TITLES = {
    "invalid_payload": "ValueError: order payload failed validation — in /var/task/handler.py in handler",
    "missing_customer": KEY_TITLE,
    "negative_amount": AMOUNT_TITLE,
    "inventory_timeout": (
        "TimeoutError: inventory request <n> timed out after <n> ms — in /var/task/inventory.js in reserveItems"
    ),
}


def test_it_groups_the_simulated_poison_messages_by_how_they_failed(account, target, scan_now):
    sc = Scenario(
        "p",
        rate=20.0,
        poison_rate=0.5,
        max_receive_count=2,
        retry_delay=0,
        failure_rate=0,
        api_5xx_rate=0,
        api_4xx_rate=0,
        poison_kinds=tuple(POISON_FAILURES),
    )
    sim = Simulator(target, seed=5)
    made = sim.add("invoices", sc)
    for _ in range(8):
        sim.step(1.0)
    p = Pipeline(name="invoices", account=account)
    p.apply_discovery(discover(account.target(), made.res.queue_url).fields)
    p.save()
    scan = scan_now(p)
    assert scan.status == "completed" and scan.examined > 10 and scan.joined == scan.examined
    kinds = defaultdict(list)
    for row in TriageMessage.objects.filter(scan=scan).select_related("group"):
        kinds[row.group.title].append(sim.pipelines[0].poisoned[row.message_id])
    expected = Counter(SIMULATED_TITLES[k] for ks in kinds.values() for k in ks)
    assert by_title(scan) == dict(expected)
    assert all(len(set(ks)) == 1 for ks in kinds.values())  # one group per way of failing, and only that way
    assert len(kinds) == 4


def test_it_saves_progress_while_it_scans(register, target, monkeypatch):
    p = register("orders")
    send(target, p, ["shape"] * 45)
    scan = triage.start_scan(p)
    monkeypatch.setattr(triage, "PROGRESS_EVERY", 10)
    seen = []
    receive = aws.receive_messages

    def receive_and_look(*args, **kwargs):
        row = TriageScan.objects.get(pk=scan.pk)
        seen.append((row.examined, row.progress_percent()))
        return receive(*args, **kwargs)

    monkeypatch.setattr(aws, "receive_messages", receive_and_look)
    triage.run_scan(scan.pk)
    assert seen[0] == (0, 0)  # the depth is known before the first receive
    assert (20, 44) in seen and (40, 88) in seen
    scan.refresh_from_db()
    assert scan.progress_percent() == 100
