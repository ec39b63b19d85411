"""A peek is a receive: it needs its own permission (peek_dlq), each one is written to the audit trail,
and those who may not read bodies see no value of a peeked message: only kinds, names and sizes."""

import importlib
import re

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.urls import reverse

from pipelines import aws
from pipelines.dlq import peek
from pipelines.dlq.peek import PeekedMessage
from pipelines.models import AuditEntry, AwsAccount, Pipeline
from tests.redrive_support import fill
from tests.users import staff

migration = importlib.import_module("pipelines.migrations.0011_peek_dlq_audit_trail")

SECRET_TEXT = "password=hunter2"
SECRET_JSON = '{"password": "hunter2", "user": "ann", "card": "4111 1111"}'


@pytest.fixture
def orders(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 5)
    return p


def dlq_url(p) -> str:
    return reverse("admin:pipelines_pipeline_dlq", args=[p.pk])


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def receive_counts(p) -> list[int]:
    """Each DLQ message's receive count before this look (which is itself one receive)."""
    return sorted(m.receive_count - 1 for m in peek.scan(p, 100).messages)


# --- the permission ----------------------------------------------------------------------------------------


def test_it_refuses_a_peek_to_a_user_who_may_only_view_the_pipeline(as_user, orders):
    viewer = as_user("viewer", "view_pipeline")
    assert viewer.post(dlq_url(orders), {"count": "5", "peek": "Peek"}).status_code == 403
    assert receive_counts(orders) == [0] * 5  # nothing was received
    assert not AuditEntry.objects.exists()


def test_it_hides_the_peek_form_and_names_the_permission_it_needs(as_user, orders):
    page = text(as_user("viewer", "view_pipeline").get(dlq_url(orders)))
    assert 'name="peek"' not in page
    assert "Peeking needs the “Can peek at a dead-letter queue (receives its messages)” permission" in page
    assert 'name="peek"' in text(as_user("peeker", "view_pipeline", "peek_dlq").get(dlq_url(orders)))


def test_it_shows_peeked_messages_and_writes_one_audit_entry(as_user, orders):
    peeker = as_user("peeker", "view_pipeline", "peek_dlq")
    page = text(peeker.post(dlq_url(orders), {"count": "3", "peek": "Peek"}))
    assert page.count('class="rd-pick"') == 0 and "3 message(s)" in page and "req-00000" in page
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.through, entry.username, entry.user.username) == ("dlq_peek", "ui", "peeker", "peeker")
    assert (entry.pipeline, entry.pipeline_name, entry.remote_addr) == (orders, "orders", "127.0.0.1")
    d = entry.detail
    assert (d["count_asked"], d["received"], d["bodies_shown"], d["error"]) == (3, 3, False, "")
    assert d["queue_url"] == orders.dlq_url and len(d["message_ids"]) == 3
    assert receive_counts(orders) == [0, 0, 1, 1, 1]

    reader = as_user("reader", "view_pipeline", "peek_dlq", "view_message_bodies")
    reader.post(dlq_url(orders), {"count": "2", "peek": "Peek"})
    assert AuditEntry.objects.filter(username="reader").get().detail["bodies_shown"] is True


def test_it_audits_a_peek_that_failed_with_its_error(as_user, db):
    account = AwsAccount.objects.create(name="down", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    p = Pipeline.objects.create(
        name="ghost",
        account=account,
        queue_url="http://127.0.0.1:9/123456789012/ghost",
        dlq_url="http://127.0.0.1:9/123456789012/ghost-dlq",
    )
    page = as_user("peeker", "view_pipeline", "peek_dlq").post(dlq_url(p), {"count": "5"})
    assert page.status_code == 200
    entry = AuditEntry.objects.get()
    assert entry.action == "dlq_peek" and entry.pipeline == p and entry.detail["received"] == 0
    assert "cannot reach the AWS endpoint" in entry.detail["error"]


# --- the migration grants peek_dlq to those who may redrive -------------------------------------------------


def test_it_grants_peek_to_users_and_groups_that_may_redrive_when_migrating(db):
    perms = Permission.objects.filter(content_type__app_label="pipelines")
    redrive, peek_perm = perms.get(codename="redrive_dlq"), perms.get(codename="peek_dlq")
    peek_perm.delete()  # as before the migration: it did not exist yet
    redrivers, viewers = Group.objects.create(name="redrivers"), Group.objects.create(name="viewers")
    redrivers.permissions.add(redrive)
    viewers.permissions.add(perms.get(codename="view_pipeline"))
    alice, bob = staff("alice", "redrive_dlq"), staff("bob", "view_pipeline")

    migration.grant_peek_to_redrivers(django_apps, connection.schema_editor())

    peek_perm = perms.get(codename="peek_dlq")
    assert peek_perm.name == "Can peek at a dead-letter queue (receives its messages)"
    # the "operator" group (a migration creates it with every team permission) may redrive too
    groups = peek_perm.group_set.exclude(name="operator")
    assert list(groups) == [redrivers] and list(peek_perm.user_set.all()) == [alice]
    assert User.objects.get(pk=alice.pk).has_perm("pipelines.peek_dlq")
    assert not User.objects.get(pk=bob.pk).has_perm("pipelines.peek_dlq")
    migration.grant_peek_to_redrivers(django_apps, connection.schema_editor())  # twice: no duplicates, no error
    assert groups.count() == 1

    migration.revoke_peek_from_redrivers(django_apps, connection.schema_editor())
    assert not peek_perm.group_set.exists() and not peek_perm.user_set.exists()


# --- those who may not read bodies see no value ------------------------------------------------------------


def message(body: str, **attributes) -> PeekedMessage:
    attrs = [(name, "String", value) for name, value in sorted(attributes.items())]
    sizes = {name: len(value.encode()) for name, value in attributes.items()}
    return PeekedMessage("m", body, None, 1, "", None, attrs, sizes)


def test_it_masks_a_body_to_its_kind_and_size():
    assert message(SECRET_TEXT).masked_preview() == "Text, 16 bytes"
    assert message(SECRET_JSON).masked_preview() == f"JSON object, 3 keys, {len(SECRET_JSON)} bytes"
    assert message('["hunter2", 2, 3]').masked_preview() == "JSON array, 3 items, 17 bytes"
    assert message('{"a": 1}').masked_preview() == "JSON object, 1 key, 8 bytes"


def test_it_masks_attribute_values_but_the_request_id():
    m = message("x", requestId="req-1", secret="hunter2")
    assert m.masked_attributes("requestId") == [
        {"name": "requestId", "type": "String", "value": "req-1", "size": "5 bytes"},
        {"name": "secret", "type": "String", "value": None, "size": "7 bytes"},
    ]


def test_it_shows_no_value_character_of_a_peeked_message_to_those_who_may_not_read_bodies(as_user, register, target):
    p = register("orders")
    sqs = aws.client(target, "sqs")
    for body in (SECRET_TEXT, SECRET_JSON):
        sqs.send_message(
            QueueUrl=p.dlq_url,
            MessageBody=body,
            MessageAttributes={
                p.request_id_attribute: {"DataType": "String", "StringValue": "req-visible"},
                "token": {"DataType": "String", "StringValue": "hunter2"},
            },
        )
    page = text(as_user("peeker", "view_pipeline", "peek_dlq").post(dlq_url(p), {"count": "5", "peek": "Peek"}))
    assert "2 message(s)" in page
    table = page.split('id="rd-messages"')[1].split("</table>")[0]
    cells = re.sub(r"<[^>]*>", " ", table.split(">", 1)[1])  # what the table says, without its markup
    for leak in ("hunter2", "password", "user", "4111", "•", "="):
        assert leak not in cells, leak
    assert "Text, 16 bytes" in page and f"JSON object, 3 keys, {len(SECRET_JSON)} bytes" in page
    assert '<strong>token</strong> <small class="rd-masked">(String, 7 bytes)</small>' in page
    assert page.count("req-visible") >= 2  # the request id stays: it names the trace
    shown = text(as_user("reader", "view_pipeline", "peek_dlq", "view_message_bodies").post(dlq_url(p), {"count": "5"}))
    assert "password=hunter2" in shown and ": hunter2" in shown
