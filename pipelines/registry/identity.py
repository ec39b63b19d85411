"""A queue's identity: registering a pipeline names a queue of its own account, once.

A queue is its ARN as AWS reports it (partition, region, account, name), not the URL typed: one
queue answers to several URLs (the regional, FIPS, dual-stack, legacy and VPC-endpoint hosts of
AWS), and an emulator answers for any host and any account id in the path. So before a pipeline is
saved, `discover_registration` checks:

- the URL's account id is the account's own, as STS GetCallerIdentity reports it (when the endpoint
  has no STS, the queue's ARN is compared with the URL instead);
- the URL's host belongs to the account: with AWS, an SQS host of the account's region; with an
  endpoint URL (an emulator), that endpoint's host and port, or a regional name under it
  (sqs.<region>.<host>, as LocalStack reports queue URLs);
- the ARN discovery read is the URL's queue, and no other pipeline, on any account, has it (the
  database holds the same rule as a unique constraint).

Each refusal says what to enter instead: "This account is 123456789012 in us-east-1: enter
https://sqs.us-east-1.amazonaws.com/123456789012/orders."
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pipelines import aws
from pipelines.models import AwsAccount, Pipeline
from pipelines.registry.discovery import (
    AWS_DOMAINS,
    AWS_HOST_RES,
    Discovery,
    DiscoveryError,
    QueueUrl,
    discover,
    host_region,
    parse_queue_url,
)


@dataclass(frozen=True)
class Reach:
    """Where an account's SQS calls go, and as which AWS account."""

    account_id: str  # '' when the endpoint does not say (no STS)
    region: str
    endpoint: str  # the SQS endpoint URL the account's calls use

    @property
    def endpoint_host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def endpoint_port(self) -> int:
        parts = urlsplit(self.endpoint)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def is_aws(self) -> bool:
        return self.endpoint_host.endswith(AWS_DOMAINS)

    def queue_url(self, account_id: str, name: str) -> str:
        """The URL to enter for a queue: AWS's regional form, or the emulator's own host."""
        if self.is_aws:
            domain = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
            return f"https://sqs.{self.region}.{domain}/{account_id}/{name}"
        return f"{self.origin}/{account_id}/{name}"

    def describe(self, account_id: str = "") -> str:
        account_id = account_id or self.account_id
        where = f"in {self.region}" if self.is_aws else f"in {self.region} at {self.origin}"
        return f"This account is {account_id} {where}" if account_id else f"This account is {where}"

    def owns_host(self, url: QueueUrl) -> bool:
        if self.is_aws:
            return url.host == self.endpoint_host or host_region(url.host, AWS_HOST_RES) == self.region
        regional = {f"sqs.{self.region}.{self.endpoint_host}", f"{self.region}.queue.{self.endpoint_host}"}
        return url.port == self.endpoint_port and (url.host == self.endpoint_host or url.host in regional)


def url_problem(url: QueueUrl, reach: Reach) -> str:
    """Why `url` does not name a queue of the account `reach` describes, with what to enter; '' if it does."""
    expected = reach.queue_url(reach.account_id or url.account_id, url.name)
    if reach.account_id and url.account_id != reach.account_id:
        return (
            f"The queue URL names AWS account {url.account_id}. {reach.describe()}: enter {expected}, "
            f"or register the queue under an AWS account for {url.account_id}."
        )
    if not reach.owns_host(url):
        whose = f"an SQS endpoint of {reach.region}" if reach.is_aws else "this account's SQS endpoint"
        return f"The queue URL's host {url.netloc} is not {whose}. {reach.describe()}: enter {expected}."
    return ""


def arn_problem(arn: str, url: QueueUrl, reach: Reach) -> str:
    """Why the ARN AWS reports for `url` is not the queue the URL names; '' when it is (or is unknown)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        return ""
    region, account_id, name = parts[3:]
    if region != reach.region:
        return f"AWS reports this queue as {arn}, in {region}: register it under an AWS account for {region}."
    if (account_id, name) != (url.account_id, url.name):
        return (
            f"AWS reports this queue as {arn}. {reach.describe(account_id)}: enter {reach.queue_url(account_id, name)}."
        )
    return ""


def registered_as(arn: str, exclude_pk: int | None = None) -> Pipeline | None:
    """The pipeline, on any account, that already has the queue `arn` (other than `exclude_pk`)."""
    if not arn:
        return None
    others = Pipeline.objects.select_related("account").filter(queue_arn=arn)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    return others.order_by("pk").first()


def reach_of(account: AwsAccount) -> Reach:
    """Ask AWS which account `account` acts in (one STS call) and where its SQS calls go."""
    try:
        who = aws.caller_identity(account.target())
    except aws.AwsError as exc:
        lead = "Access denied checking" if exc.is_denied else "Could not check"
        raise DiscoveryError(f"{lead} which AWS account {account.name} is: {exc}") from exc
    return Reach(account_id=who["account_id"], region=account.region, endpoint=who["sqs_endpoint"])


def discover_registration(
    account: AwsAccount,
    queue_url: str,
    api_kind: str = "",
    api_id: str = "",
    api_stage: str = "",
    attribute: str = "requestId",
    pipeline_pk: int | None = None,
    reach: Reach | None = None,
) -> Discovery:
    """Discover the queue a pipeline of `account` names, refusing a URL of another account or host
    and a queue another pipeline has (`pipeline_pk`: the pipeline being saved again, if any).

    Raises DiscoveryError with a sentence saying what to enter instead.
    """
    url = parse_queue_url(queue_url, account.region)
    reach = reach or reach_of(account)
    if problem := url_problem(url, reach):
        raise DiscoveryError(problem)
    found = discover(account.target(), url.url, api_kind, api_id, api_stage, attribute)
    arn = found.fields["queue_arn"]
    if problem := arn_problem(arn, url, reach):
        raise DiscoveryError(problem)
    other = registered_as(arn, pipeline_pk)
    if other is not None:
        raise DiscoveryError(
            f"This queue ({arn}) is already registered as pipeline {other.name!r} on {other.account}: "
            "open that pipeline instead of registering the queue again."
        )
    return found
