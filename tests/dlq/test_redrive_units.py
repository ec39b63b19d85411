"""The pure parts of redrive: filters, message re-creation, batching by size, masking, pacing, and
what a task says about itself. No AWS, no database."""

import pytest

from pipelines.dlq import batch, filters, progress, worker
from pipelines.dlq.filters import Filter
from pipelines.dlq.peek import PeekedMessage
from pipelines.models import FilterKind, RedriveEngine, RedriveStatus, RedriveTask


def message(body="{}", mid="m-1", **attrs):
    return {
        "MessageId": mid,
        "ReceiptHandle": "rh",
        "Body": body,
        "Attributes": {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "3"},
        "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()},
    }


@pytest.mark.parametrize(
    "flt, expected",
    [
        (Filter(), True),
        (Filter(FilterKind.ATTRIBUTE, "tenant", "acme"), True),
        (Filter(FilterKind.ATTRIBUTE, "tenant", "other"), False),
        (Filter(FilterKind.ATTRIBUTE, "missing", "acme"), False),
        (Filter(FilterKind.BODY, value='"sku": 42'), True),
        (Filter(FilterKind.BODY, value='"SKU": 42'), False),  # case matters
        (Filter(FilterKind.REQUEST_IDS, "requestId", ids=frozenset({"r-1", "r-9"})), True),
        (Filter(FilterKind.REQUEST_IDS, "requestId", ids=frozenset({"r-2"})), False),
        (Filter(FilterKind.MESSAGE_IDS, ids=frozenset({"m-1"})), True),
    ],
)
def test_it_selects_messages_by_filter(flt, expected):
    assert flt.matches(message('{"sku": 42}', tenant="acme", requestId="r-1")) is expected


def test_it_reads_ids_one_per_line_or_separated_by_commas():
    assert filters.parse_ids(" r-1\nr-2, r-3 r-1\n\n") == ["r-1", "r-2", "r-3"]


def test_it_recreates_a_message_for_the_destination():
    m = message("body", tenant="acme")
    m["MessageAttributes"]["blob"] = {
        "DataType": "Binary",
        "BinaryValue": b"\x00\x01",
        "BinaryListValues": [],
        "StringListValues": [],
    }
    m["Attributes"].update(MessageGroupId="g-7", MessageDeduplicationId="orig", AWSTraceHeader="Root=1-abc")
    entry = batch.send_entry(3, m, fifo=True, task_id=12)
    assert entry == {
        "Id": "3",
        "MessageBody": "body",
        "MessageAttributes": {
            "tenant": {"DataType": "String", "StringValue": "acme"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
        "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}},
        "MessageGroupId": "g-7",
        # Not the original id: SQS would drop the copy as a duplicate of a message sent < 5 min ago.
        "MessageDeduplicationId": "redrive-12-m-1",
    }
    assert "MessageGroupId" not in batch.send_entry(0, m, fifo=False, task_id=12)


def test_it_splits_batches_by_count_and_size():
    small = [{"Id": str(i), "MessageBody": "x" * 100} for i in range(25)]
    assert [len(c) for c in batch.size_chunks(small)] == [10, 10, 5]
    big = [{"Id": str(i), "MessageBody": "x" * 100_000} for i in range(5)]
    assert [len(c) for c in batch.size_chunks(big)] == [2, 2, 1]
    huge = [{"Id": "0", "MessageBody": "x" * 600_000}, {"Id": "1", "MessageBody": "y"}]
    assert [len(c) for c in batch.size_chunks(huge)] == [1, 1]


def peeked(body: str) -> PeekedMessage:
    return PeekedMessage(id="m", body=body, sent_at=None, receive_count=1, group_id="", request_id=None, attributes=[])


def test_it_masks_what_the_viewer_may_not_read():
    assert peeked('{"card": "4111 1111", "name": "Ann"}').masked_preview() == "JSON object, 2 keys, 36 bytes"
    assert peeked("[1, 2, 3]").masked_preview() == "JSON array, 3 items, 9 bytes"
    assert peeked("Ann Smith, 4111-1111").masked_preview() == "Text, 20 bytes"
    assert peeked("z" * 2000).masked_preview() == "Text, 2,000 bytes"


def test_it_pretty_prints_json_bodies_only():
    assert peeked('{"a":[1,2]}').pretty_body() == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert peeked("plain text").pretty_body() == "plain text"
    assert peeked("42").json is None  # a JSON scalar is shown as it is
    assert "truncated" in peeked("x" * 70_000).pretty_body()


def test_it_paces_to_the_rate(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(worker, "monotonic", lambda: clock[0])
    pacer = batch.Pacer(20)
    assert pacer.delay(10) == pytest.approx(0.5)
    clock[0] += 0.5
    assert pacer.delay(10) == pytest.approx(0.5)
    clock[0] += 3.0  # slow calls: no waiting to catch up on
    assert pacer.delay(10) == 0.0
    assert batch.Pacer(None).delay(10) == 0.0


def task(**fields) -> RedriveTask:
    return RedriveTask(pipeline_name="orders", source_url="https://q", engine=RedriveEngine.BATCH, **fields)


def test_it_gives_every_status_a_colour_and_a_label():
    for status in RedriveStatus:
        assert status.colour.startswith("#") and status.label
    assert [s.value for s in RedriveStatus if s.is_active] == ["pending", "running", "cancelling"]


@pytest.mark.parametrize(
    "fields, summary, percent",
    [
        ({"status": "pending"}, "Waiting for a worker.", 0),
        (
            {"status": "running", "depth_at_start": 200, "matched": 50, "moved": 50},
            "Running: 50 message(s) moved so far.",
            25,
        ),
        (
            {"status": "completed", "depth_at_start": 200, "matched": 197, "moved": 195, "failed": 2},
            "Done: 195 message(s) moved, 2 failed and stay in the DLQ.",
            100,
        ),
        (
            {"status": "completed", "filter_kind": "body", "filter_value": "x", "skipped": 40},
            "The filter (body contains 'x') matched none of the 40 message(s) examined; nothing was moved.",
            100,
        ),
        (
            {
                "status": "running",
                "filter_kind": "attribute",
                "filter_attribute": "a",
                "filter_value": "b",
                "depth_at_start": 100,
                "matched": 5,
                "moved": 5,
                "skipped": 45,
            },
            "Running: 5 message(s) moved, 45 did not match and stay in the DLQ so far.",
            50,
        ),
        (
            {"status": "completed", "dry_run": True, "matched": 3, "skipped": 7},
            "Dry run: 3 of 10 sampled message(s) would move; nothing was moved.",
            100,
        ),
        ({"status": "cancelled", "moved": 30}, "Cancelled: 30 message(s) moved.", 0),
        (
            {"status": "running", "max_messages": 40, "depth_at_start": 1000, "matched": 20, "moved": 20},
            "Running: 20 message(s) moved so far.",
            50,
        ),
    ],
)
def test_it_says_where_a_task_is(fields, summary, percent):
    t = task(**fields)
    assert progress.summary(t) == summary and progress.percent(t) == percent


def test_it_says_why_a_task_failed():
    t = task(status="failed", moved=7, matched=7)
    t.add_error("the destination queue was deleted")
    assert progress.summary(t) == "Failed: 7 message(s) moved. the destination queue was deleted"
    assert t.error_count == 1 and progress.progress(t)["errors"] == ["the destination queue was deleted"]


def test_it_keeps_the_latest_errors_and_counts_them_all():
    t = task()
    for i in range(150):
        t.add_error(f"e{i}")
    assert len(t.errors) == 100 and t.errors[-1]["message"] == "e149" and t.error_count == 150


def test_it_counts_a_deletions_progress_by_the_messages_found():
    t = task(
        status="running",
        filter_kind="message_ids",
        filter_value="a\nb\nc\nd",
        matched=2,
        skipped=500,
        depth_at_start=1000,
    )
    assert progress.expected_total(t) == 4 and progress.percent(t) == 50
