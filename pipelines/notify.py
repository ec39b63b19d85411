"""Notifications: incident events sent to the channels an operator configured (email, JSON webhook, Slack).

The alert evaluator calls `enqueue(incident, event)` inside its transaction: it records one pending
Delivery per channel that routes the incident, with the message rendered right then (so it says what
was true when the incident opened, escalated or resolved), and asks a worker to send it once the
transaction commits. `deliver` claims a delivery with compare-and-set, so two workers never send it
twice, makes one attempt and records it. Failures are retried with exponential backoff by the beat
sweep (`deliver_due`) until ALERT_DELIVERY_ATTEMPTS. Sending never raises: a dead channel records
its error, and the other channels and the evaluation carry on.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from . import models
from .models import (
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Incident,
    NotificationChannel,
    NotifyEvent,
    Severity,
)
from .trends import human_seconds

log = logging.getLogger(__name__)

#: The JSON webhook's schema version (the README documents the schema); bumped on incompatible change.
SCHEMA_VERSION = 1
#: A delivery in "sending" whose worker died becomes due again after this (next_attempt_at is the lease).
LEASE = timedelta(minutes=5)
MAX_BACKOFF_MINUTES = 60
#: The beat sweep starts no new send after this many seconds, well inside its 60 s slot.
SWEEP_SECONDS = 45
#: Mail servers are slower than webhooks (TLS, authentication): this is their timeout unless EMAIL_TIMEOUT says.
EMAIL_TIMEOUT = 20
RESOLVED_COLOUR = "#12b76a"
TEST_COLOUR = "#98a2b3"
DUE = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


def now() -> datetime:
    return models.now()  # looked up at call time, so tests can patch pipelines.models.now


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt. `final`: retrying cannot help (the channel is disabled or misconfigured)."""

    ok: bool
    status: int | None = None
    error: str = ""
    final: bool = False


# --- channel targets ---------------------------------------------------------------------------------


def parse_addresses(target: str) -> list[str]:
    """Email addresses from a channel target: one per line, or separated by commas, semicolons or spaces."""
    return [a for a in re.split(r"[\s,;]+", target or "") if a]


def target_errors(kind: str, target: str) -> list[str]:
    """What is wrong with a channel's target, as sentences for the operator; empty when it is usable."""
    target = (target or "").strip()
    if kind == ChannelKind.EMAIL:
        addresses = parse_addresses(target)
        if not addresses:
            return ["Enter at least one email address."]
        bad = [a for a in addresses if not _is_email(a)]
        return [f"Not a valid email address: {', '.join(bad)}."] if bad else []
    if kind in (ChannelKind.WEBHOOK, ChannelKind.SLACK):
        parts = urlsplit(target) if not re.search(r"\s", target) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            example = "https://hooks.slack.com/services/…" if kind == ChannelKind.SLACK else "https://example.com/hook"
            return [f"Enter the webhook's full http:// or https:// URL, for example {example}."]
        return []
    return [f"Unknown channel kind {kind!r}."]


def _is_email(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


# --- rendering ---------------------------------------------------------------------------------------


def pipeline_url(pipeline_id: int) -> str:
    try:
        return settings.SITE_URL + reverse("admin:pipelines_pipeline_dashboard", args=[pipeline_id])
    except NoReverseMatch:
        return settings.SITE_URL + "/admin/"


def incident_url(incident: Incident) -> str:
    """The incident's admin page; its pipeline's dashboard where incidents have no admin page."""
    try:
        return settings.SITE_URL + reverse("admin:pipelines_incident_change", args=[incident.pk])
    except NoReverseMatch:
        return pipeline_url(incident.pipeline_id)


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _worst(*severities: str) -> str:
    return min((Severity(s) for s in severities if s), key=lambda s: s.rank).value


def headline(incident: Incident | None, event: str, channel_name: str = "") -> str:
    """One line saying what happened, e.g. "CRITICAL orders: backlog 5,000 above 1,000"."""
    if incident is None:
        return f"test notification from opsboard to the channel “{channel_name}”"
    name = incident.pipeline.name
    rule = incident.get_rule_display()
    severity = incident.get_severity_display().upper()
    what = f"{name}: {_one_line(incident.summary) or rule}"
    if event == NotifyEvent.RESOLVED:
        return f"resolved {name}: {rule} after {human_seconds(incident.duration.total_seconds())}"
    if event == NotifyEvent.ESCALATED:
        return f"escalated to {severity} {what}"
    if event == NotifyEvent.REMINDER:
        return (
            f"still {incident.get_status_display().lower()} after "
            f"{human_seconds(incident.duration.total_seconds())}: {severity} {what}"
        )
    return f"{severity} {what}"


def document(incident: Incident | None, event: str, channel_name: str = "") -> dict:
    """The generic JSON webhook body (schema in the README); the email and Slack messages derive from it.
    `delivery` and `sent_at` are added when it is sent."""
    doc = {
        "version": SCHEMA_VERSION,
        "event": str(event),
        "text": headline(incident, event, channel_name),
        "incident": None,
        "pipeline": None,
    }
    if incident is None:
        return doc
    p = incident.pipeline
    doc["incident"] = {
        "id": incident.pk,
        "rule": incident.rule,
        "rule_label": incident.get_rule_display(),
        "severity": incident.severity,
        "peak_severity": incident.peak_severity or incident.severity,
        "status": incident.status,
        "summary": incident.summary,
        "value": incident.value,
        "threshold": incident.threshold,
        "opened_at": _iso(incident.opened_at),
        "last_seen_at": _iso(incident.last_seen_at),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "resolved_at": _iso(incident.resolved_at),
        "resolved_by": incident.resolved_by,
        "url": incident_url(incident),
    }
    doc["pipeline"] = {
        "id": p.pk,
        "name": p.name,
        "account": p.account.name,
        "queue_url": p.queue_url,
        "dashboard_url": pipeline_url(p.pk),
    }
    return doc


def _when(iso: str | None) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC") if iso else "–"


def email_message(doc: dict) -> dict:
    """{subject, body}: a plain-text email with the links an operator follows."""
    subject = ("[opsboard] " + doc["text"])[:200]
    inc, p = doc["incident"], doc["pipeline"]
    if inc is None:
        lines = [
            doc["text"][:1].upper() + doc["text"][1:] + ".",
            "",
            "This channel works: opsboard's incident notifications will arrive like this one.",
        ]
    else:
        status = inc["status"] + (f" (acknowledged by {inc['acknowledged_by']})" if inc["acknowledged_by"] else "")
        lines = [
            doc["text"],
            "",
            f"Pipeline:  {p['name']} (account {p['account']})",
            f"Rule:      {inc['rule_label']}",
            f"Summary:   {inc['summary']}",
            f"Severity:  {inc['severity']}",
            f"Value:     {_num(inc['value'])} (threshold {_num(inc['threshold'])})",
            f"Status:    {status}",
            f"Opened:    {_when(inc['opened_at'])}",
        ]
        if inc["resolved_at"]:
            lines.append(f"Resolved:  {_when(inc['resolved_at'])}")
        lines += ["", f"Incident:  {inc['url']}", f"Dashboard: {p['dashboard_url']}", f"Queue:     {p['queue_url']}"]
    lines += ["", "-- ", f"opsboard · {settings.SITE_URL}"]
    return {"subject": subject, "body": "\n".join(lines) + "\n"}


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup (links, mentions): escape them in text from incidents.
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(doc: dict) -> dict:
    """A Slack incoming-webhook body (also read by Mattermost, Rocket.Chat and others): a linked headline
    and an attachment coloured by severity, green when resolved."""
    inc, p = doc["incident"], doc["pipeline"]
    if inc is None:
        return {
            "text": _slack_escape(doc["text"][:1].upper() + doc["text"][1:]),
            "attachments": [
                {
                    "color": TEST_COLOUR,
                    "fallback": doc["text"],
                    "text": "This channel works: opsboard's incident notifications will arrive here.",
                }
            ],
        }
    colour = RESOLVED_COLOUR if doc["event"] == NotifyEvent.RESOLVED else Severity(inc["severity"]).colour
    fields = [
        {"title": "Pipeline", "value": f"<{p['dashboard_url']}|{_slack_escape(p['name'])}>", "short": True},
        {"title": "Severity", "value": inc["severity"], "short": True},
        {"title": "Value", "value": f"{_num(inc['value'])} (threshold {_num(inc['threshold'])})", "short": True},
        {"title": "Status", "value": inc["status"], "short": True},
    ]
    return {
        "text": f"<{inc['url']}|{_slack_escape(doc['text'])}>",
        "attachments": [
            {
                "color": colour,
                "fallback": doc["text"],
                "title": inc["rule_label"],
                "title_link": inc["url"],
                "text": _slack_escape(inc["summary"]),
                "fields": fields,
                "mrkdwn_in": ["text", "fields"],
                "footer": f"opsboard · {p['account']}",
                "ts": int(datetime.fromisoformat(inc["opened_at"]).timestamp()),
            }
        ],
    }


def render(kind: str, incident: Incident | None, event: str, channel_name: str = "") -> dict:
    """What a delivery stores and sends: the JSON document, a Slack body, or an email's subject and body."""
    doc = document(incident, event, channel_name)
    if kind == ChannelKind.EMAIL:
        return email_message(doc)
    if kind == ChannelKind.SLACK:
        return slack_message(doc)
    return doc


# --- queueing ----------------------------------------------------------------------------------------


def routed_channels(incident: Incident, event: str):
    """Enabled channels that take this incident: its pipeline (or all), its severity, resolves if asked.

    For a resolve the incident's worst severity counts, so a channel told about a critical incident
    hears that it ended even if it eased to a warning first."""
    severity = _worst(incident.severity, incident.peak_severity) if event == NotifyEvent.RESOLVED else incident.severity
    rank = Severity(severity).rank
    channels = NotificationChannel.objects.filter(
        Q(pipelines__isnull=True) | Q(pipelines=incident.pipeline_id),
        enabled=True,
        min_severity__in=[s.value for s in Severity if s.rank >= rank],
    )
    if event == NotifyEvent.RESOLVED:
        channels = channels.filter(send_resolved=True)
    return channels.distinct()


def enqueue(incident: Incident, event: str) -> list[Delivery]:
    """Record a pending delivery per routed channel and have a worker send them after the commit.

    One query when no channel routes the incident. Never raises for a broker that is down: the
    deliveries stay pending and the beat sweep sends them."""
    event = NotifyEvent(event)
    channels = list(routed_channels(incident, event))
    if not channels:
        return []
    at, rendered, deliveries = now(), {}, []
    for channel in channels:
        if channel.kind not in rendered:
            rendered[channel.kind] = render(channel.kind, incident, event)
        deliveries.append(
            Delivery.objects.create(
                incident=incident,
                channel=channel,
                event=event,
                payload=rendered[channel.kind],
                created_at=at,
                next_attempt_at=at,
            )
        )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: dispatch(ids), robust=True)
    return deliveries


def dispatch(ids: Iterable[int]) -> None:
    """Hand deliveries to workers. A broker that refuses is logged; the sweep picks the rows up."""
    from . import tasks

    ids = list(ids)
    try:
        for pk in ids:
            tasks.deliver_notification.delay(pk)
    except Exception:  # any broker failure: the rows are pending and due, so nothing is lost
        log.warning("could not queue notification deliveries %s; the periodic sweep will send them", ids, exc_info=True)


def retry(deliveries) -> int:
    """Make pending or failed deliveries due now (each gets one more attempt) and queue them."""
    ids = list(
        deliveries.filter(status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED)).values_list("pk", flat=True)
    )
    count = Delivery.objects.filter(pk__in=ids, status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED)).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now()
    )
    if ids:
        transaction.on_commit(lambda: dispatch(ids), robust=True)
    return count


# --- delivering --------------------------------------------------------------------------------------


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: 1, 2, 4, 8, 16, 32, then 60 minutes."""
    return timedelta(minutes=min(2 ** (attempts - 1), MAX_BACKOFF_MINUTES))


def max_attempts(delivery: Delivery) -> int:
    # A test notification reports its one result to the operator who asked; it is not retried later.
    return 1 if delivery.event == NotifyEvent.TEST else settings.ALERT_DELIVERY_ATTEMPTS


def _claim(delivery_id: int) -> datetime | None:
    """Pending-and-due (or sending with an expired lease) → sending, in one compare-and-set update.
    Returns the lease, which also identifies this claim when the result is recorded."""
    at = now()
    lease = at + LEASE
    claimed = Delivery.objects.filter(pk=delivery_id, status__in=DUE, next_attempt_at__lte=at).update(
        status=DeliveryStatus.SENDING, next_attempt_at=lease
    )
    return lease if claimed == 1 else None


def deliver(delivery_id: int) -> Delivery | None:
    """Make one attempt at a due delivery and record it. None when it was not due or another worker has it."""
    lease = _claim(delivery_id)
    if lease is None:
        return None
    delivery = Delivery.objects.select_related("channel").filter(pk=delivery_id).first()
    if delivery is None:  # its channel or incident was deleted meanwhile
        return None
    at, started = now(), time.monotonic()
    result = send(delivery)
    attempt = {
        "at": at.isoformat(),
        "ok": result.ok,
        "status": result.status,
        "error": result.error,
        "ms": round((time.monotonic() - started) * 1000),
    }
    return _record(delivery, lease, attempt, result.final)


def _record(delivery: Delivery, lease: datetime, attempt: dict, final: bool) -> Delivery:
    d = delivery
    d.attempts = [*d.attempts, attempt]
    d.attempt_count += 1
    at = now()
    if attempt["ok"]:
        d.status, d.sent_at, d.last_error, d.next_attempt_at = DeliveryStatus.SENT, at, "", at
    elif final or d.attempt_count >= max_attempts(d):
        d.status, d.last_error, d.next_attempt_at = DeliveryStatus.FAILED, attempt["error"], at
    else:
        d.status, d.last_error = DeliveryStatus.PENDING, attempt["error"]
        d.next_attempt_at = at + backoff(d.attempt_count)
    fields = {
        "status": d.status,
        "sent_at": d.sent_at,
        "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at,
        "attempts": d.attempts,
        "attempt_count": d.attempt_count,
    }
    # Only the holder of this claim records it: a send that outlived its lease was claimed again.
    if Delivery.objects.filter(pk=d.pk, status=DeliveryStatus.SENDING, next_attempt_at=lease).update(**fields) != 1:
        log.warning("delivery %s was claimed again while it was being sent; this attempt is not recorded", d.pk)
    if not attempt["ok"]:
        log.info("delivery %s to %s failed (attempt %d): %s", d.pk, d.channel, d.attempt_count, attempt["error"])
    return d


def deliver_due(limit: int = 100, budget: float = SWEEP_SECONDS) -> int:
    """Send what is due (new deliveries whose task was lost, retries, expired claims). Returns attempts made.

    A channel that cannot be reached is skipped for the rest of the sweep, so one dead endpoint
    does not spend the sweep's time on its timeouts while other channels wait."""
    started = time.monotonic()
    due = Delivery.objects.filter(status__in=DUE, next_attempt_at__lte=now()).order_by("next_attempt_at", "pk")
    unreachable, attempted = set(), 0
    for pk, channel_id in due.values_list("pk", "channel_id")[:limit]:
        if time.monotonic() - started > budget:
            break
        if channel_id in unreachable:
            continue
        d = deliver(pk)
        if d is None:
            continue
        attempted += 1
        if d.status == DeliveryStatus.PENDING and d.attempts[-1]["status"] is None:  # no answer at all
            unreachable.add(channel_id)
    return attempted


def send_test(channel: NotificationChannel) -> Delivery:
    """Send a test notification to one channel now (even a disabled one) and return the recorded result."""
    delivery = Delivery.objects.create(
        channel=channel, event=NotifyEvent.TEST, payload=render(channel.kind, None, NotifyEvent.TEST, channel.name)
    )
    return deliver(delivery.pk) or Delivery.objects.get(pk=delivery.pk)


# --- senders -----------------------------------------------------------------------------------------


def _short(text: str, limit: int = 300) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def send(delivery: Delivery) -> Result:
    """One attempt at a delivery. Never raises: every failure becomes a Result with a readable error."""
    channel = delivery.channel
    if not channel.enabled and delivery.event != NotifyEvent.TEST:
        return Result(False, error="The channel is disabled; nothing was sent.", final=True)
    problems = target_errors(channel.kind, channel.target)
    if problems:
        return Result(False, error=" ".join(problems), final=True)
    try:
        if channel.kind == ChannelKind.EMAIL:
            return send_email(parse_addresses(channel.target), delivery.payload)
        body = delivery.payload
        if channel.kind == ChannelKind.WEBHOOK:
            body = {**body, "delivery": delivery.pk, "sent_at": now().isoformat()}
        return post_json(channel.target.strip(), body)
    except Exception as exc:  # a bug in a sender must still end as a recorded attempt, not a stuck row
        log.exception("sending delivery %s failed unexpectedly", delivery.pk)
        return Result(False, error=_short(f"{type(exc).__name__}: {exc}"))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without the body: report the redirect instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


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
    except urllib.error.HTTPError as exc:
        return Result(False, status=exc.code, error=_http_error(exc))
    except urllib.error.URLError as exc:
        return Result(False, error=_network_error(exc.reason, host, timeout))
    except (OSError, http.client.HTTPException) as exc:  # timeouts and resets while reading the answer
        return Result(False, error=_network_error(exc, host, timeout))


def _http_error(exc: urllib.error.HTTPError) -> str:
    if 300 <= exc.code < 400:
        return f"HTTP {exc.code}: the webhook redirects to {exc.headers.get('Location', '?')}; use that URL instead."
    try:
        text = exc.read(2048).decode("utf-8", "replace")
    except Exception:  # the body is only there to help; a broken one must not hide the status
        text = ""
    text = _short(text, 200)
    return f"HTTP {exc.code} {exc.reason}" + (f": {text}" if text else "")


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
