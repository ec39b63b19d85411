"""Redrive against the emulator over HTTP: nothing lost, nothing duplicated beyond one batch, every
outcome counted and explained. (The native engine's own tests, with botocore's Stubber, are in
test_redrive_native.py; the admin pages in test_redrive_views.py.)"""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from pipelines import aws, tasks
from pipelines.clock import now
from pipelines.dlq import batch, peek, progress, queues, runner, service, worker
from pipelines.dlq.filters import Filter
from pipelines.dlq.queues import RedriveError
from pipelines.models import DlqOperation, FilterKind, RedriveEngine, RedriveStatus, RedriveTask
from tests.redrive_support import counts, fill, key_of_entry, key_of_message, read_all


class WorkerKilled(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler in the engine sees it."""


@pytest.fixture
def run_now(eager, django_capture_on_commit_callbacks):
    """Start a redrive and run it to its end in-process, through the Celery task, as a worker would."""

    def _start(pipeline, **options):
        with django_capture_on_commit_callbacks(execute=True):
            task, created = service.start_redrive(pipeline, **options)
        assert created
        task.refresh_from_db()
        return task

    return _start


def assert_exactly(target, urls, sent):
    """The queues together hold exactly the messages sent: same bodies, attributes, groups, counts."""
    found = Counter(key_of_message(m) for url in urls for m in read_all(target, url))
    assert found == Counter(key_of_entry(e) for e in sent)


# --- the guarantees ------------------------------------------------------------------------------------


def test_it_moves_a_thousand_messages_with_their_attributes_intact(volume_register, run_now):
    p = volume_register("orders")
    target = p.account.target()
    sent = fill(target, p.dlq_url, 1000)
    task = run_now(p)
    assert (task.status, task.matched, task.moved, task.failed, task.skipped) == ("completed", 1000, 1000, 0, 0)
    assert task.engine == RedriveEngine.BATCH  # the emulator lacks the native move task: fell back
    assert counts(target, p.dlq_url)["visible"] == 0
    assert_exactly(target, [p.queue_url, p.dlq_url], sent)


def test_it_moves_a_fifo_dlq_keeping_groups_and_their_order(volume_register, run_now):
    p = volume_register("payments", fifo=True)
    target = p.account.target()
    sent = fill(target, p.dlq_url, 1000, fifo=True)
    task = run_now(p)
    assert (task.status, task.moved, task.failed) == ("completed", 1000, 0)
    moved = read_all(target, p.queue_url)
    assert Counter(key_of_message(m) for m in moved) == Counter(key_of_entry(e) for e in sent)
    # Within each message group, the order is the order the messages had in the DLQ.
    by_group: dict[str, list[int]] = {}
    for m in moved:
        by_group.setdefault(m["Attributes"]["MessageGroupId"], []).append(
            int(m["MessageAttributes"]["requestId"]["StringValue"][4:])
        )
    assert len(by_group) == 7 and all(seq == sorted(seq) for seq in by_group.values())
    assert read_all(target, p.dlq_url) == []


def test_it_leaves_messages_whose_send_fails_in_the_dlq_and_reports_them(
    register, target, run_now, fast, proxied_account, fault_proxy
):
    # Every SendMessageBatch that carries a "poison" body fails (HTTP 500, through the fault proxy):
    # the engine retries, then sends the batch's entries one by one, so only the poison stays.
    p = register("orders", account_=proxied_account)
    sent = fill(target, p.dlq_url, 100, marker=lambda i: "poison" if i % 9 == 4 else "")
    fault_proxy.rule = lambda req: "error" if req.operation == "SendMessageBatch" and b"poison" in req.body else ""
    task = run_now(p)
    poison = {e["Id"] for e in sent if "poison" in e["MessageBody"]}
    assert (task.status, task.moved, task.failed) == ("completed", 100 - len(poison), len(poison))
    assert len({e["message_id"] for e in task.errors if e.get("message_id")}) == len(poison)
    left = read_all(target, p.dlq_url)  # visible again as soon as the task ended
    assert sorted(m["Body"] for m in left) == sorted(e["MessageBody"] for e in sent if e["Id"] in poison)
    assert_exactly(target, [p.queue_url], [e for e in sent if e["Id"] not in poison])
    assert fault_proxy.counts["error"] > 0


def test_it_keeps_entries_that_fail_inside_a_successful_batch(register, target, run_now, monkeypatch):
    p = register("orders")
    sent = fill(target, p.dlq_url, 60, marker=lambda i: "reject" if i % 7 == 0 else "")
    real = aws.send_message_batch

    def partial(target_, url, entries):
        """SQS answering with some entries in Failed (SenderFault false, as for InternalError)."""
        keep = [e for e in entries if "reject" not in e["MessageBody"]]
        result = real(target_, url, keep) if keep else {"ok": [], "failed": []}
        result["failed"] += [
            {"Id": e["Id"], "Code": "InternalError", "Message": "try again", "SenderFault": False}
            for e in entries
            if "reject" in e["MessageBody"]
        ]
        return result

    monkeypatch.setattr(aws, "send_message_batch", partial)
    task = run_now(p)
    rejected = [e for e in sent if "reject" in e["MessageBody"]]
    assert (task.status, task.moved, task.failed, task.error_count) == (
        "completed",
        60 - len(rejected),
        len(rejected),
        len(rejected),
    )
    assert all("InternalError: try again" in e["message"] for e in task.errors if e.get("message_id"))
    assert_exactly(target, [p.dlq_url], rejected)
    assert_exactly(target, [p.queue_url], [e for e in sent if e not in rejected])


def test_it_stops_when_the_destination_keeps_failing_and_keeps_every_message(
    register, target, run_now, fast, proxied_account, fault_proxy
):
    p = register("orders", account_=proxied_account)
    sent = fill(target, p.dlq_url, 80)
    fault_proxy.rule = lambda req: "error" if req.operation == "SendMessageBatch" else ""
    task = run_now(p)
    assert task.status == "failed" and task.moved == 0
    assert task.failed == 10 * batch.FAILED_BATCHES_TO_ABORT
    assert "batches in a row could not be sent" in progress.summary(task)
    assert_exactly(target, [p.dlq_url], sent)


@pytest.mark.parametrize(
    "fifo, kill_at, duplicates",
    [
        pytest.param(False, "send", 10, id="standard-killed-after-a-send"),
        pytest.param(False, "delete", 0, id="standard-killed-before-a-delete"),
        pytest.param(True, "send", 0, id="fifo-killed-after-a-send"),
    ],
)
def test_it_resumes_after_the_worker_is_killed_without_losing_a_message(
    volume_register, run_now, monkeypatch, django_capture_on_commit_callbacks, fifo, kill_at, duplicates
):
    monkeypatch.setattr(worker, "HOLD_SECONDS", 2)  # how soon the dead worker's messages come back
    p = volume_register("orders", fifo=fifo)
    target = p.account.target()
    sent = fill(target, p.dlq_url, 300, fifo=fifo)
    calls = Counter()

    def killer(name):
        real = getattr(aws, name)

        def call(*args):
            calls[name] += 1
            if name == "delete_message_batch" and calls[name] == 5:
                raise WorkerKilled  # counts and sent ids are saved, the batch is not deleted yet
            result = real(*args)
            if name == "send_message_batch" and calls[name] == 5:
                raise WorkerKilled  # the batch is at the destination, nothing recorded yet
            return result

        return call

    name = "send_message_batch" if kill_at == "send" else "delete_message_batch"
    monkeypatch.setattr(aws, name, killer(name))
    with pytest.raises(WorkerKilled):
        run_now(p)
    task = RedriveTask.objects.get()
    assert task.status == "running" and task.moved == (40 if kill_at == "send" else 50)
    monkeypatch.undo()
    monkeypatch.setattr(worker, "HOLD_SECONDS", 2)

    assert runner.resume_stale_redrives() == []  # its heartbeat is fresh: the worker may be alive
    RedriveTask.objects.filter(pk=task.pk).update(heartbeat_at=now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):  # the resumed run starts once enqueued
        assert tasks.resume_stale_redrives.apply().get() == [task.pk]
    task.refresh_from_db()
    assert (task.status, task.attempts, task.moved, task.failed) == ("completed", 2, 300, 0)
    at_source = read_all(target, p.queue_url)
    assert read_all(target, p.dlq_url) == []
    found = Counter(key_of_message(m) for m in at_source)
    assert set(found) == {key_of_entry(e) for e in sent}
    assert sum(found.values()) - len(sent) == duplicates


def test_it_gives_up_on_a_task_that_keeps_killing_its_worker(register, target, run_now, monkeypatch):
    p = register("orders")
    fill(target, p.dlq_url, 20)
    task = RedriveTask.objects.create(
        pipeline=p,
        pipeline_name=p.name,
        source_url=p.dlq_url,
        source_arn=p.dlq_arn,
        destination_url=p.queue_url,
        engine=RedriveEngine.BATCH,
        status=RedriveStatus.RUNNING,
        attempts=runner.MAX_ATTEMPTS,
        moved=7,
        matched=7,
        heartbeat_at=now() - timedelta(hours=1),
    )
    task = runner.run_redrive(task.pk)
    assert task.status == "failed" and task.moved == 7 and "Gave up after" in progress.summary(task)
    assert counts(target, p.dlq_url)["visible"] == 20


# --- selective redrive, options ---------------------------------------------------------------------------


def test_it_redrives_only_the_requested_ids_and_shows_the_rest_again_at_once(register, target, run_now):
    p = register("orders")
    sent = fill(target, p.dlq_url, 200)
    wanted = [f"req-{i:05d}" for i in (3, 77, 150, 199)] + ["req-not-there"]
    task = run_now(p, flt=Filter(FilterKind.REQUEST_IDS, p.request_id_attribute, ids=frozenset(wanted)))
    assert (task.status, task.matched, task.moved, task.skipped) == ("completed", 4, 4, 196)
    # The others were held while the DLQ was scanned, and released when the task ended.
    assert counts(target, p.dlq_url) == {"visible": 196, "in_flight": 0, "delayed": 0}
    moved, left = read_all(target, p.queue_url), read_all(target, p.dlq_url)
    assert sorted(m["MessageAttributes"]["requestId"]["StringValue"] for m in moved) == sorted(wanted[:4])
    assert Counter(key_of_message(m) for m in moved + left) == Counter(key_of_entry(e) for e in sent)


@pytest.mark.parametrize(
    "flt, expected",
    [
        (Filter(FilterKind.ATTRIBUTE, "attempt", "3"), 10),
        (Filter(FilterKind.BODY, value='"order": 1'), 11),  # 1 and 10–19
    ],
)
def test_it_redrives_by_attribute_or_body(register, target, run_now, flt, expected):
    p = register("orders")
    fill(target, p.dlq_url, 40)
    task = run_now(p, flt=flt)
    assert (task.moved, task.skipped) == (expected, 40 - expected)
    assert counts(target, p.queue_url)["visible"] == expected
    assert counts(target, p.dlq_url)["visible"] == 40 - expected


def test_it_says_plainly_when_a_filter_matches_nothing(register, target, run_now):
    p = register("orders")
    sent = fill(target, p.dlq_url, 30)
    task = run_now(p, flt=Filter(FilterKind.BODY, value="no such text"))
    assert (task.status, task.matched, task.moved, task.skipped) == ("completed", 0, 0, 30)
    assert progress.summary(task) == (
        "The filter (body contains 'no such text') matched none of the 30 message(s) examined; nothing was moved."
    )
    assert counts(target, p.dlq_url)["visible"] == 30 and counts(target, p.queue_url)["visible"] == 0
    assert_exactly(target, [p.dlq_url], sent)


def test_it_stops_after_the_maximum(register, target, run_now):
    p = register("orders")
    fill(target, p.dlq_url, 50)
    task = run_now(p, max_messages=23)
    assert (task.status, task.matched, task.moved) == ("completed", 23, 23)
    assert counts(target, p.queue_url)["visible"] == 23
    assert counts(target, p.dlq_url) == {"visible": 27, "in_flight": 0, "delayed": 0}


def test_it_moves_nothing_in_a_dry_run_and_shows_what_would_move(register, target, run_now):
    p = register("orders")
    fill(target, p.dlq_url, 30)
    task = run_now(p, dry_run=True, flt=Filter(FilterKind.ATTRIBUTE, "attempt", "1"))
    assert (task.status, task.matched, task.moved, task.skipped) == ("completed", 8, 0, 22)
    assert len(task.sample) == 30 and sum(s["matches"] for s in task.sample) == 8
    assert task.sample[1] == {**task.sample[1], "request_id": "req-00001", "matches": True}
    assert "body" not in task.sample[0]  # ids and sizes only: bodies are never stored
    assert progress.summary(task).startswith("Dry run: 8 of 30 sampled message(s) would move")
    assert counts(target, p.dlq_url) == {"visible": 30, "in_flight": 0, "delayed": 0}
    assert counts(target, p.queue_url)["visible"] == 0


def test_it_keeps_to_the_rate(register, target, run_now, fast):
    p = register("orders")
    fill(target, p.dlq_url, 60)
    task = run_now(p, rate=20)
    assert task.moved == 60
    # 60 messages at 20/s take 3 s: the waits between batches fill what the calls did not take.
    assert 2.0 <= sum(fast) <= 3.0 and max(fast) <= 2.0 and len(fast) >= 5


def test_it_can_be_cancelled_between_batches(register, target, run_now, monkeypatch):
    p = register("orders")
    sent = fill(target, p.dlq_url, 100)
    real = aws.send_message_batch
    calls = []

    def send_then_cancel(*args):
        calls.append(1)
        if len(calls) == 3:
            assert RedriveTask.objects.get().request_cancel("someone")
        return real(*args)

    monkeypatch.setattr(aws, "send_message_batch", send_then_cancel)
    task = run_now(p)
    assert (task.status, task.moved, task.cancelled_by_name) == ("cancelled", 30, "someone")
    assert counts(target, p.dlq_url) == {"visible": 70, "in_flight": 0, "delayed": 0}
    assert_exactly(target, [p.queue_url, p.dlq_url], sent)


def test_it_cancels_a_pending_task_at_once(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 5)
    task, _ = service.start_redrive(p)  # never enqueued: the test transaction does not commit
    assert task.request_cancel("ops") and task.status == "cancelled"
    assert runner.run_redrive(task.pk) is None  # nothing left to run
    assert counts(target, p.dlq_url)["visible"] == 5


def test_it_deletes_only_the_chosen_messages(register, target, eager, django_capture_on_commit_callbacks):
    p = register("orders")
    fill(target, p.dlq_url, 40)
    chosen = [m.id for m in peek.peek(p, 40)[5:8]]
    with django_capture_on_commit_callbacks(execute=True):
        task, _ = service.start_delete(p, None, chosen)
    task.refresh_from_db()
    assert (task.operation, task.status, task.matched, task.moved) == ("delete", "completed", 3, 3)
    left = read_all(target, p.dlq_url)
    assert len(left) == 37 and not {m["MessageId"] for m in left} & set(chosen)
    assert counts(target, p.queue_url)["visible"] == 0


def test_it_purges_and_records_who_did(register, target, admin_user):
    p = register("orders")
    fill(target, p.dlq_url, 12)
    task = service.purge(p, admin_user)
    assert (task.operation, task.status, task.matched, task.requested_by_name) == ("purge", "completed", 12, "admin")
    assert counts(target, p.dlq_url)["visible"] == 0


# --- bad input: a clear message, nothing moved ----------------------------------------------------------


def test_it_refuses_a_destination_that_does_not_exist(register, target, emulator):
    p = register("orders")
    fill(target, p.dlq_url, 5)
    with pytest.raises(RedriveError, match="No queue exists at .*ghost"):
        service.start_redrive(p, destination_url=f"{emulator.url}/123456789012/ghost")
    assert not RedriveTask.objects.exists() and counts(target, p.dlq_url)["visible"] == 5


def test_it_refuses_a_fifo_standard_mismatch(register, target):
    p = register("orders")
    other = register("payments", fifo=True)
    fill(target, p.dlq_url, 5)
    with pytest.raises(RedriveError, match="The DLQ is a standard queue but payments.fifo is a FIFO queue"):
        service.start_redrive(p, destination_url=other.queue_url)
    assert not RedriveTask.objects.exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"destination_url": "not a url"}, "Destination: Enter a queue URL"),
        ({"rate": 501}, "The rate must be between 1 and 500"),
        ({"flt": Filter(FilterKind.REQUEST_IDS, "requestId")}, "Give at least one id"),
        ({"flt": Filter(FilterKind.ATTRIBUTE, "attempt")}, "Give the attribute name and the value"),
    ],
)
def test_it_refuses_bad_options(register, target, options, message):
    p = register("orders")
    fill(target, p.dlq_url, 1)
    with pytest.raises(RedriveError, match=message):
        service.start_redrive(p, **options)


def test_it_refuses_an_empty_dlq_or_none_at_all(register):
    with pytest.raises(RedriveError, match="is empty: there is nothing to redrive"):
        service.start_redrive(register("orders"))
    with pytest.raises(RedriveError, match="has no dead-letter queue"):
        service.start_redrive(register("bare", dlq=False))


def test_it_refuses_a_second_task_on_the_same_dlq(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 5)
    first, _ = service.start_redrive(p, token="a")
    with pytest.raises(
        RedriveError, match=rf"Another task is already active on this dead-letter queue: #{first.pk}"
    ) as refused:
        service.start_redrive(p, token="b")
    assert refused.value.task == first
    with pytest.raises(RedriveError, match="already active"):
        service.purge(p)
    assert RedriveTask.objects.count() == 1 and counts(target, p.dlq_url)["visible"] == 5


def test_it_has_the_database_refuse_two_active_tasks_on_one_dlq(db):
    RedriveTask.objects.create(pipeline_name="a", source_url="https://q/1/dlq", status=RedriveStatus.RUNNING)
    RedriveTask.objects.create(pipeline_name="a", source_url="https://q/1/dlq", status=RedriveStatus.COMPLETED)
    with pytest.raises(IntegrityError), transaction.atomic():
        RedriveTask.objects.create(pipeline_name="a", source_url="https://q/1/dlq", status=RedriveStatus.PENDING)
    RedriveTask.objects.create(pipeline_name="b", source_url="https://q/1/other-dlq", status=RedriveStatus.PENDING)


def test_it_starts_one_task_for_a_form_submitted_twice(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 5)
    first, created = service.start_redrive(p, token="form-1")
    again, created_again = service.start_redrive(p, token="form-1")
    assert created and not created_again and again == first


# --- peeking ---------------------------------------------------------------------------------------------


def test_it_peeks_without_consuming_and_counts_a_receive(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 15)
    first = peek.peek(p, 12)
    assert len(first) == 12 and first[0].request_id == "req-00000" and first[0].receive_count == 1
    assert first[0].json == {"order": 0, "note": "ok", "text": ""}
    assert ("attempt", "Number", "0") in first[0].attributes
    assert counts(target, p.dlq_url) == {"visible": 15, "in_flight": 0, "delayed": 0}
    again = peek.peek(p, 12)
    assert again[0].id == first[0].id and again[0].receive_count == 2


def test_it_peeks_at_an_empty_dlq(register):
    assert peek.peek(register("orders"), 5) == []


# --- worker plumbing ---------------------------------------------------------------------------------------


def test_it_runs_a_task_once_through_celery(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 10)
    task, _ = service.start_redrive(p)
    assert tasks.run_redrive.apply(args=[task.pk]).get() == {"status": "completed", "moved": 10}
    assert tasks.run_redrive.apply(args=[task.pk]).get() == {"skipped": "not ours to run"}


def test_it_resumes_abandoned_tasks_from_maintenance(register, target, settings, monkeypatch):
    settings.LOCK_REDIS_URL = ""
    p = register("orders")
    fill(target, p.dlq_url, 10)
    task, _ = service.start_redrive(p)
    RedriveTask.objects.filter(pk=task.pk).update(created_at=now() - timedelta(hours=1))
    enqueued = []
    monkeypatch.setattr(service, "enqueue", enqueued.append)
    assert tasks.maintenance.apply().get()["redrives_resumed"] == [task.pk] and enqueued == [task.pk]


def test_it_remembers_that_the_endpoint_lacks_native_redrive(register, target, run_now, account):
    p = register("orders")
    fill(target, p.dlq_url, 10)
    assert service.choose_engine(account)[0] == RedriveEngine.NATIVE
    task = run_now(p)
    assert task.engine == RedriveEngine.BATCH and task.moved == 10
    assert "not available" in task.errors[0]["message"] and task.errors[0]["level"] == "info"
    account.refresh_from_db()
    assert queues.NATIVE_UNSUPPORTED in account.unsupported_statistics
    assert service.choose_engine(account) == (
        RedriveEngine.BATCH,
        "this endpoint does not support SQS message move tasks",
    )
    assert DlqOperation.REDRIVE == task.operation


def test_it_moves_nothing_more_once_cancelled_while_its_worker_was_gone(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 20)
    task = RedriveTask.objects.create(
        pipeline=p,
        pipeline_name=p.name,
        source_url=p.dlq_url,
        source_arn=p.dlq_arn,
        destination_url=p.queue_url,
        engine=RedriveEngine.BATCH,
        attempts=1,
        moved=10,
        matched=10,
        status=RedriveStatus.CANCELLING,
        heartbeat_at=now() - timedelta(hours=1),
    )
    task = runner.run_redrive(task.pk)
    assert (task.status, task.moved) == ("cancelled", 10)
    assert counts(target, p.dlq_url)["visible"] == 20


def test_it_redrives_selectively_from_a_fifo_dlq_and_says_what_it_could_not_reach(
    volume_register, run_now, monkeypatch
):
    # In a FIFO queue a message left in the DLQ holds back the rest of its group: the scan ends when
    # nothing more is delivered, and says so.
    monkeypatch.setattr(batch, "EMPTY_ROUNDS", 1)
    p = volume_register("payments", fifo=True)
    target = p.account.target()
    sent = fill(target, p.dlq_url, 30, fifo=True)
    task = run_now(p, flt=Filter(FilterKind.ATTRIBUTE, "attempt", "1"))
    assert task.status == "completed" and task.moved == task.matched > 0
    assert any("would not deliver them" in e["message"] for e in task.errors)
    moved, left = read_all(target, p.queue_url), read_all(target, p.dlq_url)
    assert all(m["MessageAttributes"]["attempt"]["StringValue"] == "1" for m in moved)
    assert Counter(key_of_message(m) for m in moved + left) == Counter(key_of_entry(e) for e in sent)
