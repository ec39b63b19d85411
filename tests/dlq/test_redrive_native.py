"""The native engine (SQS StartMessageMoveTask / ListMessageMoveTasks / CancelMessageMoveTask).

The emulator lacks these operations, so these tests use botocore's Stubber with responses shaped as
the SQS API reference documents them; no request leaves the process. The fallback to the batch
engine against the real emulator is in test_redrive.py.
"""

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from pipelines import aws
from pipelines.clock import now
from pipelines.dlq import filters, native, progress, queues, runner, service, worker
from pipelines.models import AwsAccount, Pipeline, RedriveEngine, RedriveStatus, RedriveTask

REGION = "us-east-1"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:orders-dlq"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
HANDLE = "eyJ0YXNrSWQiOiJkYTE2YjI4NS1hMjQ5LTQ2OGQtYWQ4Mi0zMTU0MzRhMzQ4ZmEifQ=="


@pytest.fixture
def pipeline(db):
    # An endpoint nothing listens on: every call here is answered by the Stubber or not at all.
    account = AwsAccount.objects.create(name="stubbed", region=REGION, endpoint_url="http://127.0.0.1:9")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url=QUEUE_URL,
        queue_arn=QUEUE_ARN,
        queue_name="orders",
        dlq_url=DLQ_URL,
        dlq_arn=DLQ_ARN,
    )


@pytest.fixture
def stub(pipeline):
    aws.reset_clients()
    with Stubber(aws.client(pipeline.account.target(), "sqs")) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()
    aws.reset_clients()


def native_task(pipeline, **fields) -> RedriveTask:
    return RedriveTask.objects.create(
        pipeline=pipeline,
        pipeline_name=pipeline.name,
        source_url=DLQ_URL,
        source_arn=DLQ_ARN,
        destination_url=QUEUE_URL,
        destination_arn=QUEUE_ARN,
        engine=RedriveEngine.NATIVE,
        depth_at_start=1200,
        **fields,
    )


def started_ms(minutes_ago: float = 0) -> int:
    return int((now() - timedelta(minutes=minutes_ago)).timestamp() * 1000)


def listed(status: str, moved: int, to_move: int = 1200, handle: bool = True, **extra) -> dict:
    """A ListMessageMoveTasks result entry as the API reference shows it (TaskHandle only while running)."""
    entry = {
        "Status": status,
        "SourceArn": DLQ_ARN,
        "DestinationArn": QUEUE_ARN,
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": to_move,
        "StartedTimestamp": started_ms(),
        **extra,
    }
    if handle:
        entry["TaskHandle"] = HANDLE
    return entry


def test_it_moves_a_whole_dlq_with_the_sqs_move_task_and_follows_its_progress(pipeline, stub, fast):
    task = native_task(pipeline, rate=50)
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": HANDLE},
        {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN, "MaxNumberOfMessagesPerSecond": 50},
    )
    older = listed("COMPLETED", 40, 40, handle=False, StartedTimestamp=started_ms(60 * 24))
    stub.add_response(
        "list_message_move_tasks",
        {"Results": [listed("RUNNING", 300), older]},
        {"SourceArn": DLQ_ARN, "MaxResults": 10},
    )
    stub.add_response("list_message_move_tasks", {"Results": [listed("RUNNING", 900), older]})
    # Once finished, SQS no longer gives the handle: the task is recognised by when it started.
    stub.add_response("list_message_move_tasks", {"Results": [listed("COMPLETED", 1200, handle=False), older]})
    done = runner.run_redrive(task.pk)
    assert (done.status, done.engine, done.matched, done.moved, done.failed) == ("completed", "native", 1200, 1200, 0)
    assert done.native_handle == HANDLE and progress.percent(done) == 100
    assert fast == [native.NATIVE_POLL_SECONDS] * 2


def test_it_saves_the_progress_while_sqs_moves_messages(pipeline, stub, monkeypatch):
    task = native_task(pipeline)
    seen = []
    monkeypatch.setattr(worker, "sleep", lambda s: seen.append(progress.progress(RedriveTask.objects.get(pk=task.pk))))
    stub.add_response(
        "start_message_move_task", {"TaskHandle": HANDLE}, {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN}
    )
    stub.add_response("list_message_move_tasks", {"Results": [listed("RUNNING", 600)]})
    stub.add_response("list_message_move_tasks", {"Results": [listed("COMPLETED", 1200, handle=False)]})
    runner.run_redrive(task.pk)
    assert (seen[0]["moved"], seen[0]["percent"], seen[0]["status"]) == (600, 50, "running")


def test_it_cancels_the_sqs_move_task(pipeline, stub, monkeypatch):
    task = native_task(pipeline)
    monkeypatch.setattr(worker, "sleep", lambda s: RedriveTask.objects.get(pk=task.pk).request_cancel("ops"))
    stub.add_response("start_message_move_task", {"TaskHandle": HANDLE})
    stub.add_response("list_message_move_tasks", {"Results": [listed("RUNNING", 100)]})
    stub.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 150}, {"TaskHandle": HANDLE})
    stub.add_response("list_message_move_tasks", {"Results": [listed("CANCELLING", 150)]})
    stub.add_response("list_message_move_tasks", {"Results": [listed("CANCELLED", 160, handle=False)]})
    done = runner.run_redrive(task.pk)
    assert (done.status, done.moved, done.cancelled_by_name) == ("cancelled", 160, "ops")


def test_it_fails_with_the_reason_sqs_gives(pipeline, stub, fast):
    task = native_task(pipeline)
    stub.add_response("start_message_move_task", {"TaskHandle": HANDLE})
    stub.add_response(
        "list_message_move_tasks",
        {"Results": [listed("FAILED", 200, handle=False, FailureReason="AWS.SimpleQueueService.KmsAccessDenied")]},
    )
    done = runner.run_redrive(task.pk)
    assert (done.status, done.moved, done.failed) == ("failed", 200, 1000)
    assert "KmsAccessDenied" in progress.summary(done)


def test_it_follows_the_move_task_it_already_started_after_a_resume(pipeline, stub, fast):
    task = native_task(
        pipeline,
        status=RedriveStatus.RUNNING,
        native_handle=HANDLE,
        native_started_ms=started_ms(1),
        attempts=1,
        heartbeat_at=now() - timedelta(minutes=10),
    )
    stub.add_response("list_message_move_tasks", {"Results": [listed("COMPLETED", 1200, handle=False)]})
    done = runner.run_redrive(task.pk)  # no second StartMessageMoveTask
    assert (done.status, done.attempts, done.moved) == ("completed", 2, 1200)


def test_it_falls_back_to_batches_for_this_task_only_when_aws_refuses(pipeline, stub):
    task = native_task(pipeline)
    stub.add_client_error(
        "start_message_move_task",
        service_error_code="AWS.SimpleQueueService.UnsupportedOperation",
        service_message="Unsupported operation.",
        http_status_code=400,
    )
    # The batch engine takes over: an empty DLQ ends it at once.
    stub.add_response("receive_message", {"Messages": []})
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}},
    )
    done = runner.run_redrive(task.pk)
    assert (done.status, done.engine) == ("completed", "batch")
    pipeline.account.refresh_from_db()
    # AWS's answer was about this queue, not the endpoint: the next whole-DLQ redrive tries natively again.
    assert queues.NATIVE_UNSUPPORTED not in pipeline.account.unsupported_statistics


def test_it_remembers_an_endpoint_without_the_operation(pipeline, stub):
    task = native_task(pipeline)
    stub.add_client_error(
        "start_message_move_task",
        service_error_code="UnknownOperationException",
        service_message="Unknown operation StartMessageMoveTask",
        http_status_code=400,
    )
    stub.add_response("receive_message", {"Messages": []})
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}},
    )
    done = runner.run_redrive(task.pk)
    assert done.engine == "batch" and "not available" in done.errors[0]["message"]
    pipeline.account.refresh_from_db()
    assert queues.NATIVE_UNSUPPORTED in pipeline.account.unsupported_statistics
    assert service.choose_engine(pipeline.account)[0] == RedriveEngine.BATCH


def test_it_fails_on_other_errors_and_moves_nothing(pipeline, stub):
    task = native_task(pipeline)
    stub.add_client_error(
        "start_message_move_task",
        service_error_code="AccessDenied",
        service_message="not authorized to perform sqs:StartMessageMoveTask",
        http_status_code=403,
    )
    done = runner.run_redrive(task.pk)
    assert done.status == "failed" and "access denied" in progress.summary(done)


def client_error(code: str, message: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "StartMessageMoveTask",
    )


@pytest.mark.parametrize(
    "error, lacks",
    [
        (client_error("500", "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>", 500), True),
        (client_error("UnknownOperationException", "Unknown operation", 400), True),
        (client_error("InvalidAction", "The action StartMessageMoveTask is not valid", 400), True),
        (client_error("500", "injected internal error", 500), False),  # an ordinary server error: transient
        (client_error("InternalError", "We encountered an internal error", 500), False),
        (client_error("ThrottlingException", "Rate exceeded", 400), False),
        (client_error("AWS.SimpleQueueService.UnsupportedOperation", "Unsupported operation.", 400), False),
    ],
)
def test_it_tells_an_endpoint_lacking_an_operation_from_other_errors(error, lacks):
    assert aws.endpoint_lacks_operation(error) is lacks


def test_it_chooses_the_engine():
    account = AwsAccount(name="a", region=REGION)
    assert service.choose_engine(account)[0] == "native"
    assert service.choose_engine(account, max_messages=5)[0] == "batch"
    assert service.choose_engine(account, dry_run=True)[0] == "batch"
    assert service.choose_engine(account, flt=filters.Filter("body", value="x"))[0] == "batch"
    assert service.choose_engine(account, operation="delete")[0] == "batch"
    account.unsupported_statistics = ["p99", queues.NATIVE_UNSUPPORTED]
    assert service.choose_engine(account)[0] == "batch"


def test_it_finds_its_move_task_among_the_last_ten():
    mine_running = {"TaskHandle": "h1", "Status": "RUNNING", "StartedTimestamp": 2_000}
    other_later = {"Status": "COMPLETED", "StartedTimestamp": 9_000}
    mine_done = {"Status": "COMPLETED", "StartedTimestamp": 2_000}
    older = {"Status": "COMPLETED", "StartedTimestamp": 500}
    assert native.find_move_task([mine_running, older], "h1", 1_000) is mine_running
    assert native.find_move_task([other_later, mine_done, older], "h1", 1_000) is mine_done
    assert native.find_move_task([older], "h1", 1_000) is None
