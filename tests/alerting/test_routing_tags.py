"""Notification channels limited to groups and a tag: a team hears its own pipelines' incidents only."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pipelines import clock
from pipelines.alerting import deliveries
from pipelines.alerting.incidents import EvalReport, apply_finding
from pipelines.alerting.rules import Finding
from pipelines.models import (
    AwsAccount,
    ChannelKind,
    Delivery,
    Incident,
    NotificationChannel,
    Pipeline,
    RuleKind,
    Severity,
)

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/"


@pytest.fixture
def account(db):
    return AwsAccount.objects.create(name="prod", region="us-east-1")


def pipeline(account, name, group="", tags=None):
    return Pipeline.objects.create(name=name, account=account, queue_url=URL + name, group=group, tags=tags or {})


def channel(name, **fields):
    return NotificationChannel.objects.create(
        name=name, kind=ChannelKind.WEBHOOK, target=f"https://hooks.example.com/{name}", **fields
    )


def incident(p, severity=Severity.CRITICAL):
    return Incident.objects.create(pipeline=p, rule=RuleKind.BACKLOG, severity=severity, summary="backlog high")


def routed(inc, event="opened"):
    return sorted(d.channel.name for d in deliveries.enqueue(inc, event))


def test_a_group_a_incident_notifies_the_group_a_channel_and_not_the_group_b_one(account):
    payments = pipeline(account, "orders", group="payments")
    search = pipeline(account, "index", group="search")
    channel("payments-team", groups="payments")
    channel("search-team", groups="search")
    channel("both", groups="payments, search")
    channel("everyone")

    assert routed(incident(payments)) == ["both", "everyone", "payments-team"]
    assert routed(incident(search)) == ["both", "everyone", "search-team"]


def test_a_tag_selector_takes_a_key_or_a_key_and_value_together_with_the_groups(account):
    prod = pipeline(account, "orders", group="payments", tags={"env": "prod", "pci": ""})
    staging = pipeline(account, "orders-staging", group="payments", tags={"env": "staging"})
    channel("prod pages", tag="env=prod")
    channel("pci", tag="pci")
    channel("payments prod", groups="payments", tag="env=prod")
    channel("search prod", groups="search", tag="env=prod")

    assert routed(incident(prod)) == ["payments prod", "pci", "prod pages"]
    assert routed(incident(staging)) == []


def test_the_rule_table_path_notifies_by_group_when_an_incident_opens(account, django_capture_on_commit_callbacks):
    payments = pipeline(account, "orders", group="payments")
    channel("payments-team", groups="payments")
    channel("search-team", groups="search")

    finding = Finding(Severity.CRITICAL, "backlog 5,000 above 1,000", 5000, 1000)
    apply_finding(payments, RuleKind.BACKLOG, finding, None, clock.now(), EvalReport())

    assert list(Delivery.objects.values_list("channel__name", "incident__pipeline__name")) == [
        ("payments-team", "orders")
    ]


def test_a_selector_that_cannot_be_read_takes_nothing(account):
    p = pipeline(account, "orders", group="payments", tags={"env": "prod"})
    channel("broken", tag="=prod")  # stored without the admin's validation
    assert routed(incident(p)) == []


def test_channels_without_selectors_cost_no_extra_query(account):
    p = pipeline(account, "orders", group="payments")
    channel("everyone")
    inc = Incident.objects.select_related(None).get(pk=incident(p).pk)
    with CaptureQueriesContext(connection) as q:
        assert [c.name for c in deliveries.routed_channels(inc, "opened")] == ["everyone"]
    assert len(q.captured_queries) == 1


def test_the_channel_form_refuses_a_bad_tag_and_tidies_groups(admin_client, account):
    data = {
        "name": "team",
        "kind": ChannelKind.WEBHOOK,
        "target": "https://hooks.example.com/team",
        "enabled": "on",
        "min_severity": Severity.WARNING,
        "send_resolved": "on",
        "groups": "payments ,search,,payments",
        "tag": "=prod",
    }
    page = admin_client.post("/admin/pipelines/notificationchannel/add/", data)
    assert page.status_code == 200 and "is not a tag" in page.content.decode()
    assert not NotificationChannel.objects.exists()

    page = admin_client.post("/admin/pipelines/notificationchannel/add/", {**data, "tag": " env = prod "})
    assert page.status_code == 302
    saved = NotificationChannel.objects.get()
    assert (saved.groups, saved.tag) == ("payments, search", "env=prod")
    listing = admin_client.get("/admin/pipelines/notificationchannel/").content.decode()
    assert "group payments, search · tag env=prod" in listing


def test_a_channel_with_teams_hears_only_the_incidents_of_pipelines_those_teams_own(account):
    from pipelines.models import Team

    orders = pipeline(account, "orders", group="payments")
    refunds = pipeline(account, "refunds", tags={"team": "money"})
    index = pipeline(account, "index", group="search")
    payments = Team.objects.create(name="payments", pipeline_groups=["payments"])
    money = Team.objects.create(name="money", pipeline_tags=["team=money"])
    channel("payments-pager").teams.add(payments)
    channel("money-or-payments").teams.add(payments, money)
    channel("everyone")

    assert routed(incident(orders)) == ["everyone", "money-or-payments", "payments-pager"]
    assert routed(incident(refunds)) == ["everyone", "money-or-payments"]
    assert routed(incident(index)) == ["everyone"]
