"""Notifications: routing, the JSON / Slack / email messages, retries with backoff, and the admin, with
real HTTP to a webhook receiver on 127.0.0.1 and Django's test mail outbox."""

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from pipelines import tasks
from pipelines.alerting import deliveries, messages
from pipelines.models import (
    AwsAccount,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Incident,
    NotificationChannel,
    Pipeline,
    RuleKind,
    Severity,
)

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SITE = "https://ops.example.com"


# --- a webhook receiver on loopback --------------------------------------------------------------------


class Receiver:
    """Records each POST; answers with the queued replies ((status, body) or "hang"), then `default`."""

    def __init__(self, url: str):
        self.url = url
        self.requests: list[dict] = []
        self.replies: list = []
        self.default = (200, b"ok")
        self.release = threading.Event()

    @property
    def bodies(self) -> list[dict]:
        return [r["json"] for r in self.requests]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        hook = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        hook.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
        reply = hook.replies.pop(0) if hook.replies else hook.default
        if reply == "hang":
            hook.release.wait(10)
            return
        status, text = reply
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.receiver
    server.receiver.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port_url():
    """A loopback URL nothing listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# --- data ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE
    settings.ALERT_DELIVERY_ATTEMPTS = 6
    settings.ALERT_WEBHOOK_TIMEOUT = 2.0


@pytest.fixture
def clock(monkeypatch):
    """The time opsboard sees: clock[0], moved by the test."""
    t = [T]
    monkeypatch.setattr("pipelines.clock.now", lambda: t[0])
    return t


@pytest.fixture
def account(db):
    return AwsAccount.objects.create(name="prod", region="us-east-1")


@pytest.fixture
def pipeline(account):
    return Pipeline.objects.create(
        name="orders", account=account, queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/orders"
    )


@pytest.fixture
def other(account):
    return Pipeline.objects.create(
        name="billing", account=account, queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/billing"
    )


def make_incident(pipeline, severity=Severity.CRITICAL, rule=RuleKind.BACKLOG, **fields):
    return Incident.objects.create(
        pipeline=pipeline,
        rule=rule,
        severity=severity,
        peak_severity=severity,
        summary="backlog 5,000 above 1,000",
        value=5000,
        threshold=1000,
        opened_at=T,
        last_seen_at=T,
        **fields,
    )


def channel(name, kind, target, **fields):
    return NotificationChannel.objects.create(name=name, kind=kind, target=target, **fields)


def one(incident, event="opened"):
    """Enqueue and return the single delivery it made (not sent yet: the test sends it)."""
    made = deliveries.enqueue(incident, event)
    assert len(made) == 1
    return made[0]


# --- messages ------------------------------------------------------------------------------------------


def test_it_posts_the_documented_json_to_a_webhook(pipeline, hook, clock, eager, django_capture_on_commit_callbacks):
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    inc = make_incident(pipeline)
    with django_capture_on_commit_callbacks(execute=True):  # the worker task runs after the commit
        [delivery] = deliveries.enqueue(inc, "opened")
    assert len(hook.requests) == 1
    request = hook.requests[0]
    assert request["path"] == "/hook" and request["headers"]["Content-Type"] == "application/json"
    body = request["json"]
    assert body["version"] == 1 and body["event"] == "opened" and body["delivery"] == delivery.pk
    assert body["text"] == "CRITICAL orders: backlog 5,000 above 1,000"
    assert body["sent_at"] == T.isoformat()
    assert {
        k: body["incident"][k]
        for k in (
            "id",
            "rule",
            "rule_label",
            "severity",
            "status",
            "summary",
            "value",
            "threshold",
            "opened_at",
            "acknowledged_by",
            "resolved_at",
        )
    } == {
        "id": inc.pk,
        "rule": "backlog",
        "rule_label": "Backlog above threshold",
        "severity": "critical",
        "status": "open",
        "summary": "backlog 5,000 above 1,000",
        "value": 5000,
        "threshold": 1000,
        "opened_at": T.isoformat(),
        "acknowledged_by": "",
        "resolved_at": None,
    }
    assert body["incident"]["url"].startswith(SITE + "/admin/pipelines/")
    assert body["pipeline"] == {
        "id": pipeline.pk,
        "name": "orders",
        "account": "prod",
        "queue_url": pipeline.queue_url,
        "dashboard_url": SITE + reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk]),
    }
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.sent_at == T and delivery.attempt_count == 1
    assert delivery.attempts[0]["ok"] is True and delivery.attempts[0]["status"] == 200


def test_the_message_says_what_was_true_when_it_was_queued(pipeline, hook, clock):
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    inc = make_incident(pipeline)
    delivery = one(inc)
    Incident.objects.filter(pk=inc.pk).update(summary="backlog 9,000 above 1,000", value=9000)
    deliveries.deliver(delivery.pk)
    assert hook.bodies[0]["incident"]["value"] == 5000


def test_it_posts_a_slack_message_coloured_by_severity_and_green_when_resolved(pipeline, hook, clock):
    channel("slack", ChannelKind.SLACK, hook.url)
    inc = make_incident(pipeline)
    deliveries.deliver(one(inc).pk)
    clock[0] = T + timedelta(minutes=42)
    inc.resolve()
    deliveries.deliver(one(inc, "resolved").pk)

    opened, resolved = hook.bodies
    url = messages.incident_url(inc)
    assert opened["text"] == f"<{url}|CRITICAL orders: backlog 5,000 above 1,000>"
    [att] = opened["attachments"]
    assert att["color"] == Severity.CRITICAL.colour and att["title"] == "Backlog above threshold"
    assert att["title_link"] == url and att["fallback"] == "CRITICAL orders: backlog 5,000 above 1,000"
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["Value"] == "5,000 (threshold 1,000)" and fields["Status"] == "open"
    assert fields["Pipeline"] == f"<{SITE}{reverse('admin:pipelines_pipeline_dashboard', args=[pipeline.pk])}|orders>"
    assert "delivery" not in opened  # Slack gets its own format, nothing else
    assert resolved["text"] == f"<{url}|resolved orders: Backlog above threshold after 42 min>"
    assert resolved["attachments"][0]["color"] == "#12b76a"


def test_slack_markup_in_a_summary_is_escaped(pipeline, hook, clock):
    channel("slack", ChannelKind.SLACK, hook.url)
    inc = make_incident(pipeline)
    Incident.objects.filter(pk=inc.pk).update(summary="errors <b>&</b> <!channel>")
    inc.refresh_from_db()
    deliveries.deliver(one(inc).pk)
    body = hook.bodies[0]
    for text in (body["text"], body["attachments"][0]["text"]):  # the fields Slack reads as markup
        assert "errors &lt;b&gt;&amp;&lt;/b&gt; &lt;!channel&gt;" in text and "<!channel>" not in text


def test_it_emails_every_address_with_the_links(pipeline, clock, mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "opsboard <alerts@example.com>"
    channel("on call", ChannelKind.EMAIL, "ops@example.com, oncall@example.com\nlead@example.com")
    inc = make_incident(pipeline)
    delivery = deliveries.deliver(one(inc).pk)
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts[0]["status"] is None
    [mail] = mailoutbox
    assert mail.subject == "[opsboard] CRITICAL orders: backlog 5,000 above 1,000"
    assert mail.to == ["ops@example.com", "oncall@example.com", "lead@example.com"]
    assert mail.from_email == "opsboard <alerts@example.com>"
    assert messages.incident_url(inc) in mail.body
    assert SITE + reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk]) in mail.body
    assert "Value:     5,000 (threshold 1,000)" in mail.body and "Opened:    2026-11-26 12:00 UTC" in mail.body

    clock[0] = T + timedelta(hours=3)
    inc.resolve(by="alice")
    deliveries.deliver(one(inc, "resolved").pk)
    assert mailoutbox[1].subject == "[opsboard] resolved orders: Backlog above threshold after 3.0 h"
    assert "Resolved:  2026-11-26 15:00 UTC" in mailoutbox[1].body


def test_a_mail_server_that_refuses_connections_is_a_recorded_failure(pipeline, clock, settings, closed_port_url):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", int(closed_port_url.split(":")[2].split("/")[0])
    channel("on call", ChannelKind.EMAIL, "ops@example.com")
    delivery = deliveries.deliver(one(make_incident(pipeline)).pk)
    assert delivery.status == DeliveryStatus.PENDING
    assert "Could not send mail via 127.0.0.1" in delivery.last_error and "refused" in delivery.last_error


def test_links_fall_back_to_the_pipeline_page_without_an_incident_page(pipeline, hook, clock, monkeypatch):
    real = messages.reverse

    def reverse_without_incidents(name, *args, **kwargs):
        if name == "admin:pipelines_incident_change":
            raise NoReverseMatch(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(messages, "reverse", reverse_without_incidents)
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    deliveries.deliver(one(make_incident(pipeline)).pk)
    assert hook.bodies[0]["incident"]["url"] == SITE + reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])


# --- routing -------------------------------------------------------------------------------------------


def test_it_routes_by_pipeline_severity_and_resolve_preference(pipeline, other, clock):
    channel("everything", ChannelKind.WEBHOOK, "https://hooks.example.com/a")
    channel("critical only", ChannelKind.WEBHOOK, "https://hooks.example.com/b", min_severity=Severity.CRITICAL)
    channel("no resolves", ChannelKind.WEBHOOK, "https://hooks.example.com/c", send_resolved=False)
    channel("off", ChannelKind.WEBHOOK, "https://hooks.example.com/d", enabled=False)
    channel("billing team", ChannelKind.WEBHOOK, "https://hooks.example.com/e").pipelines.add(other)
    channel("orders team", ChannelKind.WEBHOOK, "https://hooks.example.com/f").pipelines.add(pipeline, other)

    def routed(incident, event):
        return sorted(d.channel.name for d in deliveries.enqueue(incident, event))

    warning = make_incident(pipeline, Severity.WARNING)
    assert routed(warning, "opened") == ["everything", "no resolves", "orders team"]
    warning.resolve()
    assert routed(warning, "resolved") == ["everything", "orders team"]
    critical = make_incident(other, Severity.CRITICAL, RuleKind.DLQ)
    assert routed(critical, "opened") == ["billing team", "critical only", "everything", "no resolves", "orders team"]


def test_a_channel_told_about_a_critical_incident_hears_it_resolve_after_it_eased(pipeline, clock):
    channel("critical only", ChannelKind.WEBHOOK, "https://hooks.example.com/b", min_severity=Severity.CRITICAL)
    inc = make_incident(pipeline, Severity.WARNING)
    assert deliveries.enqueue(inc, "opened") == []
    Incident.objects.filter(pk=inc.pk).update(peak_severity=Severity.CRITICAL)
    inc.refresh_from_db()
    inc.resolve()
    assert [d.channel.name for d in deliveries.enqueue(inc, "resolved")] == ["critical only"]


def test_enqueue_without_channels_costs_one_query_and_does_no_harm(pipeline, django_capture_on_commit_callbacks):
    inc = make_incident(pipeline)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, CaptureQueriesContext(connection) as q:
        assert deliveries.enqueue(inc, "opened") == []
    assert len(q.captured_queries) == 1 and not callbacks and not Delivery.objects.exists()


# --- retries -------------------------------------------------------------------------------------------


def test_backoff_doubles_from_a_minute_up_to_an_hour():
    assert [deliveries.backoff(n) // timedelta(minutes=1) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_500_is_retried_after_a_minute_and_then_succeeds(pipeline, hook, clock):
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    hook.replies = [(500, b"upstream exploded " + b"x" * 500)]
    delivery = deliveries.deliver(one(make_incident(pipeline)).pk)

    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 1
    first = delivery.attempts[0]
    assert first["ok"] is False and first["status"] == 500 and first["at"] == T.isoformat()
    assert first["error"] == "HTTP 500 Internal Server Error"  # the answer's body is never shown
    assert delivery.last_error == first["error"] and delivery.next_attempt_at == T + timedelta(minutes=1)

    clock[0] = T + timedelta(seconds=59)
    assert deliveries.deliver_due() == 0 and len(hook.requests) == 1  # not due yet
    clock[0] = T + timedelta(minutes=1)
    assert deliveries.deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempt_count == 2 and delivery.last_error == ""
    assert [a["status"] for a in delivery.attempts] == [500, 200]
    assert hook.bodies[0]["delivery"] == hook.bodies[1]["delivery"] == delivery.pk  # receivers can de-duplicate


def test_it_gives_up_after_the_configured_attempts(pipeline, hook, clock, settings):
    settings.ALERT_DELIVERY_ATTEMPTS = 3
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    hook.default = (503, b"")
    delivery = one(make_incident(pipeline))
    waits = []
    for _ in range(5):
        deliveries.deliver_due()
        delivery.refresh_from_db()
        if delivery.status == DeliveryStatus.FAILED:
            break
        waits.append(delivery.next_attempt_at - clock[0])
        clock[0] = delivery.next_attempt_at
    assert waits == [timedelta(minutes=1), timedelta(minutes=2)]
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempt_count == 3 and len(hook.requests) == 3
    assert delivery.last_error == "HTTP 503 Service Unavailable"
    clock[0] += timedelta(days=1)
    assert deliveries.deliver_due() == 0 and len(hook.requests) == 3


def test_a_refused_connection_is_a_recorded_failure(pipeline, clock, closed_port_url):
    channel("dead", ChannelKind.WEBHOOK, closed_port_url)
    delivery = deliveries.deliver(one(make_incident(pipeline)).pk)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts[0]["status"] is None and delivery.last_error == "Connection refused by 127.0.0.1."


def test_a_webhook_that_does_not_answer_times_out(pipeline, hook, clock, settings):
    settings.ALERT_WEBHOOK_TIMEOUT = 0.3
    channel("slow", ChannelKind.WEBHOOK, hook.url)
    hook.replies = ["hang"]
    delivery = deliveries.deliver(one(make_incident(pipeline)).pk)
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == "No answer from 127.0.0.1 within 0.3 s."
    assert delivery.attempts[0]["ms"] < 2000


def test_a_failing_channel_does_not_stop_the_others(
    pipeline, other, hook, clock, closed_port_url, eager, django_capture_on_commit_callbacks
):
    channel("dead", ChannelKind.WEBHOOK, closed_port_url)
    channel("good", ChannelKind.WEBHOOK, hook.url)
    with django_capture_on_commit_callbacks(execute=True):
        made = deliveries.enqueue(make_incident(pipeline), "opened")
    status = {d.channel.name: Delivery.objects.get(pk=d.pk).status for d in made}
    assert status == {"dead": DeliveryStatus.PENDING, "good": DeliveryStatus.SENT}

    # In the sweep, an unreachable channel costs one attempt; the others are all sent.
    with django_capture_on_commit_callbacks(execute=False):  # no workers: only the sweep sends
        deliveries.enqueue(make_incident(other), "opened")
        deliveries.enqueue(make_incident(other, rule=RuleKind.DLQ), "opened")
    clock[0] += timedelta(hours=1)
    assert deliveries.deliver_due() == 3  # the two new ones to the good channel, one retry to the dead one
    assert Delivery.objects.filter(channel__name="good", status=DeliveryStatus.SENT).count() == 3
    dead = Delivery.objects.filter(channel__name="dead")
    assert dead.count() == 3 and sum(d.attempt_count for d in dead) == 2  # one before the sweep, one in it


def test_a_claimed_delivery_is_sent_once_and_again_only_when_its_worker_died(pipeline, hook, clock):
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    delivery = one(make_incident(pipeline))
    assert deliveries._claim(delivery.pk) is not None  # another worker has it and is sending
    assert deliveries.deliver(delivery.pk) is None
    assert deliveries.deliver_due() == 0 and hook.requests == []
    clock[0] = T + timedelta(minutes=5)  # that worker died: its claim expires
    assert deliveries.deliver(delivery.pk).status == DeliveryStatus.SENT
    assert deliveries.deliver(delivery.pk) is None and len(hook.requests) == 1


def test_a_broker_that_is_down_leaves_the_delivery_to_the_sweep(
    pipeline, hook, clock, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(tasks.deliver_notification, "delay", broker_down)
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    with django_capture_on_commit_callbacks(execute=True):
        delivery = one(make_incident(pipeline))
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING
    tasks.deliver_due_notifications()
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENT and len(hook.requests) == 1


def test_a_disabled_channel_gets_nothing_more(pipeline, hook, clock):
    ch = channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    delivery = one(make_incident(pipeline))
    NotificationChannel.objects.filter(pk=ch.pk).update(enabled=False)
    delivery = deliveries.deliver(delivery.pk)
    assert delivery.status == DeliveryStatus.FAILED and "disabled" in delivery.last_error and hook.requests == []


# --- the admin -----------------------------------------------------------------------------------------

CHANNELS = reverse("admin:pipelines_notificationchannel_changelist")
DELIVERIES = reverse("admin:pipelines_delivery_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_test_action_reports_each_channel(admin_client, hook, closed_port_url):
    good = channel("good", ChannelKind.WEBHOOK, hook.url)
    dead = channel("dead", ChannelKind.SLACK, closed_port_url, enabled=False)
    res = admin_client.post(
        CHANNELS, {"action": "send_test_action", "_selected_action": [good.pk, dead.pk]}, follow=True
    )
    said = messages_of(res)
    assert "good: test notification sent." in said
    assert "dead: the test notification failed: Connection refused by 127.0.0.1." in said
    assert hook.bodies[0]["event"] == "test" and hook.bodies[0]["incident"] is None
    assert "good" in hook.bodies[0]["text"]
    # A test is tried once: nothing is left for the sweep to send later.
    assert Delivery.objects.get(channel=dead).status == DeliveryStatus.FAILED
    page = admin_client.get(CHANNELS).content.decode()
    assert "all pipelines" in page and "Sent" in page and "Failed" in page
    assert hook.url not in page and "http://127.0.0.1:" in page  # a webhook URL is a secret: only its host shows


@pytest.mark.parametrize(
    "kind, target, message",
    [
        ("webhook", "ftp://example.com/hook", "Enter the webhook&#x27;s full http:// or https:// URL"),
        ("slack", "hooks.slack.com/services/T0/B0/x", "https://hooks.slack.com/services/…"),
        ("email", "ops@example.com, not-an-address", "Not a valid email address: not-an-address."),
        ("email", "  ", "This field is required."),
    ],
)
def test_the_channel_form_rejects_bad_targets(admin_client, db, kind, target, message):
    res = admin_client.post(
        reverse("admin:pipelines_notificationchannel_add"),
        {
            "name": "ops",
            "kind": kind,
            "target": target,
            "enabled": "on",
            "min_severity": "warning",
            "send_resolved": "on",
        },
    )
    assert res.status_code == 200 and message in res.content.decode()
    assert not NotificationChannel.objects.exists()


def test_the_channel_form_saves_a_good_target(admin_client, pipeline):
    res = admin_client.post(
        reverse("admin:pipelines_notificationchannel_add"),
        {
            "name": "orders team",
            "kind": "email",
            "target": "  ops@example.com\nlead@example.com \n",
            "enabled": "on",
            "min_severity": "critical",
            "pipelines": [pipeline.pk],
        },
    )
    assert res.status_code == 302
    ch = NotificationChannel.objects.get()
    assert ch.target == "ops@example.com\nlead@example.com" and list(ch.pipelines.all()) == [pipeline]
    assert "1 pipeline" in admin_client.get(CHANNELS).content.decode()


def test_deliveries_are_readable_and_retried_now(
    admin_client, pipeline, hook, eager, django_capture_on_commit_callbacks, settings
):
    settings.ALERT_DELIVERY_ATTEMPTS = 1
    channel("ops hook", ChannelKind.WEBHOOK, hook.url)
    hook.replies = [(502, b"bad gateway")]
    delivery = deliveries.deliver(one(make_incident(pipeline)).pk)
    assert delivery.status == DeliveryStatus.FAILED

    listing = admin_client.get(DELIVERIES).content.decode()
    assert "Failed" in listing and "HTTP 502 Bad Gateway" in listing and "bad gateway" not in listing
    detail = admin_client.get(reverse("admin:pipelines_delivery_change", args=[delivery.pk])).content.decode()
    assert "HTTP status" in detail and "<td>502</td>" in detail and "&quot;event&quot;: &quot;opened&quot;" in detail
    assert admin_client.get(reverse("admin:pipelines_delivery_add")).status_code == 403

    with django_capture_on_commit_callbacks(execute=True):
        res = admin_client.post(DELIVERIES, {"action": "retry_now", "_selected_action": [delivery.pk]}, follow=True)
    assert any(m.startswith("1 delivery will be retried now") for m in messages_of(res))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempt_count == 2 and len(hook.requests) == 2


def test_beat_sweeps_due_deliveries_every_minute(settings):
    from opsboard.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["alert-deliveries"]
    assert entry["schedule"] == 60.0 and entry["options"]["expires"] == 60
    assert entry["task"] in app.tasks and "pipelines.tasks.deliver_notification" in app.tasks
