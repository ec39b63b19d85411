"""Sessions, clients, call metering and errors: every boto3 object opsboard uses is made here.

Every HTTP attempt made through these clients is counted on the active `CallMeter`, which is how a
sync cycle knows exactly which AWS calls it paid for (retries included).

A client whose endpoint someone configured (an account's endpoint URL, or boto3's AWS_ENDPOINT_URL)
connects through the outbound address policy (`pipelines.outbound`): its urllib3 connections check
the peer after connect, before TLS and before the signed request is written, and a refusal ends the
call as an AwsError at once. AWS's own endpoints are exempt: in a VPC they may rightly resolve to
private interface-endpoint addresses.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.awsrequest import AWSHTTPConnection, AWSHTTPConnectionPool, AWSHTTPSConnection, AWSHTTPSConnectionPool
from botocore.config import Config
from botocore.configprovider import ConfiguredEndpointProvider
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError
from botocore.utils import get_environ_proxies
from django.conf import settings

from pipelines import outbound

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


class OutboundRefused(BotoCoreError):
    """A connection to a configured endpoint that the outbound address policy refused."""

    fmt = "{message}"


#: The code an AwsError carries when the outbound address policy refused the endpoint's address.
REFUSED = "OutboundRefused"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail(err: dict, code: str, status: int | None) -> str:
    """An AWS error's message, short. An answer that is no AWS error document (botocore then makes the
    HTTP status its code and the body its message; an HTML page) shows only its status: what a custom
    endpoint answered is not for the operator's screen, and may be another service's data."""
    message = str(err.get("Message") or "")
    if not code or code.isdigit() or message.lstrip().startswith("<"):
        return f"HTTP {status} from the endpoint"
    return _one_line(message.strip().splitlines()[0] if message.strip() else code)


def translate(exc: Exception, doing: str) -> AwsError:
    """Turn a botocore exception into an AwsError whose message says what went wrong."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, OutboundRefused):
        return AwsError(f"{doing}: {exc}", REFUSED)
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = _detail(err, code, status)
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
    if isinstance(exc, ResponseParserError):  # its text quotes the answer's body
        return AwsError(f"{doing}: the endpoint's answer is not an AWS response.", "UnparsableResponse", transient=True)
    if isinstance(exc, BotoCoreError):
        return AwsError(f"{doing}: {_one_line(exc, 300)}.", type(exc).__name__, transient=True)
    return AwsError(f"{doing}: {type(exc).__name__}: {_one_line(exc, 300)}.", type(exc).__name__)


@contextmanager
def calling(doing: str) -> Iterator[None]:
    """Translate anything raised inside into an AwsError that says what we were doing."""
    try:
        yield
    except (ClientError, BotoCoreError, ResponseParserError, AwsError) as exc:
        raise translate(exc, doing) from exc


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


current_meter: contextvars.ContextVar[CallMeter | None] = contextvars.ContextVar("opsboard_aws_meter", default=None)


@contextmanager
def metering(meter: CallMeter | None = None) -> Iterator[CallMeter]:
    """Count the AWS calls made in this context (and in threads started with its context copied)."""
    meter = meter or CallMeter()
    token = current_meter.set(meter)
    try:
        yield meter
    finally:
        current_meter.reset(token)


def _count_attempt(event_name: str = "", **_: Any) -> None:
    meter = current_meter.get()
    if meter is not None:
        # event_name is "before-send.<service>.<Operation>"
        parts = event_name.split(".")
        meter.add_call(f"{parts[1]}:{parts[2]}" if len(parts) >= 3 else event_name)


_clients: dict[tuple[Target, str], Any] = {}
_clients_lock = threading.Lock()


def _client_config() -> Config:
    return Config(
        retries={"mode": settings.AWS_RETRY_MODE, "total_max_attempts": settings.AWS_MAX_ATTEMPTS},
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
        max_pool_connections=max(10, settings.COLLECT_CONCURRENCY),
    )


class _PeerChecked:
    """botocore's urllib3 connection with the outbound address policy applied to the connected socket:
    after connect, before TLS, before a byte of the signed request (and its credentials) is written."""

    def _new_conn(self):
        sock = super()._new_conn()
        outbound.check_socket(sock)
        return sock


class _HTTPConnection(_PeerChecked, AWSHTTPConnection):
    pass


class _HTTPSConnection(_PeerChecked, AWSHTTPSConnection):
    pass


class _HTTPConnectionPool(AWSHTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(AWSHTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _refusal_is_final(caught_exception: Exception | None = None, **_: Any) -> None:
    """needs-retry handler: a connection the policy refused is a decision, not a network fault to retry.

    botocore wraps what its http session raises in HTTPClientError, which its retry modes retry;
    raising here ends the call at once, with the policy's sentence.
    """
    refused = caught_exception.kwargs.get("error") if isinstance(caught_exception, HTTPClientError) else None
    if isinstance(refused, outbound.Refused):
        raise OutboundRefused(message=str(refused)) from caught_exception


def _police(c: Any) -> None:
    """Make every connection of client `c` pass the outbound address policy.

    botocore has no public hook for its connection classes: its http session keeps the urllib3 pool
    classes in one dict that its pool managers (proxy ones included) share, updated here in place
    before any connection exists. Should a botocore release move it, custom endpoints are refused
    rather than reached unchecked.
    """
    http_session = getattr(getattr(c, "_endpoint", None), "http_session", None)
    pools = getattr(http_session, "_pool_classes_by_scheme", None)
    if not isinstance(pools, dict) or set(pools) != {"http", "https"}:
        raise AwsError(
            "opsboard cannot apply its outbound address policy to this botocore version's connections, "
            "so it refuses configured endpoints; use a botocore version opsboard supports.",
            "OutboundUnchecked",
        )
    if get_environ_proxies(c.meta.endpoint_url):
        host = urlsplit(c.meta.endpoint_url).hostname
        raise AwsError(
            f"The environment sends requests for {host} through a proxy (HTTP_PROXY/HTTPS_PROXY), where the "
            f"outbound address policy cannot see the address reached; add {host} to NO_PROXY to connect directly.",
            "OutboundProxied",
        )
    pools.update(http=_HTTPConnectionPool, https=_HTTPSConnectionPool)
    c.meta.events.register_first("needs-retry", _refusal_is_final)


def _configured_endpoint(core: botocore.session.Session, service: str) -> bool:
    """Whether boto3 sends `service`'s calls to an endpoint from its configuration (AWS_ENDPOINT_URL,
    AWS_ENDPOINT_URL_<SERVICE>, endpoint_url in the config file), found the way botocore finds it."""
    found = ConfiguredEndpointProvider(
        full_config=core.full_config, scoped_config=core.get_scoped_config(), client_name=service
    ).provide()
    return bool(found)


def _new_client(core: botocore.session.Session, target: Target, service: str) -> Any:
    """A boto3 client on `core`, policed when its endpoint is a configured one rather than AWS's own."""
    session = boto3.session.Session(botocore_session=core, region_name=target.region)
    c = session.client(service, endpoint_url=target.endpoint_url or None, config=_client_config())
    if target.endpoint_url or _configured_endpoint(core, service):
        _police(c)
    return c


#: After a failed AssumeRole, calls for that role fail with the same sentence for this long before
#: STS is asked again, so a denied account costs one STS call per interval, not one per queue.
ASSUME_RETRY_SECONDS = 30.0
#: Assumed-role credentials per target, shared by every client of the process for that target.
_credentials: dict[Target, DeferredRefreshableCredentials] = {}


def _assumed_credentials(target: Target) -> DeferredRefreshableCredentials:
    """Credentials for the target's role: assumed once, on first use, and again only shortly before they
    expire (botocore refreshes them 15 minutes before, and must 10 minutes before), whichever client
    and thread of this process uses them. Called with `_clients_lock` held."""
    creds = _credentials.get(target)
    if creds is not None:
        return creds
    sts = _new_client(botocore.session.get_session(), target, "sts")
    sts.meta.events.register("before-send", _count_attempt)
    failed: dict[str, Any] = {"error": None, "until": 0.0}

    def assume() -> dict[str, str]:
        error = failed["error"]
        if error is not None and time.monotonic() < failed["until"]:
            raise AwsError(str(error), error.code, transient=error.transient, status=error.status)
        params = {"RoleArn": target.role_arn, "RoleSessionName": "opsboard"}
        if target.external_id:
            params["ExternalId"] = target.external_id
        try:
            with calling(f"assuming role {target.role_arn}"):
                found = sts.assume_role(**params)["Credentials"]
        except AwsError as exc:
            failed.update(error=exc, until=time.monotonic() + ASSUME_RETRY_SECONDS)
            raise
        failed["error"] = None
        return {
            "access_key": found["AccessKeyId"],
            "secret_key": found["SecretAccessKey"],
            "token": found["SessionToken"],
            "expiry_time": found["Expiration"].isoformat(),
        }

    creds = _credentials[target] = DeferredRefreshableCredentials(refresh_using=assume, method="sts-assume-role")
    return creds


def _session(target: Target) -> botocore.session.Session:
    """A botocore session for the target: the process's credentials, or the target's role assumed with them."""
    core = botocore.session.get_session()
    if target.role_arn:
        core._credentials = _assumed_credentials(target)
    return core


def client(target: Target, service: str) -> Any:
    """A cached, thread-safe boto3 client for one service of one target.

    The endpoint is the target's own, else boto3's (which honours AWS_ENDPOINT_URL and the
    AWS_ENDPOINT_URL_<SERVICE> variables), else AWS; the first two pass the outbound address policy.
    """
    key = (target, service)
    c = _clients.get(key)
    if c is None:
        with _clients_lock:
            c = _clients.get(key)
            if c is None:
                c = _new_client(_session(target), target, service)
                c.meta.events.register("before-send", _count_attempt)
                _clients[key] = c
    return c


def reset_clients() -> None:
    """Forget cached clients and assumed-role credentials (tests that restart the emulator use this)."""
    with _clients_lock:
        _clients.clear()
        _credentials.clear()


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
    except (BotoCoreError, ResponseParserError, AwsError) as exc:
        raise translate(exc, doing) from exc
