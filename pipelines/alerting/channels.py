"""Notification channels, one class per kind: check a target, render a message, send it.

`KINDS` maps each `ChannelKind` to its class; `target_errors`, `render` and `send` pick the class
by the channel's kind, so adding a kind is adding a class. Sending never raises: every failure
becomes a `Result` with a sentence for the operator. Webhooks connect only through the outbound
address policy (`pipelines.outbound`), and a failure shows the answer's status, never its body.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email

from pipelines import clock, outbound
from pipelines.alerting.messages import document, email_message, one_line, slack_message
from pipelines.models import ChannelKind, Delivery, Incident, NotifyEvent

log = logging.getLogger(__name__)

#: Mail servers are slower than webhooks (TLS, authentication): this is their timeout unless EMAIL_TIMEOUT says.
EMAIL_TIMEOUT = 20


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt. `final`: retrying cannot help (the channel is disabled or misconfigured)."""

    ok: bool
    status: int | None = None
    error: str = ""
    final: bool = False


def parse_addresses(target: str) -> list[str]:
    """Email addresses from a channel target: one per line, or separated by commas, semicolons or spaces."""
    return [a for a in re.split(r"[\s,;]+", target or "") if a]


def _is_email(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def _short(text: str, limit: int = 300) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# The policed handlers replace urllib's own (build_opener drops a default whose subclass it is given).
_opener = urllib.request.build_opener(_NoRedirects, _HTTPHandler, _HTTPSHandler)


def post_json(url: str, body: dict) -> Result:
    """POST `body` as JSON; a 2xx answer is success, anything else a failure saying what happened."""
    timeout = settings.ALERT_WEBHOOK_TIMEOUT
    request = urllib.request.Request(
        url,
        data=json.dumps(body, cls=DjangoJSONEncoder).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "opsboard"},
    )
    host = urlsplit(url).hostname
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return Result(True, status=response.status)
    except outbound.Refused as exc:  # retrying cannot help until the target or the allow-list changes
        return Result(False, error=str(exc), final=True)
    except urllib.error.HTTPError as exc:
        return Result(False, status=exc.code, error=_http_error(exc))
    except urllib.error.URLError as exc:
        return Result(False, error=_network_error(exc.reason, host, timeout))
    except (OSError, http.client.HTTPException) as exc:  # timeouts and resets while reading the answer
        return Result(False, error=_network_error(exc, host, timeout))


def _http_error(exc: urllib.error.HTTPError) -> str:
    """The status and its reason, never the answer's body: whatever answered (perhaps not the webhook
    the operator meant) must not get its content shown in opsboard."""
    if 300 <= exc.code < 400:
        location = _short(exc.headers.get("Location", "?"), 200)
        return f"HTTP {exc.code}: the webhook redirects to {location}; use that URL instead."
    try:
        reason = HTTPStatus(exc.code).phrase
    except ValueError:  # a status code HTTP does not define: its reason, kept short
        reason = _short(str(exc.reason or ""), 40)
    return f"HTTP {exc.code} {reason}".rstrip()


def _network_error(reason, host: str | None, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return f"Connection refused by {host}."
    if isinstance(reason, socket.gaierror):
        return f"Cannot resolve the host name {host}."
    if isinstance(reason, TimeoutError):
        return f"No answer from {host} within {timeout:g} s."
    if isinstance(reason, ssl.SSLError):
        return _short(f"TLS error talking to {host}: {reason}")
    if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected)):
        return f"{host} closed the connection without answering."
    return _short(f"{host}: {reason}")


def send_email(addresses: list[str], payload: dict) -> Result:
    """Send through Django's mail (EMAIL_URL), with a timeout so a silent mail server cannot hold a worker."""
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or EMAIL_TIMEOUT
    try:
        connection = get_connection(fail_silently=False, timeout=timeout)
        sent = EmailMessage(
            payload["subject"], payload["body"], settings.DEFAULT_FROM_EMAIL, addresses, connection=connection
        ).send()
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(f"{a} ({code})" for a, (code, _) in exc.recipients.items())
        return Result(False, error=_short(f"The mail server refused the recipients: {refused}."))
    except smtplib.SMTPResponseException as exc:
        message = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return Result(False, error=_short(f"The mail server answered {exc.smtp_code}: {message}"))
    except (smtplib.SMTPException, OSError) as exc:
        host = getattr(settings, "EMAIL_HOST", "")
        return Result(False, error=_short(f"Could not send mail via {host}: {str(exc) or type(exc).__name__}"))
    return Result(True) if sent else Result(False, error="The mail backend sent nothing.")


# --- the kinds ---------------------------------------------------------------------------------------


class Channel:
    """One kind of channel. Subclasses say how a target is checked, what is sent and how."""

    kind: str = ""

    def target_errors(self, target: str) -> list[str]:
        """What is wrong with a target, as sentences for the operator; empty when it is usable."""
        raise NotImplementedError

    def address_errors(self, target: str) -> list[str]:
        """The outbound address policy's objection to where a usable target leads now; empty when none."""
        return []

    def render(self, doc: dict) -> dict:
        """The payload a delivery stores and sends, from the event's document (`messages.document`)."""
        return doc

    def send(self, delivery: Delivery) -> Result:
        """One attempt at sending the delivery's payload to its channel's target."""
        raise NotImplementedError


class EmailChannel(Channel):
    """Email through Django's mail (EMAIL_URL): one or more addresses."""

    kind = ChannelKind.EMAIL

    def target_errors(self, target: str) -> list[str]:
        addresses = parse_addresses(target)
        if not addresses:
            return ["Enter at least one email address."]
        bad = [a for a in addresses if not _is_email(a)]
        return [f"Not a valid email address: {', '.join(bad)}."] if bad else []

    def render(self, doc: dict) -> dict:
        return email_message(doc)

    def send(self, delivery: Delivery) -> Result:
        return send_email(parse_addresses(delivery.channel.target), delivery.payload)


class WebhookChannel(Channel):
    """A JSON POST of the event's document to any URL (the README documents the schema)."""

    kind = ChannelKind.WEBHOOK
    example = "https://example.com/hook"

    def target_errors(self, target: str) -> list[str]:
        target = (target or "").strip()
        parts = urlsplit(target) if not re.search(r"\s", target) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            return [f"Enter the webhook's full http:// or https:// URL, for example {self.example}."]
        return []

    def address_errors(self, target: str) -> list[str]:
        return outbound.url_errors(target)

    def send(self, delivery: Delivery) -> Result:
        body = {**delivery.payload, "delivery": delivery.pk, "sent_at": clock.now().isoformat()}
        return post_json(delivery.channel.target.strip(), body)


class SlackChannel(WebhookChannel):
    """A Slack incoming webhook (also read by Mattermost, Rocket.Chat and other Slack-compatible receivers)."""

    kind = ChannelKind.SLACK
    example = "https://hooks.slack.com/services/…"

    def render(self, doc: dict) -> dict:
        return slack_message(doc)

    def send(self, delivery: Delivery) -> Result:
        return post_json(delivery.channel.target.strip(), delivery.payload)


KINDS: dict[str, Channel] = {c.kind: c for c in (EmailChannel(), WebhookChannel(), SlackChannel())}


def target_errors(kind: str, target: str) -> list[str]:
    """What is wrong with a channel's target, as sentences for the operator; empty when it is usable."""
    if kind not in KINDS:
        return [f"Unknown channel kind {kind!r}."]
    return KINDS[kind].target_errors((target or "").strip())


def address_errors(kind: str, target: str) -> list[str]:
    """Where a usable target's host resolves now, judged by the outbound address policy: the form's early,
    clear error. Sending checks the address it actually connects to, and that is the check that counts."""
    if kind not in KINDS:
        return []
    return KINDS[kind].address_errors((target or "").strip())


def render(kind: str, incident: Incident | None, event: str, channel_name: str = "") -> dict:
    """What a delivery stores and sends: the JSON document, a Slack body, or an email's subject and body."""
    return KINDS[kind].render(document(incident, event, channel_name))


def send(delivery: Delivery) -> Result:
    """One attempt at a delivery. Never raises: every failure becomes a Result with a readable error."""
    channel = delivery.channel
    if not channel.enabled and delivery.event != NotifyEvent.TEST:
        return Result(False, error="The channel is disabled; nothing was sent.", final=True)
    problems = target_errors(channel.kind, channel.target)
    if problems:
        return Result(False, error=" ".join(problems), final=True)
    try:
        return KINDS[channel.kind].send(delivery)
    except Exception as exc:  # a bug in a sender must still end as a recorded attempt, not a stuck row
        log.exception("sending delivery %s failed unexpectedly", delivery.pk)
        return Result(False, error=_short(f"{type(exc).__name__}: {exc}"))
