"""Who may see and do what in the admin beyond the stock permissions: importing registers pipelines,
stored trace lookups need the trace permission, secrets are masked for those who cannot change them,
and the audit trail is read-only for everyone."""

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from pipelines.models import AuditAction, AuditEntry, AwsAccount, Delivery, NotificationChannel, Pipeline, TraceLookup


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- importing queues needs add_pipeline ------------------------------------------------------------------------


def test_it_does_not_let_the_account_action_import_without_add_pipeline(as_user, account, build):
    build("alpha")
    client = as_user("changer", "view_awsaccount", "change_awsaccount", "view_pipeline")
    changelist = reverse("admin:pipelines_awsaccount_changelist")
    client.post(changelist, {"action": "import_queues_action", "_selected_action": [account.pk]})
    assert not Pipeline.objects.exists()
    assert 'value="import_queues_action"' not in client.get(changelist).content.decode()
    res = client.get(reverse("admin:pipelines_awsaccount_import", args=[account.pk]))
    assert res.status_code == 302
    client.post(reverse("admin:pipelines_awsaccount_import", args=[account.pk]), {"prefix": ""})
    assert not Pipeline.objects.exists()


def test_it_imports_through_the_account_action_with_add_pipeline(as_user, account, build):
    build("alpha")
    client = as_user("importer", "view_awsaccount", "change_awsaccount", "view_pipeline", "add_pipeline")
    changelist = reverse("admin:pipelines_awsaccount_changelist")
    assert 'value="import_queues_action"' in client.get(changelist).content.decode()
    res = client.post(changelist, {"action": "import_queues_action", "_selected_action": [account.pk]}, follow=True)
    assert "registered 1 pipeline(s)" in text(res)
    assert list(Pipeline.objects.values_list("name", flat=True)) == ["alpha"]


# --- stored trace lookups need lookup_trace --------------------------------------------------------------------


@pytest.fixture
def stored_lookup(db):
    from pipelines import clock

    at = clock.now()
    return TraceLookup.objects.create(
        username="tracer",
        ident="req-1",
        window_start=at,
        window_end=at,
        verdict="processed",
        summary={"id": "req-1", "timeline": [{"message": 'consumer got {"password": "hunter2"}'}]},
        calls_made=3,
    )


def test_it_hides_stored_lookups_from_a_user_who_may_not_trace(as_user, stored_lookup):
    viewer = as_user("viewer", "view_tracelookup")
    changelist = reverse("admin:pipelines_tracelookup_changelist")
    change = reverse("admin:pipelines_tracelookup_change", args=[stored_lookup.pk])
    assert viewer.get(changelist).status_code == 403
    res = viewer.get(change)
    assert res.status_code in (302, 403) and "hunter2" not in res.content.decode()
    assert viewer.get(reverse("admin:trace") + f"?lookup={stored_lookup.pk}").status_code == 403
    assert "tracelookup" not in viewer.get(reverse("admin:index")).content.decode()


def test_it_shows_stored_lookups_to_a_user_who_may_trace_and_view_them(as_user, stored_lookup):
    auditor = as_user("auditor", "view_tracelookup", "lookup_trace")
    assert "req-1" in text(auditor.get(reverse("admin:pipelines_tracelookup_changelist")))
    change = auditor.get(reverse("admin:pipelines_tracelookup_change", args=[stored_lookup.pk]))
    assert change.status_code == 200 and "hunter2" in change.content.decode()


# --- secrets are masked for those who cannot change them, and never searched -------------------------------------

HOOK = "https://hooks.example.com/alerts/T0AAA/B0BBB?token=s3cr3t-t0ken-value"
SLACK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


@pytest.fixture
def hook(db):
    return NotificationChannel.objects.create(name="ops hook", kind="webhook", target=HOOK)


def test_it_masks_a_webhook_url_on_the_read_only_channel_page(as_user, hook):
    slack = NotificationChannel.objects.create(name="ops slack", kind="slack", target=SLACK)
    viewer = as_user("viewer", "view_notificationchannel")
    page = text(viewer.get(reverse("admin:pipelines_notificationchannel_change", args=[hook.pk])))
    assert "s3cr3t" not in page and "T0AAA" not in page and "https://hooks.example.com/alerts/…" in page
    page = text(viewer.get(reverse("admin:pipelines_notificationchannel_change", args=[slack.pk])))
    assert "XXXXXXXX" not in page and "B00000000" not in page and "https://hooks.slack.com/services/…" in page
    editor = as_user("editor", "view_notificationchannel", "change_notificationchannel")
    assert (
        HOOK.replace("&", "&amp;")
        in editor.get(reverse("admin:pipelines_notificationchannel_change", args=[hook.pk])).content.decode()
    )


def test_it_does_not_match_a_search_on_part_of_a_webhook_token(as_user, hook):
    NotificationChannel.objects.create(name="oncall mail", kind="email", target="oncall@example.com")
    viewer = as_user("viewer", "view_notificationchannel")
    changelist = reverse("admin:pipelines_notificationchannel_changelist")
    assert "ops hook" not in text(viewer.get(changelist, {"q": "s3cr3t"}))
    assert "ops hook" not in text(viewer.get(changelist, {"q": "T0AAA"}))
    assert "ops hook" in text(viewer.get(changelist, {"q": "ops"}))
    assert "oncall mail" in text(viewer.get(changelist, {"q": "oncall@example"}))


def test_it_masks_the_webhook_url_where_a_delivery_repeats_it(as_user, hook):
    error = f"ValueError: cannot post to {HOOK}"
    delivery = Delivery.objects.create(
        channel=hook,
        event="test",
        status="failed",
        last_error=error,
        attempts=[{"at": "2026-12-01T10:00:00", "ok": False, "error": error, "ms": 3}],
        payload={"text": f"see {HOOK}"},
    )
    viewer = as_user("viewer", "view_delivery")
    page = text(viewer.get(reverse("admin:pipelines_delivery_change", args=[delivery.pk])))
    assert "s3cr3t" not in page and "cannot post to https://hooks.example.com/alerts/…" in page
    changelist = reverse("admin:pipelines_delivery_changelist")
    assert "s3cr3t" not in text(viewer.get(changelist))
    assert "ops hook" not in text(viewer.get(changelist, {"q": "s3cr3t"}))


def test_it_masks_the_external_id_for_a_user_who_cannot_change_the_account(as_user, emulator):
    account = AwsAccount.objects.create(
        name="prod",
        region="eu-west-1",
        role_arn="arn:aws:iam::123456789012:role/opsboard",
        external_id="ext-secret-4242",
        endpoint_url="http://user:pa55word@aws.example.com/x",
    )
    viewer = as_user("viewer", "view_awsaccount")
    page = text(viewer.get(reverse("admin:pipelines_awsaccount_change", args=[account.pk])))
    assert "ext-secret-4242" not in page and "set (hidden)" in page
    assert "pa55word" not in page
    assert "pa55word" not in text(viewer.get(reverse("admin:pipelines_awsaccount_changelist")))
    editor = as_user("editor", "view_awsaccount", "change_awsaccount")
    assert "ext-secret-4242" in text(editor.get(reverse("admin:pipelines_awsaccount_change", args=[account.pk])))


# --- the audit trail is read-only, superusers included ----------------------------------------------------------


@pytest.fixture
def audit_entry(db):
    owner = User.objects.create_user("peeker", "peeker@example.com", "pw-for-tests-1")
    return AuditEntry.record(
        AuditAction.DLQ_PEEK, owner, remote_addr="::ffff:10.1.2.3", queue_url="https://q/orders-dlq", received=3
    )


def test_it_lets_nobody_add_change_or_delete_an_audit_entry(admin_client, audit_entry):
    assert audit_entry.remote_addr == "10.1.2.3"
    change = reverse("admin:pipelines_auditentry_change", args=[audit_entry.pk])
    delete = reverse("admin:pipelines_auditentry_delete", args=[audit_entry.pk])
    changelist = reverse("admin:pipelines_auditentry_changelist")
    assert admin_client.get(reverse("admin:pipelines_auditentry_add")).status_code == 403
    assert admin_client.post(reverse("admin:pipelines_auditentry_add"), {"action": "dlq_peek"}).status_code == 403
    assert admin_client.post(change, {"username": "someone-else"}).status_code == 403
    assert admin_client.get(delete).status_code == 403 and admin_client.post(delete, {"post": "yes"}).status_code == 403
    bulk = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [audit_entry.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert AuditEntry.objects.get().username == "peeker"  # still there, unchanged
    page = text(admin_client.get(change))
    assert admin_client.get(change).status_code == 200 and 'name="_save"' not in page and "Delete" not in page


def test_it_shows_the_audit_trail_to_a_user_with_view_auditentry_only(as_user, audit_entry):
    changelist = reverse("admin:pipelines_auditentry_changelist")
    assert as_user("nobody", "view_pipeline").get(changelist).status_code == 403
    auditor = as_user("auditor", "view_auditentry")
    page = text(auditor.get(changelist))
    assert "Peeked at a DLQ" in page and "peeker" in page and "10.1.2.3" in page and "received: 3" in page
    assert "0 results" in text(auditor.get(changelist, {"q": "nobody-like-this"}))
    assert "0 results" not in text(auditor.get(changelist, {"q": "peeker"}))
    assert 'value="delete_selected"' not in page


def test_it_names_the_peek_permission_clearly_on_the_permission_page(admin_client):
    page = text(admin_client.get(reverse("admin:auth_group_add")))
    assert "Pipelines | pipeline | Can peek at a dead-letter queue (receives its messages)" in page
