"""The AWS calls opsboard makes, one function each: plain data in and out, failures as `AwsError`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pipelines.aws.client import (
    COUNT_ATTRIBUTES,
    UNSUPPORTED,
    AwsError,
    Target,
    calling,
    calling_optional,
    client,
    current_meter,
)


def queue_attributes(target: Target, queue_url: str, names: Iterable[str] = ("All",)) -> dict[str, str]:
    with calling(f"reading the attributes of {queue_url}"):
        resp = client(target, "sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))
    return dict(resp.get("Attributes", {}))


def queue_tags(target: Target, queue_url: str) -> dict[str, str]:
    """The queue's cost-allocation tags (SQS ListQueueTags: one call, needs sqs:ListQueueTags)."""
    with calling(f"reading the tags of {queue_url}"):
        resp = client(target, "sqs").list_queue_tags(QueueUrl=queue_url)
    return dict(resp.get("Tags") or {})


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


def caller_identity(target: Target) -> dict[str, str]:
    """Which AWS account a target acts in and where its SQS calls go.

    `account_id` comes from STS GetCallerIdentity (allowed to every caller, no IAM permission
    needed; with a role, the role's account), '' when the endpoint does not implement it.
    `sqs_endpoint` is the endpoint boto3 resolved for SQS: the target's own, else AWS_ENDPOINT_URL
    (or AWS_ENDPOINT_URL_SQS), else AWS's regional one. Only the STS part calls AWS.
    """
    account_id = ""
    try:
        with calling_optional("asking STS which account the credentials act in", "GetCallerIdentity"):
            account_id = client(target, "sts").get_caller_identity()["Account"]
    except AwsError as exc:
        if exc.code != UNSUPPORTED:
            raise
    return {"account_id": account_id, "sqs_endpoint": client(target, "sqs").meta.endpoint_url}


def list_queue_urls(target: Target, prefix: str = "") -> list[str]:
    params: dict[str, Any] = {"MaxResults": 1000}
    if prefix:
        params["QueueNamePrefix"] = prefix
    urls: list[str] = []
    with calling("listing queues"):
        for page in client(target, "sqs").get_paginator("list_queues").paginate(**params):
            urls.extend(page.get("QueueUrls", []))
    return urls


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


def metric_data(target: Target, queries: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One GetMetricData request (following NextToken) for at most 500 queries.

    Returns the MetricDataResults merged across pages: Id, Timestamps, Values, StatusCode.
    """
    if len(queries) > 500:
        raise ValueError("GetMetricData takes at most 500 queries per call")
    meter = current_meter.get()
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


def send_message(
    target: Target,
    queue_url: str,
    body: str,
    attributes: dict[str, dict[str, Any]] | None = None,
    *,
    group_id: str = "",
    deduplication_id: str = "",
    system_attributes: dict[str, dict[str, Any]] | None = None,
) -> str:
    """SendMessage of one message (attributes in SQS's own shape; the group and deduplication ids
    for a FIFO queue). Returns the new message's id."""
    params: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
    if attributes:
        params["MessageAttributes"] = attributes
    if system_attributes:
        params["MessageSystemAttributes"] = system_attributes
    if group_id:
        params["MessageGroupId"] = group_id
    if deduplication_id:
        params["MessageDeduplicationId"] = deduplication_id
    with calling(f"sending a message to {queue_url}"):
        return client(target, "sqs").send_message(**params)["MessageId"]


def delete_message(target: Target, queue_url: str, receipt_handle: str) -> None:
    """DeleteMessage of one received message, by its receipt handle."""
    with calling(f"deleting a message from {queue_url}"):
        client(target, "sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)


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
