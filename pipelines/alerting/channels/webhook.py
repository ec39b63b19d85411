"""The generic JSON webhook: a signed POST of the event's document to any URL.

Each POST carries `X-Opsboard-Timestamp: <unix seconds>` and
`X-Opsboard-Signature: v1=<hex HMAC-SHA256(channel secret, "<timestamp>.<raw body>")>`, so a receiver
can tell opsboard sent the body and when: it recomputes the HMAC over the timestamp, a dot and the raw
body bytes, compares in constant time, and rejects a timestamp older than 5 minutes (a replay).
"""

from __future__ import annotations

import hashlib
import hmac

from pipelines import clock, outbound
from pipelines.alerting.channels.base import Channel, Result, encode, http_url_errors, post
from pipelines.models import ChannelKind, Delivery

TIMESTAMP_HEADER = "X-Opsboard-Timestamp"
SIGNATURE_HEADER = "X-Opsboard-Signature"
SIGNATURE_VERSION = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: v1=<hex HMAC-SHA256(secret, f"{timestamp}." + raw body)>."""
    signed = f"{timestamp}.".encode() + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict:
    if not secret:  # a channel saved before signing existed and not saved since: sent unsigned
        return {}
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


class WebhookChannel(Channel):
    """A JSON POST of the event's document to any URL (the docs give the schema), signed with the channel's secret."""

    kind = ChannelKind.WEBHOOK
    example = "https://example.com/hook"

    def target_errors(self, target: str) -> list[str]:
        return http_url_errors(target, self.example)

    def address_errors(self, target: str) -> list[str]:
        return outbound.url_errors(target)

    def send(self, delivery: Delivery) -> Result:
        now = clock.now()
        body = encode({**delivery.payload, "delivery": delivery.pk, "sent_at": now.isoformat()})
        headers = signed_headers(delivery.channel.signing_secret, int(now.timestamp()), body)
        return post(delivery.channel.target.strip(), body, headers)
