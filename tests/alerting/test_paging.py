"""Paging: PagerDuty (Events API v2 out, v3 webhooks in), Opsgenie, Microsoft Teams, and the signed JSON
webhook — over real HTTP to local stand-ins of the services on 127.0.0.1 (tests/alerting/paging_servers.py)
that check each request as the vendors document it."""

import hashlib
import hmac
import json
import socket
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from pipelines.alerting import channels, deliveries
from pipelines.alerting.channels import opsgenie as opsgenie_kind
from pipelines.alerting.channels import teams as teams_kind
from pipelines.models import ChannelKind, Delivery, DeliveryStatus, Incident, IncidentStatus, NotificationChannel
from tests.alerting import test_notify as notify
from tests.alerting.paging_servers import Opsgenie, PagerDuty, Receiver, Running
from tests.alerting.test_notify import SITE, T, channel, make_incident

# The notification tests' fixtures: a frozen clock, SITE_URL, an account and its "orders" pipeline.
site, clock, account, pipeline, other = notify.site, notify.clock, notify.account, notify.pipeline, notify.other

PD_KEY = "0123456789abcdef0123456789abcdef"
OG_KEY = "01234567-89ab-cdef-0123-456789abcdef"
PD_WEBHOOK_SECRET = "pd-webhook-secret-for-tests"
CHANNELS = reverse("admin:pipelines_notificationchannel_changelist")


@pytest.fixture
def pagerduty(settings):
    with Running(PagerDuty()) as fake:
        settings.PAGERDUTY_EVENTS_URL = fake.url + "/v2/enqueue"
        yield fake


@pytest.fixture
def opsgenie(settings):
    with Running(Opsgenie(OG_KEY)) as fake:
        settings.OPSGENIE_API_URL = fake.url
        yield fake


@pytest.fixture
def receiver():
    with Running(Receiver()) as fake:
        yield fake


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_all(incident, event):
    """Enqueue the event's deliveries and make one attempt at each; returns them by channel name."""
    made = deliveries.enqueue(incident, event)
    return {d.channel.name: deliveries.deliver(d.pk) for d in made}


def add_channel(client, **fields):
    data = {"name": "pager", "enabled": "on", "min_severity": "warning", "send_resolved": "on", **fields}
    return client.post(reverse("admin:pipelines_notificationchannel_add"), data)


# --- PagerDuty out -------------------------------------------------------------------------------------


def test_it_triggers_acknowledges_and_resolves_a_pagerduty_incident(
    pipeline, pagerduty, clock, admin_client, eager, django_capture_on_commit_callbacks
):
    # "notify on resolve" off: PagerDuty still hears the resolve, or its incident would stay open.
    channel("pager", ChannelKind.PAGERDUTY, PD_KEY, send_resolved=False)
    Pipeline = type(pipeline)
    Pipeline.objects.filter(pk=pipeline.pk).update(time_to_loss=3 * 3600, time_to_loss_known=True, backlog=5000)
    inc = make_incident(Pipeline.objects.get(pk=pipeline.pk))
    sent = send_all(inc, "opened")
    assert sent["pager"].status == DeliveryStatus.SENT and sent["pager"].attempts[0]["status"] == 202

    [trigger] = pagerduty.bodies
    assert trigger["routing_key"] == PD_KEY and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == f"opsboard-incident-{inc.pk}"
    assert trigger["client"] == "opsboard" and trigger["client_url"] == SITE
    payload = trigger["payload"]
    assert payload["severity"] == "critical" and payload["component"] == "orders" and payload["group"] == "prod"
    assert payload["summary"] == (
        "CRITICAL orders: Backlog above threshold: backlog 5,000 above 1,000 (time to loss 3.0 h)"
    )
    assert payload["source"] == pipeline.queue_url and payload["class"] == "backlog"
    assert payload["custom_details"]["value"] == 5000 and payload["custom_details"]["backlog"] == 5000
    hrefs = [link["href"] for link in trigger["links"]]
    assert SITE + reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk]) in hrefs
    assert SITE + reverse("admin:trace") + f"?pipeline={pipeline.pk}" in hrefs
    assert "routing_key" not in Delivery.objects.get(pk=sent["pager"].pk).payload  # the secret is not stored

    # Acknowledged in opsboard (the UI's button): PagerDuty is told; the delivery runs after the commit.
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:incident_acknowledge", args=[inc.pk]))
    assert Incident.objects.get(pk=inc.pk).acknowledged_by == "admin"
    # Resolved by hand (the UI's button): PagerDuty is told too.
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:incident_resolve", args=[inc.pk]))
    assert Incident.objects.get(pk=inc.pk).resolved_by == "admin"
    key = f"opsboard-incident-{inc.pk}"
    assert pagerduty.actions == [("trigger", key), ("acknowledge", key), ("resolve", key)]


def test_the_admin_list_actions_tell_pagerduty_too(
    pipeline, pagerduty, clock, admin_client, eager, django_capture_on_commit_callbacks
):
    channel("pager", ChannelKind.PAGERDUTY, PD_KEY, send_resolved=False)
    inc = make_incident(pipeline)
    send_all(inc, "opened")
    changelist = reverse("admin:pipelines_incident_changelist")
    for action in ("acknowledge_incidents", "resolve_incidents"):
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(changelist, {"action": action, "_selected_action": [inc.pk]})
    inc.refresh_from_db()
    assert (inc.acknowledged_by, inc.resolved_by) == ("admin", "admin")
    key = f"opsboard-incident-{inc.pk}"
    assert pagerduty.actions == [("trigger", key), ("acknowledge", key), ("resolve", key)]


def test_pagerduty_gets_acknowledgements_but_no_reminders_and_others_no_acknowledgements(
    pipeline, pagerduty, receiver, clock
):
    channel("pager", ChannelKind.PAGERDUTY, PD_KEY)
    channel("hook", ChannelKind.WEBHOOK, receiver.url)
    inc = make_incident(pipeline)
    assert sorted(d.channel.name for d in deliveries.enqueue(inc, "reminder")) == ["hook"]
    inc.acknowledge(by="alice")
    assert [d.channel.name for d in deliveries.enqueue(inc, "acknowledged")] == ["pager"]


def test_a_summary_longer_than_pagerduty_takes_is_cut_to_1024_characters(pipeline, pagerduty, clock):
    channel("pager", ChannelKind.PAGERDUTY, PD_KEY)
    inc = make_incident(pipeline)
    Incident.objects.filter(pk=inc.pk).update(summary="x" * 500)
    Pipeline = type(pipeline)
    Pipeline.objects.filter(pk=pipeline.pk).update(name="o" * 100)
    inc = Incident.objects.select_related("pipeline").get(pk=inc.pk)
    inc.pipeline.name = "n" * 700  # an extreme name, only in the rendered document
    assert send_all(inc, "opened")["pager"].status == DeliveryStatus.SENT
    assert len(pagerduty.bodies[0]["payload"]["summary"]) == 1024


def test_a_rejected_pagerduty_event_fails_at_once_showing_only_its_status_and_message(pipeline, pagerduty, clock):
    channel("pager", ChannelKind.PAGERDUTY, PD_KEY)
    pagerduty.replies = [
        (400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["<script>secret</script>"]})
    ]
    d = send_all(make_incident(pipeline), "opened")["pager"]
    assert d.status == DeliveryStatus.FAILED and d.attempt_count == 1
    assert d.last_error == "HTTP 400 Bad Request: Event object is invalid"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_pagerduty_throttling_and_server_errors_are_retried_with_backoff(pipeline, pagerduty, clock, status):
    channel("pager", ChannelKind.PAGERDUTY, PD_KEY)
    pagerduty.replies = [(status, {"status": "throttle event", "message": "slow down"})] * 2
    d = send_all(make_incident(pipeline), "opened")["pager"]
    assert d.status == DeliveryStatus.PENDING and d.next_attempt_at == T + timedelta(minutes=1)
    clock[0] = T + timedelta(minutes=1)
    assert deliveries.deliver_due() == 1
    d.refresh_from_db()
    assert d.status == DeliveryStatus.PENDING and d.next_attempt_at == clock[0] + timedelta(minutes=2)
    clock[0] += timedelta(minutes=2)
    deliveries.deliver_due()
    d.refresh_from_db()
    assert d.status == DeliveryStatus.SENT and [a["status"] for a in d.attempts] == [status, status, 202]


def test_a_dead_paging_endpoint_blocks_neither_the_evaluation_nor_the_other_channels(
    pipeline, receiver, clock, settings, closed_port, eager, django_capture_on_commit_callbacks
):
    settings.PAGERDUTY_EVENTS_URL = f"http://127.0.0.1:{closed_port}/v2/enqueue"
    channel("pager", ChannelKind.PAGERDUTY, PD_KEY)
    channel("hook", ChannelKind.WEBHOOK, receiver.url)
    inc = make_incident(pipeline)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        made = deliveries.enqueue(inc, "opened")  # what the evaluator does: record, send after the commit
    assert receiver.requests == [] and {d.status for d in made} == {DeliveryStatus.PENDING}
    for callback in callbacks:  # the commit: one worker task per delivery
        callback()
    status = {d.channel.name: Delivery.objects.get(pk=d.pk) for d in made}
    assert status["hook"].status == DeliveryStatus.SENT and len(receiver.requests) == 1
    assert status["pager"].status == DeliveryStatus.PENDING
    assert status["pager"].last_error == "Connection refused by 127.0.0.1."


# --- the form, masking, the test action ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, target, message",
    [
        ("pagerduty", "0123456789abcdef", "32 characters, lower-case letters and digits; this one has 16."),
        ("pagerduty", PD_KEY.upper(), "routing key (Events API v2)"),
        ("opsgenie", "not-a-key", "Enter the Opsgenie API integration&#x27;s key"),
        ("opsgenie", "us:" + OG_KEY, "prefixed eu: for an account on the EU instance"),
        ("teams", "http://example.com/workflows/1", "Enter the webhook&#x27;s full https:// URL"),
        ("teams", "https://[zz]/x", "Enter the webhook&#x27;s full https:// URL"),
        ("webhook", "https://[::1/hook", "Enter the webhook&#x27;s full http:// or https:// URL"),
        ("webhook", "https://example.com:port/hook", "Enter the webhook&#x27;s full http:// or https:// URL"),
        ("webhook", "https://alice:s3cretPW@example.com/hook", "Leave the user name and password out of the URL"),
    ],
)
def test_the_form_rejects_a_routing_key_or_url_in_the_wrong_format(admin_client, db, kind, target, message):
    res = add_channel(admin_client, kind=kind, target=target)
    assert res.status_code == 200 and message in res.content.decode()
    assert not NotificationChannel.objects.exists()


def test_the_form_saves_paging_targets(admin_client, db):
    assert add_channel(admin_client, name="pd", kind="pagerduty", target=f" {PD_KEY} ").status_code == 302
    assert add_channel(admin_client, name="og", kind="opsgenie", target="eu:" + OG_KEY).status_code == 302
    pd = NotificationChannel.objects.get(name="pd")
    assert pd.target == PD_KEY and pd.signing_secret == ""  # PagerDuty's webhook secret is pasted, not made
    page = admin_client.get(reverse("admin:pipelines_notificationchannel_change", args=[pd.pk])).content.decode()
    assert SITE + f"/integrations/pagerduty/{pd.pk}/" in page and 'name="signing_secret"' in page


def test_keys_and_secrets_are_masked_for_a_user_who_cannot_change_the_channel(
    client, django_user_model, pipeline, pagerduty, clock
):
    pd = channel("pager", ChannelKind.PAGERDUTY, PD_KEY, signing_secret=PD_WEBHOOK_SECRET)
    og = channel("genie", ChannelKind.OPSGENIE, "eu:" + OG_KEY)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_notificationchannel", "view_delivery"]))
    client.force_login(viewer)
    page = client.get(reverse("admin:pipelines_notificationchannel_change", args=[pd.pk])).content.decode()
    assert "0123…" in page and PD_KEY not in page
    assert "pd-w…" in page and PD_WEBHOOK_SECRET not in page
    assert SITE + reverse("pagerduty_webhook", args=[pd.pk]) in page  # where PagerDuty's webhook goes
    page = client.get(reverse("admin:pipelines_notificationchannel_change", args=[og.pk])).content.decode()
    assert "eu:0123…" in page and OG_KEY not in page
    listing = client.get(CHANNELS).content.decode()
    assert PD_KEY not in listing and OG_KEY not in listing and "0123…" in listing
    # A delivery whose error repeats the key shows it masked.
    d = Delivery.objects.create(channel=pd, event="opened", payload={"k": PD_KEY}, last_error=f"bad key {PD_KEY}")
    detail = client.get(reverse("admin:pipelines_delivery_change", args=[d.pk])).content.decode()
    assert PD_KEY not in detail and "bad key 0123…" in detail
    d = Delivery.objects.create(channel=og, event="opened", payload={}, last_error=f"key {OG_KEY} refused")
    detail = client.get(reverse("admin:pipelines_delivery_change", args=[d.pk])).content.decode()
    assert OG_KEY not in detail and "key 0123… refused" in detail


def test_the_test_action_triggers_and_resolves_on_pagerduty_and_creates_and_closes_on_opsgenie(
    admin_client, db, pagerduty, opsgenie
):
    pd = channel("pager", ChannelKind.PAGERDUTY, PD_KEY)
    og = channel("genie", ChannelKind.OPSGENIE, OG_KEY)
    res = admin_client.post(CHANNELS, {"action": "send_test_action", "_selected_action": [pd.pk, og.pk]}, follow=True)
    said = [str(m) for m in res.context["messages"]]
    assert "pager: test notification sent." in said and "genie: test notification sent." in said
    [(a1, k1), (a2, k2)] = pagerduty.actions
    assert (a1, a2) == ("trigger", "resolve") and k1 == k2 and pagerduty.bodies[0]["payload"]["severity"] == "info"
    [alert] = opsgenie.alerts.values()
    assert alert["status"] == "closed" and alert["body"]["priority"] == "P5"


# --- PagerDuty in: v3 webhooks ------------------------------------------------------------------------


def v3_event(incident_key: str, event_type: str = "incident.acknowledged") -> dict:
    """A v3 webhook body as PagerDuty documents it (the parts opsboard reads, and some it ignores)."""
    return {
        "event": {
            "id": "01DEN7FBEYJ4T1NZPVKXMRXFQW",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-11-26T12:03:00.000Z",
            "agent": {"id": "PLH1HKV", "type": "user_reference", "summary": "Alice"},
            "client": None,
            "data": {
                "id": "Q2HIRX1ZLFWVQ4",
                "type": "incident",
                "number": 7,
                "status": "acknowledged",
                "incident_key": incident_key,
                "title": "CRITICAL orders: backlog 5,000 above 1,000",
                "urgency": "high",
            },
        }
    }


def post_webhook(channel_id, body, secret=PD_WEBHOOK_SECRET, signature=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if signature is None:
        signature = "v1=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"X-PagerDuty-Signature": signature} if signature else {}
    client = Client(enforce_csrf_checks=True)  # PagerDuty has no CSRF token: the view is exempt
    url = reverse("pagerduty_webhook", args=[channel_id])
    return client.post(url, data=raw, content_type="application/json", headers=headers)


@pytest.fixture
def pd_channel(db):
    return channel("pager", ChannelKind.PAGERDUTY, PD_KEY, signing_secret=PD_WEBHOOK_SECRET)


def test_a_signed_pagerduty_acknowledgement_acknowledges_the_incident(pipeline, pd_channel, opsgenie, clock):
    channel("genie", ChannelKind.OPSGENIE, OG_KEY)
    inc = make_incident(pipeline)
    res = post_webhook(pd_channel.pk, v3_event(f"opsboard-incident-{inc.pk}"))
    assert res.status_code == 200 and res.json() == {"incident": inc.pk, "acknowledged": True}
    inc.refresh_from_db()
    assert inc.status == IncidentStatus.ACKNOWLEDGED and inc.acknowledged_by == "PagerDuty"
    # Through the same function as the UI's button: the other paging channels hear it.
    assert Delivery.objects.filter(incident=inc, event="acknowledged", channel__name="genie").exists()
    # Again (PagerDuty retries): nothing more changes.
    assert post_webhook(pd_channel.pk, v3_event(f"opsboard-incident-{inc.pk}")).json()["acknowledged"] is False


def test_a_channel_acknowledges_only_what_it_pages(pipeline, other, pd_channel, clock):
    # The channel pages "orders" only: its secret cannot acknowledge another pipeline's incident.
    pd_channel.pipelines.set([pipeline])
    theirs = make_incident(other)
    assert post_webhook(pd_channel.pk, v3_event(f"opsboard-incident-{theirs.pk}")).status_code == 204
    assert Incident.objects.get(pk=theirs.pk).status == IncidentStatus.OPEN
    # A disabled channel speaks for nothing.
    mine = make_incident(pipeline)
    NotificationChannel.objects.filter(pk=pd_channel.pk).update(enabled=False)
    assert post_webhook(pd_channel.pk, v3_event(f"opsboard-incident-{mine.pk}")).status_code == 401
    assert Incident.objects.get(pk=mine.pk).status == IncidentStatus.OPEN


def test_a_webhook_routed_through_an_environment_proxy_is_refused(receiver, monkeypatch):
    # Through a proxy the policy would judge the proxy's address, not the target's.
    monkeypatch.setenv("HTTP_PROXY", receiver.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    result = channels.post_json("http://169.254.169.254/latest/meta-data/", {"x": 1})
    assert not result.ok and result.final and "NO_PROXY" in result.error
    assert receiver.requests == []


def test_a_delivery_error_never_shows_a_password_written_into_an_old_url(pipeline, admin_client, clock):
    hook = channel("old", ChannelKind.WEBHOOK, "http://alice:s3cretPW@127.0.0.1:1/hook")
    result = channels.post_json(hook.target, {"x": 1})
    assert not result.ok and "s3cretPW" not in result.error


def test_one_good_signature_among_several_is_enough_while_a_secret_is_rotated(pipeline, pd_channel, clock):
    inc = make_incident(pipeline)
    raw = json.dumps(v3_event(f"opsboard-incident-{inc.pk}")).encode()
    good = "v1=" + hmac.new(PD_WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert post_webhook(pd_channel.pk, raw, signature=f"v1={'0' * 64},{good}").status_code == 200


@pytest.mark.parametrize(
    "how", ["missing", "wrong secret", "tampered body", "not v1", "other channel", "no secret set", "wrong kind"]
)
def test_a_bad_or_missing_signature_is_refused_with_401_and_changes_nothing(pipeline, pd_channel, clock, how):
    inc = make_incident(pipeline)
    body = v3_event(f"opsboard-incident-{inc.pk}")
    raw = json.dumps(body).encode()
    sig = "v1=" + hmac.new(PD_WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    channel_id = pd_channel.pk
    if how == "missing":
        res = post_webhook(channel_id, raw, signature="")
    elif how == "wrong secret":
        res = post_webhook(channel_id, raw, secret="another-secret")
    elif how == "tampered body":
        res = post_webhook(channel_id, raw.replace(b"Alice", b"Mallory"), signature=sig)
    elif how == "not v1":
        res = post_webhook(channel_id, raw, signature=sig.replace("v1=", "v0="))
    elif how == "other channel":
        res = post_webhook(channel_id + 1000, raw)
    elif how == "no secret set":
        NotificationChannel.objects.filter(pk=channel_id).update(signing_secret="")
        res = post_webhook(channel_id, raw, secret="")
    else:
        hook = channel("hook", ChannelKind.WEBHOOK, "https://hooks.example.com/a")
        res = post_webhook(hook.pk, raw, secret=hook.signing_secret)
    assert res.status_code == 401
    assert Incident.objects.get(pk=inc.pk).status == IncidentStatus.OPEN and not Delivery.objects.exists()


@pytest.mark.parametrize(
    "key, event_type",
    [
        ("opsboard-incident-999999", "incident.acknowledged"),  # an incident opsboard does not have
        ("d3640fbd41094207a1c11e58e46b1662", "incident.acknowledged"),  # a key opsboard did not make
        ("opsboard-incident-{pk}", "incident.resolved"),  # an event opsboard does not act on
        ("opsboard-incident-{pk}", "pagey.ping"),
    ],
)
def test_unknown_incidents_and_other_events_are_ignored(pipeline, pd_channel, clock, key, event_type):
    inc = make_incident(pipeline)
    res = post_webhook(pd_channel.pk, v3_event(key.format(pk=inc.pk), event_type))
    assert res.status_code == 204 and Incident.objects.get(pk=inc.pk).status == IncidentStatus.OPEN


def test_a_signed_body_that_is_not_json_is_a_400_and_only_posts_are_taken(pd_channel):
    assert post_webhook(pd_channel.pk, b"not json{").status_code == 400
    assert Client().get(reverse("pagerduty_webhook", args=[pd_channel.pk])).status_code == 405


# --- Opsgenie ------------------------------------------------------------------------------------------


def test_it_creates_acknowledges_and_closes_an_opsgenie_alert(pipeline, opsgenie, clock):
    channel("genie", ChannelKind.OPSGENIE, OG_KEY)
    inc = make_incident(pipeline)
    assert send_all(inc, "opened")["genie"].attempts[0]["status"] == 202
    alias = f"opsboard-incident-{inc.pk}"
    created = opsgenie.alerts[alias]["body"]
    assert created["priority"] == "P1" and created["message"] == "CRITICAL orders: backlog 5,000 above 1,000"
    assert created["details"]["pipeline"] == "orders" and created["source"] == "opsboard"
    assert "opsboard" in created["tags"] and created["entity"] == "orders"
    assert opsgenie.requests[0]["headers"]["Authorization"] == f"GenieKey {OG_KEY}"

    inc.acknowledge(by="alice")
    send_all(inc, "acknowledged")
    assert opsgenie.alerts[alias]["status"] == "acknowledged"
    assert opsgenie.requests[-1]["path"] == f"/v2/alerts/{alias}/acknowledge?identifierType=alias"
    assert opsgenie.bodies[-1]["user"] == "alice"
    inc.resolve()
    send_all(inc, "resolved")
    assert opsgenie.alerts[alias]["status"] == "closed"
    assert opsgenie.requests[-1]["path"] == f"/v2/alerts/{alias}/close?identifierType=alias"


def test_opsgenie_priorities_follow_severity_and_the_message_fits_130_characters(pipeline, opsgenie, clock):
    channel("genie", ChannelKind.OPSGENIE, OG_KEY)
    inc = make_incident(pipeline, severity="warning")
    Incident.objects.filter(pk=inc.pk).update(summary="y" * 400)
    inc.refresh_from_db()
    assert send_all(inc, "opened")["genie"].status == DeliveryStatus.SENT
    body = opsgenie.bodies[0]
    assert body["priority"] == "P3" and len(body["message"]) == 130


def test_an_eu_key_goes_to_the_eu_instance(pipeline, opsgenie, clock, monkeypatch, settings):
    with Running(Opsgenie(OG_KEY)) as eu:
        monkeypatch.setattr(opsgenie_kind, "EU_API_URL", eu.url)
        channel("genie", ChannelKind.OPSGENIE, "eu:" + OG_KEY)
        send_all(make_incident(pipeline), "opened")
    assert len(eu.requests) == 1 and opsgenie.requests == []


def test_a_wrong_opsgenie_key_fails_at_once_and_throttling_is_retried(pipeline, opsgenie, clock):
    channel("genie", ChannelKind.OPSGENIE, OG_KEY.replace("0", "f"))
    d = send_all(make_incident(pipeline), "opened")["genie"]
    assert d.status == DeliveryStatus.FAILED and d.last_error == "HTTP 401 Unauthorized: Could not authenticate"
    NotificationChannel.objects.filter(name="genie").update(target=OG_KEY)
    opsgenie.replies = [(429, {"message": "Too many requests", "took": 0.0, "requestId": "r"})]
    d = send_all(make_incident(pipeline, rule="dlq"), "opened")["genie"]
    assert d.status == DeliveryStatus.PENDING and d.attempts[0]["status"] == 429


# --- Microsoft Teams -----------------------------------------------------------------------------------


def test_it_posts_a_teams_adaptive_card(pipeline, clock, monkeypatch):
    posted = []
    monkeypatch.setattr(
        teams_kind, "post_json", lambda url, body: posted.append((url, body)) or channels.Result(True, 202)
    )
    url = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=secret"
    channel("teams", ChannelKind.TEAMS, url)
    inc = make_incident(pipeline)
    assert send_all(inc, "opened")["teams"].status == DeliveryStatus.SENT
    [(to, body)] = posted
    assert to == url and body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == "CRITICAL orders: backlog 5,000 above 1,000"
    assert card["body"][0]["color"] == "Attention"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Severity"] == "critical" and facts["Value"] == "5,000 (threshold 1,000)"
    dashboard = SITE + reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])
    assert {"type": "Action.OpenUrl", "title": "Open the pipeline", "url": dashboard} in card["actions"]
    assert channels.mask_target("teams", url) == "https://prod-00.westeurope.logic.azure.com/workflows/…"


# --- the signed JSON webhook ---------------------------------------------------------------------------


def verify(secret: str, headers: dict, raw: bytes, now: float, tolerance: int = 300) -> bool:
    """A receiver's check, as the docs describe it: recompute the HMAC over "<timestamp>.<raw body>", compare
    in constant time, and refuse a timestamp more than 5 minutes old."""
    timestamp, sig = headers.get("X-Opsboard-Timestamp", ""), headers.get("X-Opsboard-Signature", "")
    if not timestamp.isdigit() or now - int(timestamp) > tolerance:
        return False
    expected = "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


def test_each_webhook_post_is_signed_and_a_receiver_can_verify_it(pipeline, receiver, clock):
    hook = channel("hook", ChannelKind.WEBHOOK, receiver.url)
    assert len(hook.signing_secret) >= 43  # secrets.token_urlsafe(32), made on create
    send_all(make_incident(pipeline), "opened")
    [request] = receiver.requests
    now = T.timestamp()
    assert request["headers"]["X-Opsboard-Timestamp"] == str(int(now))
    assert verify(hook.signing_secret, request["headers"], request["raw"], now)
    assert not verify(hook.signing_secret, request["headers"], request["raw"].replace(b"orders", b"billing"), now)
    assert not verify(hook.signing_secret, request["headers"], request["raw"], now + 301)  # stale: a replay
    assert not verify("another secret", request["headers"], request["raw"], now)


def test_the_signing_secret_is_shown_to_editors_masked_to_viewers_and_regenerated_when_cleared(
    admin_client, client, django_user_model, receiver
):
    hook = channel("hook", ChannelKind.WEBHOOK, receiver.url)
    secret = hook.signing_secret
    change = reverse("admin:pipelines_notificationchannel_change", args=[hook.pk])
    assert secret in admin_client.get(change).content.decode()
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_notificationchannel"))
    client.force_login(viewer)
    page = client.get(change).content.decode()
    assert secret not in page and f"{secret[:4]}…" in page
    res = admin_client.post(
        change,
        {
            "name": "hook",
            "kind": "webhook",
            "target": receiver.url,
            "signing_secret": "",
            "enabled": "on",
            "min_severity": "warning",
            "send_resolved": "on",
        },
    )
    assert res.status_code == 302
    hook.refresh_from_db()
    assert hook.signing_secret and hook.signing_secret != secret
