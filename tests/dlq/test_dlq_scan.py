"""Scanning a whole DLQ without consuming it (what the trace's DLQ search uses): every message
examined once, the queue left as it was found, and "the whole queue" claimed only when SQS agrees."""

import itertools

from pipelines import aws
from pipelines.dlq import peek
from tests.redrive_support import counts, fill


def test_it_scans_a_whole_dlq_of_more_than_100_and_leaves_it_as_it_was(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 150)
    with aws.metering() as meter:
        result = peek.scan(p, 1000, keep=lambda m: m.request_id == "req-00142")
    assert (result.examined, result.complete, result.stopped, result.depth) == (150, True, "", 150)
    assert [m.request_id for m in result.messages] == ["req-00142"]
    assert counts(target, p.dlq_url) == {"visible": 150, "in_flight": 0, "delayed": 0}
    assert meter.calls["sqs:ChangeMessageVisibilityBatch"] == 15  # every held message released, 10 per call
    assert peek.peek(p, 1)[0].receive_count == 2  # the scan was one receive of each


def test_it_stops_at_its_cap_and_does_not_claim_the_whole_queue(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 30)
    result = peek.scan(p, 20)
    assert (result.examined, result.complete, result.stopped, len(result.messages)) == (20, False, peek.STOP_CAP, 20)
    assert counts(target, p.dlq_url) == {"visible": 30, "in_flight": 0, "delayed": 0}


def test_it_stops_when_its_time_runs_out(register, target, monkeypatch):
    p = register("orders")
    fill(target, p.dlq_url, 30)
    ticks = itertools.count(0, 4)  # every look at the clock is four seconds later
    monkeypatch.setattr(peek, "monotonic", lambda: next(ticks))
    result = peek.scan(p, 1000, seconds=10)
    assert result.stopped == peek.STOP_TIME and not result.complete and 0 < result.examined < 30
    assert counts(target, p.dlq_url)["visible"] == 30


def test_it_calls_an_empty_dlq_whole(register):
    result = peek.scan(register("orders"), 100)
    assert (result.examined, result.complete, result.depth) == (0, True, 0)


def test_it_does_not_claim_a_whole_fifo_dlq_whose_groups_it_could_not_see(register, target):
    p = register("payments", fifo=True)
    fill(target, p.dlq_url, 40, fifo=True)  # seven message groups
    result = peek.scan(p, 1000)
    # SQS delivers no more of a group while one of its messages is held: the rest stay unseen.
    assert not result.complete and result.stopped == peek.STOP_UNDELIVERED
    assert result.examined + result.left == 40
    assert counts(target, p.dlq_url) == {"visible": 40, "in_flight": 0, "delayed": 0}
