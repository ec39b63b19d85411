"""Microsoft Teams through a Workflows incoming webhook: a message whose attachment is an Adaptive Card
(the Office 365 connector webhooks are being retired). The webhook URL is the secret; https only."""

from __future__ import annotations

from pipelines.alerting.channels.base import Result, http_url_errors, post_json
from pipelines.alerting.channels.slack import SlackChannel
from pipelines.formatting import figure
from pipelines.models import ChannelKind, Delivery, Incident, NotifyEvent

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
#: Adaptive Card text colours by severity (the card's palette has no free colours).
COLOURS = {"critical": "Attention", "warning": "Warning", "info": "Accent"}


def _card(body: list, actions: list) -> dict:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD_TYPE,
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": CARD_VERSION,
                    "body": body,
                    "actions": actions,
                },
            }
        ],
    }


def _text(text: str, **style) -> dict:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def teams_message(doc: dict) -> dict:
    """The card: the headline coloured by severity (green when resolved), the summary, the facts and
    buttons to the pipeline page and the incident."""
    inc, p = doc["incident"], doc["pipeline"]
    title = doc["text"][:1].upper() + doc["text"][1:]
    if inc is None:
        return _card(
            [
                _text(title, weight="Bolder", size="Medium"),
                _text("This channel works: opsboard's incident notifications will arrive here."),
            ],
            [],
        )
    colour = "Good" if doc["event"] == NotifyEvent.RESOLVED else COLOURS.get(inc["severity"], "Default")
    facts = [
        ("Pipeline", f"{p['name']} (account {p['account']})"),
        ("Rule", inc["rule_label"]),
        ("Severity", inc["severity"]),
        ("Value", f"{figure(inc['value'])} (threshold {figure(inc['threshold'])})"),
        ("Status", inc["status"] + (f" by {inc['acknowledged_by']}" if inc["acknowledged_by"] else "")),
        ("Opened", inc["opened_at"]),
    ]
    return _card(
        [
            _text(title, weight="Bolder", size="Medium", color=colour),
            _text(inc["summary"]),
            {"type": "FactSet", "facts": [{"title": t, "value": str(v)} for t, v in facts]},
        ],
        [
            {"type": "Action.OpenUrl", "title": "Open the pipeline", "url": p["dashboard_url"]},
            {"type": "Action.OpenUrl", "title": "Open the incident", "url": inc["url"]},
        ],
    )


class TeamsChannel(SlackChannel):
    kind = ChannelKind.TEAMS
    example = "https://prod-00.westeurope.logic.azure.com/workflows/…"

    def target_errors(self, target: str) -> list[str]:
        return http_url_errors(target, self.example, schemes=("https",))

    def render(self, doc: dict, incident: Incident | None) -> dict:
        return teams_message(doc)

    def send(self, delivery: Delivery) -> Result:
        return post_json(delivery.channel.target.strip(), delivery.payload)
