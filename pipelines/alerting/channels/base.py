"""What every kind of channel shares: the `Channel` interface, the `Result` of an attempt, masking of
secrets, and HTTP posting through the outbound address policy.

Every request a channel makes goes through `post`, whose connections are opened by
`pipelines.outbound` (the peer is checked after connect, before TLS and before a byte is written), never
follows a redirect, and reports a failure by its status, never by the answer's body (whatever answered,
perhaps not the service the operator meant, must not get its content shown in opsboard). A kind that
talks to a known API may pass `detail` to pick one short documented field out of an error answer.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from pipelines import outbound
from pipelines.alerting.messages import one_line
from pipelines.models import Delivery, Incident, NotificationChannel, NotifyEvent

#: What a channel is told about, unless its kind says otherwise.
DEFAULT_EVENTS = frozenset(
    {NotifyEvent.OPENED, NotifyEvent.ESCALATED, NotifyEvent.REMINDER, NotifyEvent.RESOLVED, NotifyEvent.TEST}
)
#: Paging services keep their own reminders (escalation policies) and want acknowledgements instead.
PAGING_EVENTS = frozenset(
    {NotifyEvent.OPENED, NotifyEvent.ESCALATED, NotifyEvent.ACKNOWLEDGED, NotifyEvent.RESOLVED, NotifyEvent.TEST}
)
#: How much of an error answer is read to find its documented message.
ERROR_BODY_LIMIT = 4096


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt. `final`: retrying cannot help (the channel is disabled or misconfigured)."""

    ok: bool
    status: int | None = None
    error: str = ""
    final: bool = False


def short(text: str, limit: int = 300) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- masking ----------------------------------------------------------------------------------------

#: A path segment plain enough to show: a short lower-case word, never an id or a token.
PLAIN_SEGMENT = re.compile(r"^[a-z][a-z_.-]{0,23}$")


def mask_url(url: str) -> str:
    """A URL with its secrets hidden, for those who may not change it: the scheme, the host and the path's
    first segment when it is a plain word; user-info, the rest of the path, the query and the fragment
    (where webhook tokens live, as in Slack's /services/T…/B…/secret or `?token=…`) become "…"."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed [IPv6] host: nothing of it is shown
        return "…" if url else ""
    if not parts.scheme or not parts.netloc:
        return "…" if url else ""
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    segments = [s for s in parts.path.split("/") if s]
    if segments and PLAIN_SEGMENT.match(segments[0]):
        shown += f"/{segments[0]}"
        segments = segments[1:]
    hidden = segments or parts.query or parts.fragment or "@" in parts.netloc
    return f"{shown}/…" if hidden else shown


def mask_key(key: str) -> str:
    """A key or secret for those who may not change it: its first 4 characters and "…"."""
    key = (key or "").strip()
    return f"{key[:4]}…" if key else ""


def url_host(url: str) -> str:
    """Enough of a URL to recognise it: scheme and host (never the user-info, a credential)."""
    try:
        parts = urlsplit((url or "").strip())
    except ValueError:  # a malformed [IPv6] host
        return "…"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/…" if host else (url or "")[:40]


# --- the interface ---------------------------------------------------------------------------------


class Channel:
    """One kind of channel. A kind says how its target is checked and masked, what is sent and how.

    `render` runs when an incident event happens (the payload is stored on the delivery and shared by
    every channel of the kind), `send` for each attempt; per-channel secrets (routing keys, signing
    keys) are added by `send`, so a stored payload never holds one."""

    kind: str = ""
    events: frozenset = DEFAULT_EVENTS
    #: Paging services must hear a resolve whatever "notify on resolve" says, or their incident stays open.
    always_resolves = False

    def target_errors(self, target: str) -> list[str]:
        """What is wrong with a target, as sentences for the operator; empty when it is usable."""
        raise NotImplementedError

    def address_errors(self, target: str) -> list[str]:
        """The outbound address policy's objection to where a usable target leads now; empty when none."""
        return []

    def render(self, doc: dict, incident: Incident | None) -> dict:
        """The payload a delivery stores and sends, from the event's document (`messages.document`)."""
        return doc

    def send(self, delivery: Delivery) -> Result:
        """One attempt at sending the delivery's payload to its channel's target."""
        raise NotImplementedError

    def test(self, delivery: Delivery) -> Result:
        """The test notification (its payload was rendered for the TEST event); by default a plain send."""
        return self.send(delivery)

    def mask(self, target: str) -> str:
        """The target as shown to someone who may not change the channel."""
        return mask_url(target)

    def short(self, target: str) -> str:
        """Enough of the target to recognise it in a list (no secret)."""
        return url_host(target)

    def secrets(self, channel: NotificationChannel) -> list[str]:
        """The channel's secret strings, masked wherever an error or a payload repeats them."""
        return [s for s in ((channel.target or "").strip(), channel.signing_secret) if s]

    def mask_secret(self, secret: str) -> str:
        return mask_key(secret)


# --- HTTP ------------------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body: report the redirect instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _PolicedConnect:
    # http.client opens its socket through this hook: the outbound address policy checks the peer
    # after connect, before TLS and before a byte of the request is written (so DNS rebinding loses).
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = outbound.create_connection


class _HTTPConnection(_PolicedConnect, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_PolicedConnect, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req)


# The policed handlers replace urllib's own (build_opener drops a default whose subclass it is given),
# and no proxy is used: through one, the policy would judge the proxy's address, not the target's.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects, _HTTPHandler, _HTTPSHandler)


def proxy_refusal(url: str) -> str:
    """Why `url` is not requested when the environment routes it through a proxy (HTTP_PROXY, HTTPS_PROXY),
    or "" when it goes direct: the policy can only judge the address it connects to."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return ""
    return (
        f"The environment sends {parts.scheme} requests through a proxy ({parts.scheme.upper()}_PROXY), where the "
        f"outbound address policy cannot see the address reached; add {parts.hostname} to NO_PROXY to send directly."
    )


def encode(body: dict) -> bytes:
    return json.dumps(body, cls=DjangoJSONEncoder).encode()


def post(url: str, data: bytes, headers: dict | None = None, detail: Callable[[bytes], str] | None = None) -> Result:
    """POST `data` (JSON) to `url`; a 2xx answer is success, anything else a failure saying what happened.
    `detail` turns an error answer's start into a short documented message to add (a known API's)."""
    timeout = settings.ALERT_WEBHOOK_TIMEOUT
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "opsboard", **(headers or {})},
    )
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return Result(False, error=_network_error(http.client.InvalidURL(), None, timeout), final=True)
    refusal = proxy_refusal(url)
    if refusal:
        return Result(False, error=refusal, final=True)
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return Result(True, status=response.status)
    except outbound.Refused as exc:  # retrying cannot help until the target or the allow-list changes
        return Result(False, error=str(exc), final=True)
    except urllib.error.HTTPError as exc:
        error = _http_error(exc)
        if detail is not None and not 300 <= exc.code < 400:
            extra = _read_detail(exc, detail)
            error = f"{error}: {extra}" if extra else error
        return Result(False, status=exc.code, error=error)
    except urllib.error.URLError as exc:
        return Result(False, error=_network_error(exc.reason, host, timeout))
    except (OSError, http.client.HTTPException) as exc:  # timeouts and resets while reading the answer
        return Result(False, error=_network_error(exc, host, timeout))


def post_json(url: str, body: dict, headers: dict | None = None) -> Result:
    """POST `body` as JSON (see `post`)."""
    return post(url, encode(body), headers)


def _read_detail(exc: urllib.error.HTTPError, detail: Callable[[bytes], str]) -> str:
    try:
        return short(detail(exc.read(ERROR_BODY_LIMIT)), 120)
    except (OSError, http.client.HTTPException, ValueError):
        return ""


def json_message(raw: bytes) -> str:
    """The `message` string of a JSON error answer (PagerDuty's and Opsgenie's documented field), or ""."""
    try:
        body = json.loads(raw)
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def _http_error(exc: urllib.error.HTTPError) -> str:
    """The status and its reason, never the answer's body."""
    if 300 <= exc.code < 400:
        location = short(exc.headers.get("Location", "?"), 200)
        return f"HTTP {exc.code}: the webhook redirects to {location}; use that URL instead."
    try:
        reason = HTTPStatus(exc.code).phrase
    except ValueError:  # a status code HTTP does not define: its reason, kept short
        reason = short(str(exc.reason or ""), 40)
    return f"HTTP {exc.code} {reason}".rstrip()


def _network_error(reason, host: str | None, timeout: float) -> str:
    if isinstance(reason, http.client.InvalidURL):  # its text repeats the URL, secrets and all
        return "The URL cannot be requested as written (a malformed host or port); correct the channel's target."
    if isinstance(reason, ConnectionRefusedError):
        return f"Connection refused by {host}."
    if isinstance(reason, socket.gaierror):
        return f"Cannot resolve the host name {host}."
    if isinstance(reason, TimeoutError):
        return f"No answer from {host} within {timeout:g} s."
    if isinstance(reason, ssl.SSLError):
        return short(f"TLS error talking to {host}: {reason}")
    if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected)):
        return f"{host} closed the connection without answering."
    return short(f"{host}: {reason}")


def final_on(result: Result, statuses) -> Result:
    """`result`, marked final when its status is one retrying cannot fix (a rejected request)."""
    if not result.ok and result.status in statuses:
        return Result(False, status=result.status, error=result.error, final=True)
    return result


def http_url_errors(target: str, example: str, schemes=("http", "https")) -> list[str]:
    """The sentence for a target that is not a full URL of one of `schemes`."""
    target = (target or "").strip()
    words = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(target) if not any(c.isspace() for c in target) else None
        host = parts.hostname if parts is not None else None
        if parts is not None:
            _ = parts.port  # a port that is not a number raises here
    except ValueError:  # a malformed [IPv6] host or port
        parts = host = None
    if parts is None or parts.scheme not in schemes or not host:
        return [f"Enter the webhook's full {words} URL, for example {example}."]
    if parts.username is not None or parts.password is not None:
        return [
            "Leave the user name and password out of the URL: opsboard does not send them (put a token in the path or query)."
        ]
    return []
