"""Opsgenie, through the Alert API with an API integration's key (`Authorization: GenieKey <key>`).

An incident is one alert whose alias is "opsboard-incident-<id>": opened and escalated → create
(`POST /v2/alerts`, which Opsgenie de-duplicates by alias), acknowledged in opsboard →
`POST /v2/alerts/<alias>/acknowledge?identifierType=alias`, resolved → `.../close?identifierType=alias`.
Requests are accepted asynchronously (202 and a request id). A 4xx other than 429 is final (a bad key
or a rejected request, shown with Opsgenie's short `message`); 429 and 5xx are retried. The target is
the key, or "eu:<key>" for an account on the EU instance. The test creates a P5 alert and closes it.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

from django.conf import settings

from pipelines import outbound
from pipelines.alerting.channels.base import PAGING_EVENTS, Channel, Result, encode, final_on, json_message, post
from pipelines.alerting.channels.pagerduty import dedup_key
from pipelines.alerting.messages import trace_url
from pipelines.formatting import figure
from pipelines.models import ChannelKind, Delivery, Incident, NotificationChannel, NotifyEvent

#: The EU instance's API (an account lives in one region; its keys work only there).
EU_API_URL = "https://api.eu.opsgenie.com"
EU_PREFIX = "eu:"
KEY = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MESSAGE_MAX = 130
DESCRIPTION_MAX = 15000
#: opsboard's severities on Opsgenie's priorities (P1 highest).
PRIORITIES = {"critical": "P1", "warning": "P3", "info": "P5"}
ACTIONS = {NotifyEvent.ACKNOWLEDGED: "acknowledge", NotifyEvent.RESOLVED: "close"}  # anything else: create
FINAL = {400, 401, 403, 404, 409, 413, 422}


def split_target(target: str) -> tuple[str, str]:
    """(API base URL, key) from a target: "KEY" for the US instance (OPSGENIE_API_URL), "eu:KEY" for the EU one."""
    target = (target or "").strip()
    if target.lower().startswith(EU_PREFIX):
        return EU_API_URL, target[len(EU_PREFIX) :].strip()
    return settings.OPSGENIE_API_URL.rstrip("/"), target


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert(doc: dict, incident: Incident | None) -> dict:
    """{action, alias, body}: what to ask of the Alert API (the key is added when sent)."""
    note = {"source": "opsboard"}
    if incident is None:
        return {
            "action": "create",
            "alias": f"opsboard-test-{uuid.uuid4().hex}",
            "body": {**note, "message": _cut(doc["text"], MESSAGE_MAX), "priority": "P5", "tags": ["opsboard"]},
        }
    inc, p = doc["incident"], doc["pipeline"]
    action, alias = ACTIONS.get(doc["event"], "create"), dedup_key(inc["id"])
    if action != "create":
        who = inc["acknowledged_by"] if action == "acknowledge" else inc["resolved_by"]
        return {"action": action, "alias": alias, "body": {**note, "user": who or "opsboard", "note": doc["text"]}}
    description = "\n".join(
        [
            inc["summary"],
            f"Value: {figure(inc['value'])} (threshold {figure(inc['threshold'])})",
            f"Pipeline: {p['dashboard_url']}",
            f"Incident: {inc['url']}",
            f"Trace: {trace_url(p['id'])}",
        ]
    )
    body = {
        **note,
        "message": _cut(f"{inc['severity'].upper()} {p['name']}: {inc['summary']}", MESSAGE_MAX),
        "alias": alias,
        "description": _cut(description, DESCRIPTION_MAX),
        "priority": PRIORITIES.get(inc["severity"], "P3"),
        "entity": p["name"],
        "tags": ["opsboard", f"severity:{inc['severity']}", f"rule:{inc['rule']}"],
        "details": {
            "pipeline": p["name"],
            "account": p["account"],
            "rule": inc["rule_label"],
            "severity": inc["severity"],
            "value": figure(inc["value"]),
            "threshold": figure(inc["threshold"]),
            "queue_url": p["queue_url"],
            "dashboard_url": p["dashboard_url"],
            "incident_url": inc["url"],
        },
    }
    return {"action": "create", "alias": alias, "body": body}


class OpsgenieChannel(Channel):
    kind = ChannelKind.OPSGENIE
    events = PAGING_EVENTS
    always_resolves = True

    def target_errors(self, target: str) -> list[str]:
        _, key = split_target(target)
        if KEY.match(key):
            return []
        return [
            "Enter the Opsgenie API integration's key (like 01234567-89ab-cdef-0123-456789abcdef), "
            "prefixed eu: for an account on the EU instance."
        ]

    def address_errors(self, target: str) -> list[str]:
        return outbound.url_errors(split_target(target)[0])

    def render(self, doc: dict, incident: Incident | None) -> dict:
        return alert(doc, incident)

    def _call(self, delivery: Delivery, action: str, alias: str, body: dict) -> Result:
        base, key = split_target(delivery.channel.target)
        url = f"{base}/v2/alerts"
        if action != "create":
            url += f"/{quote(alias, safe='')}/{action}?identifierType=alias"
        result = post(url, encode(body), {"Authorization": f"GenieKey {key}"}, detail=json_message)
        return final_on(result, FINAL)

    def send(self, delivery: Delivery) -> Result:
        p = delivery.payload
        return self._call(delivery, p["action"], p["alias"], p["body"])

    def test(self, delivery: Delivery) -> Result:
        p = delivery.payload
        created = self._call(delivery, "create", p["alias"], {**p["body"], "alias": p["alias"]})
        if not created.ok:
            return created
        closed = self._call(delivery, "close", p["alias"], {"source": "opsboard", "user": "opsboard"})
        return created if closed.ok else closed

    def mask(self, target: str) -> str:
        base, key = split_target(target)
        return (EU_PREFIX if base == EU_API_URL else "") + self.mask_secret(key)

    def short(self, target: str) -> str:
        return self.mask(target)

    def secrets(self, channel: NotificationChannel) -> list[str]:
        key = split_target(channel.target)[1]  # the key alone, so "eu:KEY" and "KEY" are both masked
        return [key] if key else []
