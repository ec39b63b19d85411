"""PagerDuty, through the Events API v2 (an integration's routing key), and its v3 webhooks back.

Every incident event is one event to PAGERDUTY_EVENTS_URL with `dedup_key` "opsboard-incident-<id>":
opened and escalated → `trigger` (with the payload: summary, source, severity, figures, links),
acknowledged in opsboard → `acknowledge`, resolved → `resolve` (always, whatever "notify on resolve"
says, or PagerDuty's incident would stay open). 202 is success; 400 is a rejected event (final: the
attempt records the status and PagerDuty's short `message`); 429 and 5xx are retried with the usual
backoff. The test notification triggers an info event and resolves it at once.

PagerDuty's v3 webhooks sign their body: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256(secret, raw body)>`,
several comma-separated while a secret is rotated; `verify_webhook` checks one of them matches.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

from django.conf import settings

from pipelines import outbound
from pipelines.alerting.channels.base import PAGING_EVENTS, Channel, Result, encode, final_on, json_message, post
from pipelines.alerting.messages import trace_url
from pipelines.formatting import human_seconds
from pipelines.models import ChannelKind, Delivery, Incident, NotifyEvent

ROUTING_KEY = re.compile(r"^[a-z0-9]{32}$")
DEDUP_PREFIX = "opsboard-incident-"
SUMMARY_MAX = 1024
ACTIONS = {NotifyEvent.ACKNOWLEDGED: "acknowledge", NotifyEvent.RESOLVED: "resolve"}  # anything else: trigger
#: opsboard's severities on PagerDuty's scale (critical, error, warning, info); opsboard has no "error".
SEVERITIES = {"critical": "critical", "warning": "warning", "info": "info"}
#: What a trigger's custom_details carries from the pipeline row (the figures at the time of the event).
FIGURES = ("backlog", "in_flight", "oldest_age", "dlq_depth", "time_to_loss", "drain_rate")


def dedup_key(incident_id: int) -> str:
    return f"{DEDUP_PREFIX}{incident_id}"


def incident_id(key: str) -> int | None:
    """The opsboard incident a dedup (incident) key names, or None for a key opsboard did not make."""
    match = re.fullmatch(rf"{DEDUP_PREFIX}(\d+)", key or "")
    return int(match.group(1)) if match else None


def _summary(doc: dict, incident: Incident) -> str:
    inc, p = doc["incident"], doc["pipeline"]
    text = f"{inc['severity'].upper()} {p['name']}: {inc['rule_label']}: {inc['summary']}"
    pipe = incident.pipeline
    if pipe.time_to_loss_known and pipe.time_to_loss is not None:
        text += f" (time to loss {human_seconds(pipe.time_to_loss)})"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _links(doc: dict) -> list[dict]:
    p, inc = doc["pipeline"], doc["incident"]
    return [
        {"href": p["dashboard_url"], "text": f"Pipeline {p['name']} in opsboard"},
        {"href": trace_url(p["id"]), "text": "Trace a request"},
        {"href": inc["url"], "text": f"Incident #{inc['id']} in opsboard"},
    ]


def event(doc: dict, incident: Incident | None) -> dict:
    """The Events API v2 event, without its routing key (added when sent: the stored payload holds no secret)."""
    base = {"client": "opsboard", "client_url": settings.SITE_URL}
    if incident is None:  # the test: an info event, resolved right after (see PagerDutyChannel.test)
        return {
            **base,
            "event_action": "trigger",
            "dedup_key": f"opsboard-test-{uuid.uuid4().hex}",
            "payload": {"summary": doc["text"][:SUMMARY_MAX], "source": "opsboard", "severity": "info"},
        }
    inc, p = doc["incident"], doc["pipeline"]
    action = ACTIONS.get(doc["event"], "trigger")
    out = {**base, "event_action": action, "dedup_key": dedup_key(inc["id"])}
    if action != "trigger":
        return out
    pipe = incident.pipeline
    figures = {name: getattr(pipe, name) for name in FIGURES}
    out["payload"] = {
        "summary": _summary(doc, incident),
        "source": p["queue_url"] or p["name"],
        "severity": SEVERITIES.get(inc["severity"], "warning"),
        "timestamp": inc["last_seen_at"] or inc["opened_at"],
        "component": p["name"],
        "group": p["account"],
        "class": inc["rule"],
        "custom_details": {
            "rule": inc["rule_label"],
            "summary": inc["summary"],
            "value": inc["value"],
            "threshold": inc["threshold"],
            "peak_severity": inc["peak_severity"],
            "opened_at": inc["opened_at"],
            **figures,
        },
    }
    out["links"] = _links(doc)
    return out


def verify_webhook(secret: str, body: bytes, header: str) -> bool:
    """True when one of the header's v1 signatures is the HMAC-SHA256 of the raw body with `secret`."""
    if not secret or not header:
        return False
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s.strip()) for s in header.split(","))


class PagerDutyChannel(Channel):
    kind = ChannelKind.PAGERDUTY
    events = PAGING_EVENTS
    always_resolves = True

    def target_errors(self, target: str) -> list[str]:
        if ROUTING_KEY.match(target or ""):
            return []
        return [
            "Enter the PagerDuty integration's routing key (Events API v2): 32 characters, lower-case "
            f"letters and digits; this one has {len(target or '')}."
        ]

    def address_errors(self, target: str) -> list[str]:
        return outbound.url_errors(settings.PAGERDUTY_EVENTS_URL)

    def render(self, doc: dict, incident: Incident | None) -> dict:
        return event(doc, incident)

    def _post(self, delivery: Delivery, body: dict) -> Result:
        body = {"routing_key": delivery.channel.target.strip(), **body}
        result = post(settings.PAGERDUTY_EVENTS_URL, encode(body), detail=json_message)
        return final_on(result, {400})  # an invalid event stays invalid; 429 and 5xx are retried

    def send(self, delivery: Delivery) -> Result:
        return self._post(delivery, delivery.payload)

    def test(self, delivery: Delivery) -> Result:
        triggered = self.send(delivery)
        if not triggered.ok:
            return triggered
        resolved = self._post(delivery, {"event_action": "resolve", "dedup_key": delivery.payload["dedup_key"]})
        return triggered if resolved.ok else resolved

    def mask(self, target: str) -> str:
        return self.mask_secret(target)

    def short(self, target: str) -> str:
        return self.mask_secret(target)
