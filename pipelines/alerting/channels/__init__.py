"""Notification channels, one module per kind behind one interface (`base.Channel`): check a target
and where it leads, render a message, send it, send a test, and mask the kind's secrets.

`KINDS` maps each `ChannelKind` to its channel, and the functions here pick the channel by kind, so
adding a kind is one module and one line in `KINDS`. Sending never raises: every failure becomes a
`Result` with a sentence for the operator. Every HTTP request goes through `base.post`, which
connects only where the outbound address policy (`pipelines.outbound`) allows, and a failure shows
the answer's status, never its body.
"""

from __future__ import annotations

import logging

from pipelines.alerting.channels.base import (
    Channel,
    Result,
    mask_key,
    mask_url,
    post,
    post_json,
    short,
)
from pipelines.alerting.channels.email import EMAIL_TIMEOUT, EmailChannel, parse_addresses, send_email
from pipelines.alerting.channels.opsgenie import OpsgenieChannel
from pipelines.alerting.channels.pagerduty import PagerDutyChannel
from pipelines.alerting.channels.slack import SlackChannel
from pipelines.alerting.channels.teams import TeamsChannel
from pipelines.alerting.channels.webhook import WebhookChannel
from pipelines.alerting.messages import document
from pipelines.models import Delivery, Incident, NotificationChannel, NotifyEvent

__all__ = [
    "EMAIL_TIMEOUT",
    "KINDS",
    "Channel",
    "Result",
    "address_errors",
    "always_resolving_kinds",
    "kinds_for",
    "mask_key",
    "mask_secret",
    "mask_target",
    "mask_url",
    "parse_addresses",
    "post",
    "post_json",
    "render",
    "scrub",
    "send",
    "send_email",
    "short_target",
    "target_errors",
]

log = logging.getLogger(__name__)

KINDS: dict[str, Channel] = {
    c.kind: c
    for c in (
        EmailChannel(),
        WebhookChannel(),
        SlackChannel(),
        TeamsChannel(),
        PagerDutyChannel(),
        OpsgenieChannel(),
    )
}


def kinds_for(event: str) -> list[str]:
    """The kinds that are told about `event` (paging services get acknowledgements, not reminders)."""
    return [kind for kind, channel in KINDS.items() if event in channel.events]


def always_resolving_kinds() -> list[str]:
    """Kinds that hear a resolve whatever "notify on resolve" says (a paging service's incident must close)."""
    return [kind for kind, channel in KINDS.items() if channel.always_resolves]


def target_errors(kind: str, target: str) -> list[str]:
    """What is wrong with a channel's target, as sentences for the operator; empty when it is usable."""
    if kind not in KINDS:
        return [f"Unknown channel kind {kind!r}."]
    return KINDS[kind].target_errors((target or "").strip())


def address_errors(kind: str, target: str) -> list[str]:
    """Where a usable target leads now, judged by the outbound address policy: the form's early, clear
    error. Sending checks the address it actually connects to, and that is the check that counts."""
    if kind not in KINDS:
        return []
    return KINDS[kind].address_errors((target or "").strip())


def render(kind: str, incident: Incident | None, event: str, channel_name: str = "") -> dict:
    """What a delivery stores and sends: the JSON document, or the kind's own message."""
    return KINDS[kind].render(document(incident, event, channel_name), incident)


def send(delivery: Delivery) -> Result:
    """One attempt at a delivery. Never raises: every failure becomes a Result with a readable error."""
    channel = delivery.channel
    if not channel.enabled and delivery.event != NotifyEvent.TEST:
        return Result(False, error="The channel is disabled; nothing was sent.", final=True)
    problems = target_errors(channel.kind, channel.target)
    if problems:
        return Result(False, error=" ".join(problems), final=True)
    kind = KINDS[channel.kind]
    try:
        return kind.test(delivery) if delivery.event == NotifyEvent.TEST else kind.send(delivery)
    except Exception as exc:  # a bug in a sender must still end as a recorded attempt, not a stuck row
        log.exception("sending delivery %s failed unexpectedly", delivery.pk)
        return Result(False, error=short(f"{type(exc).__name__}: {exc}"))


# --- secrets, for those who may not change a channel ------------------------------------------------


def mask_target(kind: str, target: str) -> str:
    """A target for someone who may not change it: email addresses as they are, URLs and keys masked."""
    return KINDS[kind].mask(target) if kind in KINDS else mask_key(target)


def short_target(kind: str, target: str) -> str:
    """Enough of a target to recognise it in a list, without its secret."""
    return KINDS[kind].short((target or "").strip()) if kind in KINDS else mask_key(target)


def mask_secret(kind: str, secret: str) -> str:
    return KINDS[kind].mask_secret(secret) if kind in KINDS else mask_key(secret)


def scrub(text: str, channel: NotificationChannel) -> str:
    """`text` with the channel's secrets masked, wherever an error or a payload repeats them."""
    if not text or channel.kind not in KINDS:
        return text
    kind = KINDS[channel.kind]
    for secret in sorted(kind.secrets(channel), key=len, reverse=True):
        masked = kind.mask(secret) if secret == (channel.target or "").strip() else kind.mask_secret(secret)
        text = text.replace(secret, masked)
    return text
