"""What a notification says: one document per incident event, and its email and Slack forms."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from pipelines.formatting import figure, human_seconds
from pipelines.models import Incident, NotifyEvent, Severity

#: The JSON webhook's schema version (the README documents the schema); bumped on incompatible change.
SCHEMA_VERSION = 1
RESOLVED_COLOUR = "#12b76a"
TEST_COLOUR = "#98a2b3"


def pipeline_url(pipeline_id: int) -> str:
    try:
        return settings.SITE_URL + reverse("admin:pipelines_pipeline_dashboard", args=[pipeline_id])
    except NoReverseMatch:
        return settings.SITE_URL + "/admin/"


def trace_url(pipeline_id: int) -> str:
    """The trace page with the pipeline chosen (a GET only fills the form in)."""
    try:
        return settings.SITE_URL + reverse("admin:trace") + f"?pipeline={pipeline_id}"
    except NoReverseMatch:
        return pipeline_url(pipeline_id)


def incident_url(incident: Incident) -> str:
    """The incident's admin page; its pipeline's dashboard where incidents have no admin page."""
    try:
        return settings.SITE_URL + reverse("admin:pipelines_incident_change", args=[incident.pk])
    except NoReverseMatch:
        return pipeline_url(incident.pipeline_id)


def one_line(text: str) -> str:
    return " ".join((text or "").split())


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def worst(*severities: str) -> str:
    return min((Severity(s) for s in severities if s), key=lambda s: s.rank).value


def headline(incident: Incident | None, event: str, channel_name: str = "") -> str:
    """One line saying what happened, e.g. "CRITICAL orders: backlog 5,000 above 1,000"."""
    if incident is None:
        return f"test notification from opsboard to the channel “{channel_name}”"
    name = incident.pipeline.name
    rule = incident.get_rule_display()
    severity = incident.get_severity_display().upper()
    what = f"{name}: {one_line(incident.summary) or rule}"
    if event == NotifyEvent.RESOLVED:
        return f"resolved {name}: {rule} after {human_seconds(incident.duration.total_seconds())}"
    if event == NotifyEvent.ESCALATED:
        return f"escalated to {severity} {what}"
    if event == NotifyEvent.ACKNOWLEDGED:
        by = f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""
        return f"acknowledged{by}: {severity} {what}"
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
            f"Value:     {figure(inc['value'])} (threshold {figure(inc['threshold'])})",
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
        {"title": "Value", "value": f"{figure(inc['value'])} (threshold {figure(inc['threshold'])})", "short": True},
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
