"""The only place that builds boto3 sessions and clients.

Everything here takes a `Target` (plain data: region, optional role to assume, optional endpoint)
and returns plain Python data, so the layers above never see boto3 and can be tested without AWS.
Failures surface as `AwsError` with a sentence an operator can act on. A configured endpoint (the
target's, or AWS_ENDPOINT_URL) is reached only through the outbound address policy
(`pipelines.outbound`); a refusal is an AwsError whose code is `REFUSED`.

Every HTTP attempt made through these clients is counted on the active `CallMeter`, which is how a
sync cycle knows exactly which AWS calls it paid for (retries included).

The package's names are used as `aws.<name>`; `client` holds sessions, errors and metering,
`operations` the calls.
"""

from pipelines.aws.client import (
    COUNT_ATTRIBUTES,
    DENIED_CODES,
    MISSING_QUEUE_CODES,
    REFUSED,
    THROTTLE_CODES,
    UNSUPPORTED,
    UNSUPPORTED_CODES,
    AwsError,
    CallMeter,
    Target,
    calling,
    calling_optional,
    client,
    endpoint_lacks_operation,
    metering,
    reset_clients,
    translate,
)
from pipelines.aws.operations import (
    api_sqs_integrations,
    caller_identity,
    cancel_message_move_task,
    change_visibility_batch,
    delete_message,
    delete_message_batch,
    event_source_mappings,
    filter_log_events,
    function_configuration,
    function_reserved_concurrency,
    http_api,
    http_api_stage_names,
    list_message_move_tasks,
    list_queue_urls,
    metric_data,
    purge_queue,
    queue_attributes,
    queue_counts,
    queue_tags,
    queue_url_for_arn,
    receive_messages,
    rest_api,
    rest_api_stage_names,
    send_message,
    send_message_batch,
    start_message_move_task,
)

__all__ = [
    "AwsError",
    "COUNT_ATTRIBUTES",
    "CallMeter",
    "DENIED_CODES",
    "MISSING_QUEUE_CODES",
    "REFUSED",
    "THROTTLE_CODES",
    "Target",
    "UNSUPPORTED",
    "UNSUPPORTED_CODES",
    "api_sqs_integrations",
    "calling",
    "caller_identity",
    "calling_optional",
    "cancel_message_move_task",
    "change_visibility_batch",
    "client",
    "delete_message",
    "delete_message_batch",
    "endpoint_lacks_operation",
    "event_source_mappings",
    "filter_log_events",
    "function_configuration",
    "function_reserved_concurrency",
    "http_api",
    "http_api_stage_names",
    "list_message_move_tasks",
    "list_queue_urls",
    "metering",
    "metric_data",
    "purge_queue",
    "queue_attributes",
    "queue_counts",
    "queue_tags",
    "queue_url_for_arn",
    "receive_messages",
    "reset_clients",
    "rest_api",
    "rest_api_stage_names",
    "send_message",
    "send_message_batch",
    "start_message_move_task",
    "translate",
]
