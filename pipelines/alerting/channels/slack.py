"""A Slack incoming webhook (also read by Mattermost, Rocket.Chat and other Slack-compatible receivers)."""

from __future__ import annotations

from pipelines.alerting.channels.base import Result, post_json
from pipelines.alerting.channels.webhook import WebhookChannel
from pipelines.alerting.messages import slack_message
from pipelines.models import ChannelKind, Delivery, Incident, NotificationChannel


class SlackChannel(WebhookChannel):
    """The webhook URL is the secret (Slack does not sign incoming webhooks): posted as Slack's own format."""

    kind = ChannelKind.SLACK
    example = "https://hooks.slack.com/services/…"

    def render(self, doc: dict, incident: Incident | None) -> dict:
        return slack_message(doc)

    def send(self, delivery: Delivery) -> Result:
        return post_json(delivery.channel.target.strip(), delivery.payload)

    def secrets(self, channel: NotificationChannel) -> list[str]:
        target = (channel.target or "").strip()
        return [target] if target else []
