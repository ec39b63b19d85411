"""The only place that builds boto3 sessions and clients.

Everything here takes a `Target` (plain data: region, optional role to assume, optional endpoint)
and returns plain Python data, so the layers above never see boto3 and can be tested without AWS.
Failures surface as `AwsError` with a sentence an operator can act on.

Every HTTP attempt made through these clients is counted on the active `CallMeter`, which is how a
sync cycle knows exactly which AWS calls it paid for (retries included).
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from django.conf import settings

log = logging.getLogger(__name__)

#: Attributes the fast cycle reads: the live backlog of a queue.
COUNT_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)

THROTTLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
}
MISSING_QUEUE_CODES = {
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "NonExistentQueue",
}
DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
}


@dataclass(frozen=True)
class Target:
    """Where and as whom to call AWS: one account in one region."""

    region: str
    role_arn: str = ""
    external_id: str = ""
    endpoint_url: str = ""


class AwsError(Exception):
    """An AWS call failed; `str()` is a sentence for the operator, `code` the AWS error code."""

    def __init__(self, message: str, code: str = "", transient: bool = False, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.transient = transient
        self.status = status

    @property
    def is_missing(self) -> bool:
        return self.code in MISSING_QUEUE_CODES or self.code == "ResourceNotFoundException"

    @property
    def is_denied(self) -> bool:
        return self.code in DENIED_CODES


def translate(exc: Exception, doing: str) -> AwsError:
    """Turn a botocore exception into an AwsError whose message says what went wrong."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = str(err.get("Message") or code or "unknown error")
        if detail.lstrip().startswith("<"):  # an HTML error page, not an AWS error document
            detail = f"HTTP {status} from the endpoint"
        detail = detail.strip().splitlines()[0][:300] if detail.strip() else detail
        if code in MISSING_QUEUE_CODES:
            return AwsError(f"{doing}: the queue does not exist (deleted, or a wrong URL).", code, status=status)
        if code in DENIED_CODES:
            return AwsError(
                f"{doing}: access denied ({detail}). Check the IAM policy of the credentials or role.",
                code,
                status=status,
            )
        if code in THROTTLE_CODES:
            return AwsError(
                f"{doing}: throttled by AWS ({detail}); retried and still throttled.",
                code,
                transient=True,
                status=status,
            )
        transient = bool(status and status >= 500)
        return AwsError(f"{doing}: {code or 'error'} ({detail}).", code, transient=transient, status=status)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsError(
            f"{doing}: no AWS credentials found. Configure boto3's credential chain "
            "(AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance role).",
            "NoCredentials",
        )
    if isinstance(exc, NoRegionError):
        return AwsError(f"{doing}: no region set for the account.", "NoRegion")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return AwsError(f"{doing}: cannot reach the AWS endpoint ({exc}).", "EndpointUnreachable", transient=True)
    if isinstance(exc, ReadTimeoutError):
        return AwsError(f"{doing}: the AWS endpoint did not answer in time.", "ReadTimeout", transient=True)
    if isinstance(exc, ParamValidationError):
        return AwsError(f"{doing}: invalid request ({exc}).", "InvalidParameter")
    if isinstance(exc, BotoCoreError):
        return AwsError(f"{doing}: {exc}.", type(exc).__name__, transient=True)
    return AwsError(f"{doing}: {type(exc).__name__}: {exc}.", type(exc).__name__)


@contextmanager
def calling(doing: str) -> Iterator[None]:
    """Translate anything raised inside into an AwsError that says what we were doing."""
    try:
        yield
    except (ClientError, BotoCoreError, AwsError) as exc:
        raise translate(exc, doing) from exc


# --- call metering -------------------------------------------------------------------------------


class CallMeter:
    """Counts AWS HTTP attempts per "service:Operation" and CloudWatch metrics requested."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.metrics_requested = 0

    def add_call(self, key: str) -> None:
        with self._lock:
            self.calls[key] += 1

    def add_metrics(self, n: int) -> None:
        with self._lock:
            self.metrics_requested += n

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


_meter: contextvars.ContextVar[CallMeter | None] = contextvars.ContextVar("opsboard_aws_meter", default=None)


@contextmanager
def metering(meter: CallMeter | None = None) -> Iterator[CallMeter]:
    """Count the AWS calls made in this context (and in threads started with its context copied)."""
    meter = meter or CallMeter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def _count_attempt(event_name: str = "", **_: Any) -> None:
    meter = _meter.get()
    if meter is not None:
        # event_name is "before-send.<service>.<Operation>"
        parts = event_name.split(".")
        meter.add_call(f"{parts[1]}:{parts[2]}" if len(parts) >= 3 else event_name)


# --- sessions and clients ------------------------------------------------------------------------

_clients: dict[tuple[Target, str], Any] = {}
_clients_lock = threading.Lock()


def _client_config() -> Config:
    return Config(
        retries={"mode": settings.AWS_RETRY_MODE, "total_max_attempts": settings.AWS_MAX_ATTEMPTS},
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
        max_pool_connections=max(10, settings.COLLECT_CONCURRENCY),
    )


def _session(target: Target) -> boto3.session.Session:
    if not target.role_arn:
        return boto3.session.Session(region_name=target.region)
    base = boto3.session.Session(region_name=target.region)
    sts = base.client("sts", endpoint_url=target.endpoint_url or None, config=_client_config())

    def assume() -> dict[str, str]:
        params = {"RoleArn": target.role_arn, "RoleSessionName": "opsboard"}
        if target.external_id:
            params["ExternalId"] = target.external_id
        with calling(f"assuming role {target.role_arn}"):
            creds = sts.assume_role(**params)["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    core = botocore.session.get_session()
    core._credentials = DeferredRefreshableCredentials(refresh_using=assume, method="sts-assume-role")
    return boto3.session.Session(botocore_session=core, region_name=target.region)


def client(target: Target, service: str) -> Any:
    """A cached, thread-safe boto3 client for one service of one target.

    The endpoint is the target's own, else boto3's (which honours AWS_ENDPOINT_URL and the
    AWS_ENDPOINT_URL_<SERVICE> variables), else AWS.
    """
    key = (target, service)
    c = _clients.get(key)
    if c is None:
        with _clients_lock:
            c = _clients.get(key)
            if c is None:
                c = _session(target).client(service, endpoint_url=target.endpoint_url or None, config=_client_config())
                c.meta.events.register("before-send", _count_attempt)
                _clients[key] = c
    return c


def reset_clients() -> None:
    """Forget cached clients (tests that restart the emulator on another port use this)."""
    with _clients_lock:
        _clients.clear()


# --- SQS -----------------------------------------------------------------------------------------


def queue_attributes(target: Target, queue_url: str, names: Iterable[str] = ("All",)) -> dict[str, str]:
    with calling(f"reading the attributes of {queue_url}"):
        resp = client(target, "sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))
    return dict(resp.get("Attributes", {}))


def queue_counts(target: Target, queue_url: str) -> dict[str, int]:
    """Visible, in-flight and delayed message counts: one GetQueueAttributes call."""
    attrs = queue_attributes(target, queue_url, COUNT_ATTRIBUTES)
    return {
        "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    }


def queue_url_for_arn(target: Target, queue_arn: str) -> str:
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise AwsError(f"{queue_arn!r} is not an SQS queue ARN.", "InvalidArn")
    _, _, _, _, owner, name = parts
    with calling(f"finding the URL of queue {name}"):
        return client(target, "sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=owner)["QueueUrl"]


def list_queue_urls(target: Target, prefix: str = "") -> list[str]:
    params: dict[str, Any] = {"MaxResults": 1000}
    if prefix:
        params["QueueNamePrefix"] = prefix
    urls: list[str] = []
    with calling("listing queues"):
        for page in client(target, "sqs").get_paginator("list_queues").paginate(**params):
            urls.extend(page.get("QueueUrls", []))
    return urls


# --- Lambda --------------------------------------------------------------------------------------


def event_source_mappings(target: Target, source_arn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with calling(f"listing Lambda event-source mappings for {source_arn}"):
        for page in (
            client(target, "lambda").get_paginator("list_event_source_mappings").paginate(EventSourceArn=source_arn)
        ):
            out.extend(page.get("EventSourceMappings", []))
    return out


def function_configuration(target: Target, function: str) -> dict[str, Any]:
    with calling(f"reading Lambda function {function}"):
        resp = client(target, "lambda").get_function_configuration(FunctionName=function)
    resp.pop("ResponseMetadata", None)
    return resp


def function_reserved_concurrency(target: Target, function: str) -> int | None:
    with calling(f"reading the reserved concurrency of {function}"):
        resp = client(target, "lambda").get_function_concurrency(FunctionName=function)
    value = resp.get("ReservedConcurrentExecutions")
    return int(value) if value is not None else None


# --- CloudWatch ----------------------------------------------------------------------------------


def metric_data(target: Target, queries: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One GetMetricData request (following NextToken) for at most 500 queries.

    Returns the MetricDataResults merged across pages: Id, Timestamps, Values, StatusCode.
    """
    if len(queries) > 500:
        raise ValueError("GetMetricData takes at most 500 queries per call")
    meter = _meter.get()
    n_metrics = sum(1 for q in queries if "MetricStat" in q)
    merged: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    cw = client(target, "cloudwatch")
    with calling("fetching CloudWatch metrics"):
        while True:
            if meter is not None:  # billed per metric requested, on every page
                meter.add_metrics(n_metrics)
            resp = cw.get_metric_data(**params)
            for r in resp.get("MetricDataResults", []):
                slot = merged.setdefault(r["Id"], {"Id": r["Id"], "Timestamps": [], "Values": [], "StatusCode": ""})
                slot["Timestamps"].extend(r.get("Timestamps", []))
                slot["Values"].extend(r.get("Values", []))
                slot["StatusCode"] = r.get("StatusCode", "")
            token = resp.get("NextToken")
            if not token:
                break
            params["NextToken"] = token
    return list(merged.values())


# --- API Gateway ---------------------------------------------------------------------------------


def rest_api(target: Target, api_id: str) -> dict[str, Any]:
    """A REST API (API Gateway v1) by id: its name (CloudWatch's ApiName dimension)."""
    with calling(f"reading REST API {api_id}"):
        resp = client(target, "apigateway").get_rest_api(restApiId=api_id)
    return {"id": resp.get("id", api_id), "name": resp.get("name", "")}


def rest_api_stage_names(target: Target, api_id: str) -> list[str]:
    with calling(f"listing the stages of REST API {api_id}"):
        resp = client(target, "apigateway").get_stages(restApiId=api_id)
    return [s["stageName"] for s in resp.get("item", [])]


def http_api(target: Target, api_id: str) -> dict[str, Any]:
    """An HTTP API (API Gateway v2) by id."""
    with calling(f"reading HTTP API {api_id}"):
        resp = client(target, "apigatewayv2").get_api(ApiId=api_id)
    return {"id": resp.get("ApiId", api_id), "name": resp.get("Name", "")}


def http_api_stage_names(target: Target, api_id: str) -> list[str]:
    with calling(f"listing the stages of HTTP API {api_id}"):
        resp = client(target, "apigatewayv2").get_stages(ApiId=api_id)
    return [s["StageName"] for s in resp.get("Items", [])]


# --- SQS messages (DLQ browsing and redrive) -------------------------------------------------------

#: An answer meaning "this endpoint does not implement the operation at all" (an emulator, an
#: S3-compatible-style partial implementation), as opposed to an AWS error about this request.
UNSUPPORTED_CODES = {
    "UnknownOperation",
    "UnknownOperationException",
    "InvalidAction",
    "NotImplemented",
    "NotImplementedException",
    "501",
}
#: The code an AwsError carries when the endpoint lacks the operation.
UNSUPPORTED = "UnsupportedByEndpoint"


def endpoint_lacks_operation(exc: ClientError) -> bool:
    """True when the endpoint answered that it does not know the operation.

    moto answers operations it lacks with an HTTP 500 HTML page; others answer UnknownOperation,
    InvalidAction or 501. A 5xx that is not an HTML page (an AWS InternalError, a proxy's fault) is
    an ordinary transient failure, not this.
    """
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    html = str(err.get("Message", "")).lstrip().lower().startswith(("<!doctype html", "<html"))
    return code in UNSUPPORTED_CODES or status == 501 or (status >= 500 and html)


@contextmanager
def calling_optional(doing: str, operation: str) -> Iterator[None]:
    """Like `calling`, but an endpoint lacking `operation` raises AwsError(code=UNSUPPORTED)."""
    try:
        yield
    except ClientError as exc:
        if endpoint_lacks_operation(exc):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise AwsError(f"{doing}: this endpoint does not support {operation}.", UNSUPPORTED, status=status) from exc
        raise translate(exc, doing) from exc
    except (BotoCoreError, AwsError) as exc:
        raise translate(exc, doing) from exc


def receive_messages(
    target: Target, queue_url: str, max_messages: int = 10, visibility_timeout: int = 30, wait_seconds: int = 0
) -> list[dict[str, Any]]:
    """Up to 10 messages with all their attributes; each received message stays invisible for
    `visibility_timeout` seconds. Keys: MessageId, ReceiptHandle, Body, Attributes (system:
    SentTimestamp, ApproximateReceiveCount, MessageGroupId, …), MessageAttributes."""
    with calling(f"receiving messages from {queue_url}"):
        resp = client(target, "sqs").receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
    return list(resp.get("Messages", []))


def _batch_result(resp: dict[str, Any]) -> dict[str, list]:
    """Successful entry ids and failed entries ({Id, Code, Message, SenderFault}) of a batch call."""
    return {
        "ok": [e["Id"] for e in resp.get("Successful", [])],
        "failed": [
            {
                "Id": e["Id"],
                "Code": e.get("Code", ""),
                "Message": e.get("Message", ""),
                "SenderFault": bool(e.get("SenderFault")),
            }
            for e in resp.get("Failed", [])
        ],
    }


def send_message_batch(target: Target, queue_url: str, entries: list[dict[str, Any]]) -> dict[str, list]:
    """SendMessageBatch of at most 10 entries (SQS's own entry shape). Returns {"ok", "failed"}."""
    with calling(f"sending messages to {queue_url}"):
        resp = client(target, "sqs").send_message_batch(QueueUrl=queue_url, Entries=entries)
    return _batch_result(resp)


def delete_message_batch(target: Target, queue_url: str, receipts: list[tuple[str, str]]) -> dict[str, list]:
    """Delete up to 10 messages given as (entry id, receipt handle). Returns {"ok", "failed"}."""
    with calling(f"deleting messages from {queue_url}"):
        resp = client(target, "sqs").delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": i, "ReceiptHandle": h} for i, h in receipts]
        )
    return _batch_result(resp)


def change_visibility_batch(
    target: Target, queue_url: str, receipts: list[tuple[str, str]], timeout: int
) -> dict[str, list]:
    """Set the visibility timeout of up to 10 received messages (0: visible again at once)."""
    with calling(f"changing message visibility on {queue_url}"):
        resp = client(target, "sqs").change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": i, "ReceiptHandle": h, "VisibilityTimeout": timeout} for i, h in receipts],
        )
    return _batch_result(resp)


def purge_queue(target: Target, queue_url: str) -> None:
    with calling(f"purging {queue_url}"):
        client(target, "sqs").purge_queue(QueueUrl=queue_url)


def start_message_move_task(target: Target, source_arn: str, destination_arn: str = "", rate: int | None = None) -> str:
    """SQS's own DLQ redrive; returns the task handle. Without a destination, messages go back to
    their original source queues."""
    params: dict[str, Any] = {"SourceArn": source_arn}
    if destination_arn:
        params["DestinationArn"] = destination_arn
    if rate:
        params["MaxNumberOfMessagesPerSecond"] = int(rate)
    with calling_optional(f"starting a message move task on {source_arn}", "StartMessageMoveTask"):
        return client(target, "sqs").start_message_move_task(**params)["TaskHandle"]


def list_message_move_tasks(target: Target, source_arn: str) -> list[dict[str, Any]]:
    """The most recent move tasks of a queue (AWS keeps 10), newest first. TaskHandle is present
    only while a task runs; StartedTimestamp is in epoch milliseconds."""
    with calling_optional(f"listing message move tasks of {source_arn}", "ListMessageMoveTasks"):
        resp = client(target, "sqs").list_message_move_tasks(SourceArn=source_arn, MaxResults=10)
    return list(resp.get("Results", []))


def cancel_message_move_task(target: Target, task_handle: str) -> int:
    """Cancel a running move task; returns the messages moved so far."""
    with calling_optional("cancelling a message move task", "CancelMessageMoveTask"):
        resp = client(target, "sqs").cancel_message_move_task(TaskHandle=task_handle)
    return int(resp.get("ApproximateNumberOfMessagesMoved", 0))


# --- CloudWatch Logs (per-request trace) -----------------------------------------------------------


def filter_log_events(
    target: Target,
    group: str,
    pattern: str,
    start_ms: int,
    end_ms: int,
    next_token: str = "",
    streams: Iterable[str] = (),
    limit: int | None = None,
) -> dict[str, Any]:
    """One FilterLogEvents page (the caller follows `next_token`, so it can cap its calls).

    Returns {"events": [{timestamp, message, stream}], "next_token": str}. `pattern` is sent as
    given: callers quote what users typed.
    """
    params: dict[str, Any] = {"logGroupName": group, "startTime": int(start_ms), "endTime": int(end_ms)}
    if pattern:
        params["filterPattern"] = pattern
    if next_token:
        params["nextToken"] = next_token
    if streams:
        params["logStreamNames"] = list(streams)
    if limit:
        params["limit"] = int(limit)
    with calling(f"searching log group {group}"):
        resp = client(target, "logs").filter_log_events(**params)
    events = [
        {"timestamp": int(e.get("timestamp", 0)), "message": e.get("message", ""), "stream": e.get("logStreamName", "")}
        for e in resp.get("events", [])
    ]
    return {"events": events, "next_token": resp.get("nextToken") or ""}


def api_sqs_integrations(target: Target, kind: str, api_id: str) -> list[str]:
    """The request mappings of an API's SQS integrations, as text (REST: request templates; HTTP API:
    request parameters), for checking what they pass on. One call per REST method, one for an HTTP API."""
    out: list[str] = []
    if kind == "http":
        with calling(f"reading the integrations of HTTP API {api_id}"):
            items = client(target, "apigatewayv2").get_integrations(ApiId=api_id).get("Items", [])
        for i in items:
            if (i.get("IntegrationSubtype") or "").startswith("SQS-"):
                out.append(json.dumps(i.get("RequestParameters") or {}))
        return out
    apigw = client(target, "apigateway")
    with calling(f"reading the resources of REST API {api_id}"):
        resources = [
            r for page in apigw.get_paginator("get_resources").paginate(restApiId=api_id) for r in page.get("items", [])
        ]
        for r in resources:
            for method in r.get("resourceMethods") or {}:
                integ = apigw.get_integration(restApiId=api_id, resourceId=r["id"], httpMethod=method)
                if ":sqs:" in (integ.get("uri") or ""):
                    out.extend((integ.get("requestTemplates") or {}).values())
                    out.append(json.dumps(integ.get("requestParameters") or {}))
    return out
