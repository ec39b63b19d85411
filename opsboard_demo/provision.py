"""Build real-shaped API → SQS → Lambda pipelines in an AWS endpoint (the emulator, for the demo,
tests and benchmarks): a queue with a DLQ and RedrivePolicy, a consumer function with an SQS
event-source mapping, log groups, and optionally a REST API whose SQS integration passes
`$context.requestId` as a message attribute.

Event-source mappings are created *disabled* by default: the emulator cannot run Lambda, and an enabled
mapping would make every send try to invoke it.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from pipelines import aws

HANDLER = b"def handler(event, context):\n    return {'batchItemFailures': []}\n"
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@dataclass
class PipelineSpec:
    name: str
    fifo: bool = False
    dlq: bool = True
    consumer: bool = True
    api: bool = False
    max_receive_count: int = 5
    visibility_timeout: int = 180
    retention_period: int = 345600
    dlq_retention_period: int = 1209600
    function_timeout: int = 30
    reserved_concurrency: int | None = None
    batch_size: int = 10
    maximum_concurrency: int | None = 5
    report_batch_item_failures: bool = True
    request_id_attribute: str = "requestId"
    # Enabled only where nothing is sent: the emulator would try to invoke the function on every send.
    mapping_enabled: bool = False
    api_passes_request_id: bool = True
    #: The source queue's AWS tags (discovery imports them: the `team` tag becomes the group).
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Provisioned:
    queue_url: str
    queue_arn: str
    dlq_url: str = ""
    dlq_arn: str = ""
    function_name: str = ""
    api_id: str = ""
    api_stage: str = ""
    api_log_group: str = ""
    consumer_log_group: str = ""


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", HANDLER)
    return buf.getvalue()


def _role(target: aws.Target) -> str:
    iam = aws.client(target, "iam")
    try:
        return iam.get_role(RoleName="opsboard-demo-consumer")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName="opsboard-demo-consumer", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]["Arn"]


def _queue(target: aws.Target, name: str, attrs: dict[str, str], tags: dict[str, str] | None = None) -> tuple[str, str]:
    sqs = aws.client(target, "sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attrs, **({"tags": tags} if tags else {}))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def provision(target: aws.Target, spec: PipelineSpec) -> Provisioned:
    suffix = ".fifo" if spec.fifo else ""
    fifo_attrs = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if spec.fifo else {}
    out = Provisioned(queue_url="", queue_arn="")
    queue_attrs: dict[str, str] = {
        **fifo_attrs,
        "VisibilityTimeout": str(spec.visibility_timeout),
        "MessageRetentionPeriod": str(spec.retention_period),
    }
    if spec.dlq:
        out.dlq_url, out.dlq_arn = _queue(
            target, f"{spec.name}-dlq{suffix}", {**fifo_attrs, "MessageRetentionPeriod": str(spec.dlq_retention_period)}
        )
        queue_attrs["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": out.dlq_arn, "maxReceiveCount": str(spec.max_receive_count)}
        )
    out.queue_url, out.queue_arn = _queue(target, f"{spec.name}{suffix}", queue_attrs, spec.tags)

    logs = aws.client(target, "logs")
    if spec.consumer:
        lam = aws.client(target, "lambda")
        out.function_name = f"{spec.name}-consumer"
        lam.create_function(
            FunctionName=out.function_name,
            Runtime="python3.12",
            Role=_role(target),
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
            Timeout=spec.function_timeout,
        )
        if spec.reserved_concurrency is not None:
            lam.put_function_concurrency(
                FunctionName=out.function_name, ReservedConcurrentExecutions=spec.reserved_concurrency
            )
        mapping: dict[str, Any] = {
            "EventSourceArn": out.queue_arn,
            "FunctionName": out.function_name,
            "BatchSize": spec.batch_size,
            "Enabled": spec.mapping_enabled,
        }
        if spec.maximum_concurrency:
            mapping["ScalingConfig"] = {"MaximumConcurrency": spec.maximum_concurrency}
        if spec.report_batch_item_failures:
            mapping["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        lam.create_event_source_mapping(**mapping)
        out.consumer_log_group = f"/aws/lambda/{out.function_name}"
        logs.create_log_group(logGroupName=out.consumer_log_group)
    if spec.api:
        out.api_id, out.api_stage = _rest_api(target, spec, out)
        out.api_log_group = f"/aws/apigateway/{spec.name}-access"
        logs.create_log_group(logGroupName=out.api_log_group)
    return out


def _rest_api(target: aws.Target, spec: PipelineSpec, out: Provisioned) -> tuple[str, str]:
    """A REST API whose POST / sends the body to the queue with the request id as an attribute."""
    apigw = aws.client(target, "apigateway")
    api = apigw.create_rest_api(name=f"{spec.name}-api")
    root = [r for r in apigw.get_resources(restApiId=api["id"])["items"] if r["path"] == "/"][0]["id"]
    apigw.put_method(restApiId=api["id"], resourceId=root, httpMethod="POST", authorizationType="NONE")
    account_id, queue_name = out.queue_arn.split(":")[4], out.queue_arn.split(":")[5]
    template = "Action=SendMessage&MessageBody=$util.urlEncode($input.body)"
    if spec.api_passes_request_id:
        template += (
            f"&MessageAttribute.1.Name={spec.request_id_attribute}"
            "&MessageAttribute.1.Value.StringValue=$context.requestId"
            "&MessageAttribute.1.Value.DataType=String"
        )
    if spec.fifo:
        template += "&MessageGroupId=$context.requestId"
    apigw.put_integration(
        restApiId=api["id"],
        resourceId=root,
        httpMethod="POST",
        type="AWS",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{target.region}:sqs:path/{account_id}/{queue_name}",
        requestParameters={"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
        requestTemplates={"application/json": template},
        passthroughBehavior="NEVER",
    )
    apigw.create_deployment(restApiId=api["id"], stageName="prod")
    return api["id"], "prod"
