"""Discovery: from a queue URL alone, read how the pipeline around it is built.

The queue's ARN, FIFO flag, visibility timeout and retention; its dead-letter queue from the
RedrivePolicy (URL, ARN, maxReceiveCount, retention); and its consumer Lambda from the
event-source mappings on the queue ARN (function, timeout, memory and architecture, which price its
duration, reserved concurrency, BatchSize, MaximumConcurrency, ReportBatchItemFailures, mapping state);
and the queue's AWS tags (one ListQueueTags call per queue, at discovery only: never in a sync cycle),
which `store_discovery` merges into the pipeline's own (registry/tags.py: tags set by hand win, and
PIPELINE_GROUP_TAG's value fills an empty group).

`discover` returns plain data (a dict of Pipeline field names plus warnings); nothing is stored
unless the whole queue part succeeded, so a failed registration leaves nothing half-discovered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from pipelines import aws
from pipelines.models import AuditAction, AuditEntry, AuditThrough, Pipeline
from pipelines.registry import tags

QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
#: AWS's SQS hosts, each naming its region: the regional endpoint (also FIPS and dual-stack
#: api.aws), the legacy <region>.queue host, and interface VPC endpoints (vpce-….sqs.<region>.vpce…).
AWS_HOST_RES = (
    re.compile(r"^sqs(-fips)?\.(?P<region>[a-z0-9-]+)\.(amazonaws\.com(\.cn)?|api\.aws)$"),
    re.compile(r"^(?P<region>[a-z0-9-]+)\.queue\.amazonaws\.com(\.cn)?$"),
    re.compile(r"^vpce-[a-z0-9-]+\.sqs\.(?P<region>[a-z0-9-]+)\.vpce\.amazonaws\.com(\.cn)?$"),
)
#: Regional hosts an emulator reports (LocalStack's).
EMULATOR_HOST_RES = (re.compile(r"^sqs\.(?P<region>[a-z0-9-]+)\.localhost\.localstack\.cloud$"),)
AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")

# Pipeline fields that describe the DLQ / the consumer, cleared when none is found.
DLQ_FIELDS = {"dlq_url": "", "dlq_arn": "", "max_receive_count": None, "dlq_retention_period": None}
CONSUMER_FIELDS = {
    "function_name": "",
    "function_arn": "",
    "function_timeout": None,
    "reserved_concurrency": None,
    "function_memory_mb": None,
    "function_architecture": "",
    "batch_size": None,
    "maximum_concurrency": None,
    "report_batch_item_failures": None,
    "mapping_uuid": "",
    "mapping_state": "",
    "extra_mappings": 0,
}


class DiscoveryError(Exception):
    """The queue could not be discovered; the message says why, for a form or a command line.

    `field` names the form field the problem belongs to.
    """

    def __init__(self, message: str, field: str = "queue_url"):
        super().__init__(message)
        self.field = field


@dataclass
class QueueUrl:
    url: str
    account_id: str
    name: str
    region: str | None  # None when the host does not say (an emulator)
    port: int = 443  # the port connected to, the scheme's default when none is written

    @property
    def is_fifo(self) -> bool:
        return self.name.endswith(".fifo")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def netloc(self) -> str:
        """host[:port] as written."""
        return urlsplit(self.url).netloc.rsplit("@", 1)[-1]


def host_region(host: str, patterns=AWS_HOST_RES + EMULATOR_HOST_RES) -> str | None:
    """The region an SQS host names, or None when it names none."""
    for rx in patterns:
        m = rx.match(host)
        if m:
            return m.group("region")
    return None


@dataclass
class Discovery:
    fields: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: The queue's AWS tags that can be typed in the admin; None when they could not be read (kept as they were).
    aws_tags: dict[str, str] | None = None


def store_discovery(pipeline: Pipeline, found: Discovery) -> None:
    """Put what discovery found on `pipeline` (not saved): the discovered fields, and the queue's AWS
    tags merged into the pipeline's tags and group (hand-set values win)."""
    pipeline.apply_discovery(found.fields)
    if found.aws_tags is None:
        return
    pipeline.tags, pipeline.group = tags.merge_aws_tags(
        pipeline.tags, pipeline.group, pipeline.aws_tags, found.aws_tags, settings.PIPELINE_GROUP_TAG
    )
    pipeline.aws_tags = found.aws_tags


def parse_queue_url(url: str, expected_region: str | None = None) -> QueueUrl:
    """Validate the shape of a queue URL: scheme, host, /<12-digit account>/<queue name>."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DiscoveryError(
            f"Enter a queue URL such as https://sqs.eu-west-1.amazonaws.com/123456789012/orders (got {url[:200]!r})."
        )
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 2 or parts.query or parts.fragment:
        raise DiscoveryError("A queue URL ends in /<12-digit account id>/<queue name>, with nothing after it.")
    account_id, name = segments
    if not re.fullmatch(r"\d{12}", account_id):
        raise DiscoveryError(f"{account_id!r} in the queue URL is not a 12-digit AWS account id.")
    base = name[:-5] if name.endswith(".fifo") else name
    if not QUEUE_NAME_RE.match(base) or len(name) > 80:
        raise DiscoveryError(f"{name!r} is not a valid SQS queue name (letters, digits, - and _, up to 80).")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DiscoveryError(f"{parts.netloc!r} in the queue URL has an invalid port number.") from None
    region = host_region(parts.hostname)
    if parts.hostname.endswith(AWS_DOMAINS) and region is None:
        raise DiscoveryError(f"{parts.hostname} is not an SQS endpoint host.")
    if region and expected_region and region != expected_region:
        raise DiscoveryError(
            f"This queue is in {region}, but the account is set to {expected_region}: "
            "register it under an account for that region."
        )
    return QueueUrl(url=url, account_id=account_id, name=name, region=region, port=port)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _queue_error(exc: aws.AwsError, url: str) -> DiscoveryError:
    if exc.is_missing:
        return DiscoveryError(f"No queue exists at {url} for this account: check the URL, region and account.")
    if exc.is_denied:
        return DiscoveryError(f"Access denied reading {url}: allow sqs:GetQueueAttributes for opsboard. ({exc})")
    return DiscoveryError(f"Could not read the queue: {exc}")


def discover(
    target: aws.Target,
    queue_url: str,
    api_kind: str = "",
    api_id: str = "",
    api_stage: str = "",
    attribute: str = "requestId",
) -> Discovery:
    """Read the pipeline around `queue_url` (and the API in front of it, when one is named).

    Raises DiscoveryError when the queue or the named API cannot be read.
    """
    parsed = parse_queue_url(queue_url, target.region)
    try:
        attrs = aws.queue_attributes(target, parsed.url)
    except aws.AwsError as exc:
        raise _queue_error(exc, parsed.url) from exc

    result = Discovery(
        fields={
            "queue_url": parsed.url,
            "queue_arn": attrs.get("QueueArn", ""),
            "queue_name": parsed.name,
            "is_fifo": attrs.get("FifoQueue", "false").lower() == "true" or parsed.is_fifo,
            "visibility_timeout": _int(attrs.get("VisibilityTimeout")),
            "retention_period": _int(attrs.get("MessageRetentionPeriod")),
            **DLQ_FIELDS,
            **CONSUMER_FIELDS,
        }
    )
    _discover_dlq(target, attrs, result)
    _discover_tags(target, parsed.url, result)
    if result.fields["queue_arn"]:
        _discover_consumer(target, result.fields["queue_arn"], result)
    result.fields["api_name"] = _discover_api(target, api_kind, api_id, api_stage) if api_id else ""
    result.fields["api_passes_request_id"] = None
    if api_id:
        _discover_request_id(target, api_kind or "rest", api_id, attribute, result)
    return result


def passes_request_id(mappings: list[str], attribute: str) -> bool | None:
    """Whether an SQS integration's request mapping puts the API request id into `attribute`.

    None when there is no SQS integration to judge.
    """
    if not mappings:
        return None
    a = re.escape(attribute)
    for m in mappings:
        # REST, form-encoded: MessageAttribute.N.Name=<attr> ... MessageAttribute.N.Value.StringValue=$context.requestId
        for n in re.findall(rf"MessageAttribute\.(\d+)\.Name={a}(?![\w.-])", m):
            if re.search(rf"MessageAttribute\.{n}\.Value\.StringValue=[^&]*context\.requestId", m):
                return True
        # HTTP API (or JSON): "<attr>": {... "StringValue": "${context.requestId}" ...}, quotes maybe escaped.
        if re.search(rf'\\*"{a}\\*"\s*:\s*\{{[^}}]*context\.requestId', m):
            return True
    return False


def _discover_request_id(target: aws.Target, kind: str, api_id: str, attribute: str, result: Discovery) -> None:
    try:
        mappings = aws.api_sqs_integrations(target, kind, api_id)
    except aws.AwsError as exc:
        result.warnings.append(f"The API's SQS integration could not be read: {exc}")
        return
    passes = passes_request_id(mappings, attribute)
    result.fields["api_passes_request_id"] = passes
    if passes is False:
        result.warnings.append(
            f"The API's SQS integration does not pass $context.requestId in the "
            f"'{attribute}' message attribute: request traces cannot link API calls to messages."
        )


def _discover_api(target: aws.Target, kind: str, api_id: str, stage: str) -> str:
    """Check the named API and stage exist; return the API's name."""
    kind = kind or "rest"
    label = "REST API" if kind == "rest" else "HTTP API"
    try:
        if kind == "rest":
            api, stages = aws.rest_api(target, api_id), aws.rest_api_stage_names(target, api_id)
        else:
            api, stages = aws.http_api(target, api_id), aws.http_api_stage_names(target, api_id)
    except aws.AwsError as exc:
        if exc.code in ("NotFoundException", "ResourceNotFoundException"):
            raise DiscoveryError(f"No {label} with id {api_id!r} exists in this account and region.", "api_id") from exc
        raise DiscoveryError(f"Could not read {label} {api_id}: {exc}", "api_id") from exc
    if stage and stage not in stages:
        known = ", ".join(stages) or "none"
        raise DiscoveryError(f"{label} {api_id} has no stage {stage!r} (its stages: {known}).", "api_stage")
    return api["name"]


def _discover_dlq(target: aws.Target, attrs: dict[str, str], result: Discovery) -> None:
    raw = attrs.get("RedrivePolicy")
    if not raw:
        return
    try:
        policy = json.loads(raw)
        dlq_arn = policy["deadLetterTargetArn"]
    except (ValueError, KeyError, TypeError):
        result.warnings.append(f"The queue's RedrivePolicy could not be read: {raw[:200]}")
        return
    result.fields.update(dlq_arn=dlq_arn, max_receive_count=_int(policy.get("maxReceiveCount")))
    try:
        dlq_url = aws.queue_url_for_arn(target, dlq_arn)
        dlq_attrs = aws.queue_attributes(target, dlq_url, ["MessageRetentionPeriod"])
    except aws.AwsError as exc:
        result.warnings.append(f"The dead-letter queue {dlq_arn} could not be read: {exc}")
        return
    result.fields.update(dlq_url=dlq_url, dlq_retention_period=_int(dlq_attrs.get("MessageRetentionPeriod")))


def _discover_tags(target: aws.Target, queue_url: str, result: Discovery) -> None:
    try:
        found = aws.queue_tags(target, queue_url)
    except aws.AwsError as exc:
        hint = " (allow sqs:ListQueueTags for opsboard)" if exc.is_denied else ""
        result.warnings.append(f"The queue's AWS tags could not be read{hint}; its tags are kept as they were: {exc}")
        return
    result.aws_tags, refused = tags.importable(found)
    if refused:
        result.warnings.append(
            "Some of the queue's AWS tags were not imported (a key with = or a comma, or a value with a comma): "
            + ", ".join(sorted(refused)[:10])
        )


def _function_name(function_arn: str) -> str:
    # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    parts = function_arn.split(":")
    return parts[6] if len(parts) >= 7 and parts[5] == "function" else function_arn


def _discover_consumer(target: aws.Target, queue_arn: str, result: Discovery) -> None:
    try:
        mappings = aws.event_source_mappings(target, queue_arn)
    except aws.AwsError as exc:
        result.warnings.append(f"The consumer could not be discovered: {exc}")
        return
    if not mappings:
        return
    # Prefer a mapping that is (becoming) active; several mappings on one queue compete for messages.
    order = {"Enabled": 0, "Enabling": 1, "Updating": 2, "Creating": 3}
    mapping = sorted(mappings, key=lambda m: order.get(m.get("State", ""), 9))[0]
    function_arn = mapping.get("FunctionArn", "")
    result.fields.update(
        function_arn=function_arn,
        function_name=_function_name(function_arn),
        batch_size=_int(mapping.get("BatchSize")),
        maximum_concurrency=_int((mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")),
        report_batch_item_failures="ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or []),
        mapping_uuid=mapping.get("UUID", ""),
        mapping_state=mapping.get("State", ""),
        extra_mappings=len(mappings) - 1,
    )
    if len(mappings) > 1:
        result.warnings.append(
            f"{len(mappings)} event-source mappings read this queue; showing {result.fields['function_name']}."
        )
    try:
        conf = aws.function_configuration(target, function_arn)
        result.fields.update(
            function_name=conf.get("FunctionName") or result.fields["function_name"],
            function_timeout=_int(conf.get("Timeout")),
            function_memory_mb=_int(conf.get("MemorySize")),
            # Older functions report no Architectures: they run on x86_64, AWS's default.
            function_architecture=((conf.get("Architectures") or ["x86_64"])[0])[:16],
        )
        result.fields["reserved_concurrency"] = aws.function_reserved_concurrency(target, function_arn)
    except aws.AwsError as exc:
        result.warnings.append(f"The consumer function {function_arn} could not be read: {exc}")


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (queue URL, why)
    warnings: list[str] = field(default_factory=list)


def import_queues(
    account,
    prefix: str = "",
    dry_run: bool = False,
    *,
    user=None,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> ImportResult:
    """Register every queue of `account` that has a dead-letter queue, in one step; each pipeline
    registered is written to the audit trail (as done by `user`, from `remote_addr`, `through`).

    Dead-letter queues themselves and queues already registered are skipped, with the reason. A
    queue is already registered when a pipeline on any account has its ARN (or, on this account,
    its URL). The URLs are the ones the endpoint lists for its own account, so they are taken as
    they come.
    """
    target = account.target()
    result = ImportResult()
    try:
        urls = aws.list_queue_urls(target, prefix)
    except aws.AwsError as exc:
        raise DiscoveryError(f"Could not list the queues of {account}: {exc}") from exc
    attrs_by_url: dict[str, dict[str, str]] = {}
    for url in urls:
        try:
            attrs_by_url[url] = aws.queue_attributes(target, url, ["QueueArn", "RedrivePolicy"])
        except aws.AwsError as exc:
            result.skipped.append((url, str(exc)))
    dlq_arns = set()
    for attrs in attrs_by_url.values():
        try:
            dlq_arns.add(json.loads(attrs.get("RedrivePolicy") or "{}").get("deadLetterTargetArn"))
        except ValueError:
            pass
    registered = registered_queues(account)
    taken_names = set(Pipeline.objects.values_list("name", flat=True))
    for url, attrs in attrs_by_url.items():
        owner = registered.get(attrs.get("QueueArn", "")) or registered.get(url)
        if owner:
            result.skipped.append((url, f"already registered as {owner}"))
        elif attrs.get("QueueArn") in dlq_arns:
            result.skipped.append((url, "is a dead-letter queue"))
        elif not attrs.get("RedrivePolicy"):
            result.skipped.append((url, "has no dead-letter queue"))
        else:
            try:
                found = discover(target, url)
            except DiscoveryError as exc:
                result.skipped.append((url, str(exc)))
                continue
            name = found.fields["queue_name"]
            if name in taken_names:
                name = f"{account.name}/{name}"[:100]
            if name in taken_names:
                result.skipped.append((url, f"the name {name!r} is taken"))
                continue
            if not dry_run:
                pipeline = Pipeline(name=name, account=account)
                store_discovery(pipeline, found)
                try:
                    with transaction.atomic():
                        pipeline.save()
                        AuditEntry.record(
                            AuditAction.PIPELINE_REGISTER,
                            user,
                            pipeline,
                            remote_addr=remote_addr,
                            through=through,
                            queue_url=url,
                            account=account.name,
                            imported=True,
                        )
                except IntegrityError:  # registered by someone else since the check above
                    result.skipped.append((url, "registered by someone else during the import"))
                    continue
            taken_names.add(name)
            registered[found.fields["queue_arn"] or url] = f"pipeline {name!r} on {account}"
            result.created.append(name)
            result.warnings.extend(f"{name}: {w}" for w in found.warnings)
    return result


def registered_queues(account) -> dict[str, str]:
    """Who has each registered queue, by ARN (every account) and by URL (this account's pipelines):
    "pipeline 'orders' on prod (eu-west-1)"."""
    out = {}
    rows = Pipeline.objects.values_list(
        "queue_arn", "queue_url", "name", "account_id", "account__name", "account__region"
    )
    for arn, url, name, account_id, account_name, region in rows:
        owner = f"pipeline {name!r} on {account_name} ({region})"
        if arn:
            out[arn] = owner
        if account_id == account.pk:
            out[url] = owner
    return out
