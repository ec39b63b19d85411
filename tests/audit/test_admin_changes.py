"""Adds, changes and deletions made in the admin, on opsboard's models and Django's users and groups:
one entry per object, naming the model, the object and the fields changed, never their values."""

import json

from django.contrib.auth.models import Group, User
from django.urls import reverse

from pipelines.models import AuditAction, AuditEntry, AwsAccount, Pipeline
from tests.audit.support import ADDRESS, only, who


def account_form(account, **changes):
    data = {
        "name": account.name,
        "region": account.region,
        "role_arn": account.role_arn,
        "external_id": account.external_id,
        "endpoint_url": account.endpoint_url,
    }
    return {**data, **changes}


def test_it_audits_a_change_by_field_name_never_by_value(root):
    account = AwsAccount.objects.create(
        name="prod", region="eu-west-1", role_arn="arn:aws:iam::123456789012:role/ops", external_id="ext-old-1111"
    )
    change = reverse("admin:pipelines_awsaccount_change", args=[account.pk])
    res = root.post(change, account_form(account, external_id="ext-secret-4242", region="eu-west-2"))
    assert res.status_code == 302, res.content.decode()[:2000]
    entry = only(AuditAction.OBJECT_CHANGE)
    assert who(entry) == ("object_change", "ui", "root", "", ADDRESS)
    assert entry.detail == {
        "model": "pipelines.awsaccount",
        "object": "prod (eu-west-2)",
        "object_id": str(account.pk),
        "fields": ["Region", "External ID"],
    }
    assert "ext-secret-4242" not in json.dumps(entry.detail) and "ext-old-1111" not in json.dumps(entry.detail)


def test_it_audits_users_and_groups_too_without_their_passwords(root, superuser):
    root.post(reverse("admin:auth_group_add"), {"name": "night-shift"})
    added = only(AuditAction.OBJECT_ADD)
    assert (added.detail["model"], added.detail["object"]) == ("auth.group", "night-shift")
    bob = User.objects.create_user("bob", password="old-Passw0rd-1")
    res = root.post(
        reverse("admin:auth_user_password_change", args=[bob.pk]),
        {"password1": "New-Passw0rd-77", "password2": "New-Passw0rd-77", "usable_password": "true"},
    )
    assert res.status_code == 302, res.content.decode()[:2000]
    changed = only(AuditAction.OBJECT_CHANGE)
    assert (changed.detail["model"], changed.detail["object"], changed.remote_addr) == ("auth.user", "bob", ADDRESS)
    stored = json.dumps([e.detail for e in AuditEntry.objects.all()])
    assert "New-Passw0rd-77" not in stored and "old-Passw0rd-1" not in stored


def test_it_audits_each_object_a_bulk_deletion_removes(root):
    groups = [Group.objects.create(name=n) for n in ("blue", "green", "red")]
    res = root.post(
        reverse("admin:auth_group_changelist"),
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups[:2]], "post": "yes"},
    )
    assert res.status_code == 302 and not Group.objects.filter(name__in=["blue", "green"]).exists()
    deleted = AuditEntry.objects.filter(action=AuditAction.OBJECT_DELETE)
    assert sorted((e.detail["object"], e.detail["object_id"]) for e in deleted) == sorted(
        (g.name, str(g.pk)) for g in groups[:2]
    )
    assert AuditEntry.objects.count() == 2


def test_a_deleted_pipelines_entry_keeps_its_name(root):
    account = AwsAccount.objects.create(name="prod", region="us-east-1")
    p = Pipeline.objects.create(name="orders", account=account, queue_url="http://h/123456789012/orders")
    assert root.post(reverse("admin:pipelines_pipeline_delete", args=[p.pk]), {"post": "yes"}).status_code == 302
    entry = only(AuditAction.OBJECT_DELETE)
    assert (entry.pipeline, entry.pipeline_name, entry.detail["object"]) == (None, "orders", "orders")
    assert entry.detail["queue_url"] == "http://h/123456789012/orders" and entry.detail["account"] == "prod"


def test_it_audits_polling_switched_off_and_on_by_the_admin_actions(root):
    account = AwsAccount.objects.create(name="prod", region="eu-west-1")
    on, off = (
        Pipeline.objects.create(account=account, name=n, queue_url=f"https://sqs.eu-west-1.amazonaws.com/1/{n}")
        for n in ("on", "off")
    )
    off.enabled = False
    off.save()
    url = reverse("admin:pipelines_pipeline_changelist")
    root.post(url, {"action": "disable", "_selected_action": [on.pk, off.pk]})
    [entry] = AuditEntry.objects.filter(action=AuditAction.OBJECT_CHANGE)  # only the one that changed
    assert (entry.detail["object_id"], entry.detail["fields"]) == (str(on.pk), ["Enabled"])
    assert not Pipeline.objects.filter(enabled=True).exists()
    root.post(url, {"action": "enable", "_selected_action": [on.pk, off.pk]})
    assert AuditEntry.objects.filter(action=AuditAction.OBJECT_CHANGE).count() == 3
    assert Pipeline.objects.filter(enabled=True).count() == 2
