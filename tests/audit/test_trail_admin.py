"""The audit trail in the admin: read-only for everyone (superusers included), filterable, searchable
by user, pipeline and address, nested detail shown as compact JSON, and a CSV export for its readers."""

import csv
import io
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from pipelines.models import AuditAction, AuditEntry, AuditThrough, AwsAccount, Pipeline
from tests.users import staff

CHANGELIST = reverse("admin:pipelines_auditentry_changelist")


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def trail(db):
    account = AwsAccount.objects.create(name="prod", region="us-east-1")
    orders = Pipeline.objects.create(name="orders", account=account, queue_url="http://h/123456789012/orders")
    alice = User.objects.create_user("alice")
    peek = AuditEntry.record(
        AuditAction.DLQ_PEEK, alice, orders, remote_addr="10.9.8.7", received=2, message_ids=["m-1", "m-2"]
    )
    redrive = AuditEntry.record(
        AuditAction.DLQ_REDRIVE, None, orders, remote_addr="192.0.2.44", through=AuditThrough.API, task=7
    )
    login = AuditEntry.record(AuditAction.LOGIN_FAILED, None, remote_addr="192.0.2.99", username="=cmd|x")
    return peek, redrive, login


def test_it_refuses_adding_changing_and_deleting_entries_even_to_a_superuser(admin_client, trail):
    peek = trail[0]
    change = reverse("admin:pipelines_auditentry_change", args=[peek.pk])
    delete = reverse("admin:pipelines_auditentry_delete", args=[peek.pk])
    assert admin_client.get(reverse("admin:pipelines_auditentry_add")).status_code == 403
    assert admin_client.post(change, {"username": "mallory"}).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [peek.pk], "post": "yes"})
    assert AuditEntry.objects.count() == 3 and AuditEntry.objects.get(pk=peek.pk).username == "alice"
    page = text(admin_client.get(change))
    assert 'name="_save"' not in page and "deletelink" not in page
    assert "<code>[&quot;m-1&quot;,&quot;m-2&quot;]</code>" in page  # nested detail as compact JSON


def actions(client, **params) -> list[str]:
    """The actions of the rows a changelist shows (not the filters' labels)."""
    return re.findall(r'class="field-action">([^<]+)<', client.get(CHANGELIST, params).content.decode())


def test_it_filters_and_searches_the_trail(admin_client, trail):
    page = text(admin_client.get(CHANGELIST))
    assert "received: 2, message_ids: [&quot;m-1&quot;,&quot;m-2&quot;]" in page
    assert actions(admin_client) == ["Failed to log in", "Started a redrive", "Peeked at a DLQ"]
    assert actions(admin_client, pipeline__id__exact=trail[0].pipeline_id) == ["Started a redrive", "Peeked at a DLQ"]
    assert actions(admin_client, through__exact="api") == ["Started a redrive"]
    assert actions(admin_client, action__exact="login_failed") == ["Failed to log in"]
    assert actions(admin_client, user__id__exact=trail[0].user_id) == ["Peeked at a DLQ"]
    assert actions(admin_client, at__year=trail[1].at.year, at__month=trail[1].at.month)[1] == "Started a redrive"
    assert actions(admin_client, q="192.0.2.44") == ["Started a redrive"]
    assert actions(admin_client, q="alice") == ["Peeked at a DLQ"]
    assert actions(admin_client, q="orders") == ["Started a redrive", "Peeked at a DLQ"]


def test_it_exports_the_selected_entries_as_csv_for_those_who_may_read_the_trail(trail):
    AuditEntry.record(AuditAction.LOGIN, User.objects.create_user("@ops"), remote_addr="192.0.2.1", method="password")
    auditor = Client()
    auditor.force_login(staff("auditor", "view_auditentry"))
    res = auditor.post(
        CHANGELIST, {"action": "export_csv", "_selected_action": [e.pk for e in AuditEntry.objects.all()]}
    )
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(res.content.decode())))
    assert rows[0] == ["at", "action", "through", "username", "pipeline_name", "remote_addr", "detail"]
    assert [r[1] for r in rows[1:]] == ["login", "login_failed", "dlq_redrive", "dlq_peek"]
    assert rows[1][3] == "'@ops"  # a cell a spreadsheet would read as a formula is quoted
    assert rows[2][6] == '{"username":"=cmd|x"}'
    assert rows[4][2:] == ["ui", "alice", "orders", "10.9.8.7", '{"message_ids":["m-1","m-2"],"received":2}']
    nobody = Client()
    nobody.force_login(staff("nobody", "view_pipeline"))
    refused = nobody.post(CHANGELIST, {"action": "export_csv", "_selected_action": [trail[0].pk]})
    assert refused.status_code == 403
