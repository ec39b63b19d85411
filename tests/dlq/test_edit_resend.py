"""Edit & resend: a DLQ message corrected and sent to the source queue, the original deleted only once the
copy was accepted, and every refusal or failure leaving the original in the DLQ."""

import json
import re

import pytest
from django.urls import reverse

from pipelines import aws
from pipelines.dlq import edit, peek
from pipelines.dlq.queues import RedriveError
from pipelines.models import AuditEntry
from tests.redrive_support import counts, fill, read_all


@pytest.fixture
def orders(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 12)
    return p


@pytest.fixture
def editor(as_user):
    return as_user("editor", "view_pipeline", "redrive_dlq", "view_message_bodies")


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def order_id(pipeline, order: int) -> str:
    return next(m.id for m in peek.scan(pipeline, 100).messages if json.loads(m.body)["order"] == order)


def edit_url(pipeline, mid: str) -> str:
    return reverse("admin:pipelines_pipeline_dlq_message_edit", args=[pipeline.pk, mid])


def fixed_body(page: str) -> str:
    """The body the editor shows, with its note corrected."""
    body = re.search(r'<textarea id="rd-edit-body"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    return body.replace("&quot;", '"').replace("&#x27;", "'").replace('"note": "ok"', '"note": "fixed"')


# --- pure ------------------------------------------------------------------------------------------------------


def test_it_sends_json_compact_and_an_unchanged_value_as_it_was():
    original = '{"order": 1, "note": "ok"}'
    assert edit.body_to_send(original, '{\r\n  "order": 1,\r\n  "note": "ok"\r\n}') == original
    assert edit.body_to_send(original, '{\n  "order": 1,\n  "note": "fixed"\n}') == '{"order":1,"note":"fixed"}'
    assert edit.body_to_send("line one\nline two", "line one\r\nline 2") == "line one\nline 2"
    with pytest.raises(RedriveError, match="not valid JSON"):
        edit.body_to_send(original, '{"order": 1,')


def test_it_refuses_a_copy_that_would_need_an_eleventh_attribute():
    attrs = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)}
    with pytest.raises(RedriveError, match="already has 10 message attributes"):
        edit.copy_attributes({"MessageAttributes": attrs}, "who")
    # An earlier edit's marker is replaced, not added to.
    nine = dict(list(attrs.items())[:9]) | {edit.MARKER: {"DataType": "String", "StringValue": "before"}}
    assert edit.copy_attributes({"MessageAttributes": nine}, "now")[edit.MARKER]["StringValue"] == "now"


# --- on the emulator --------------------------------------------------------------------------------------------


def test_it_shows_a_button_on_get_and_receives_nothing(editor, orders, target):
    mid = order_id(orders, 4)
    page = text(editor.get(edit_url(orders, mid)))
    assert 'value="Load the message"' in page and "rd-edit-body" not in page
    assert not AuditEntry.objects.exists()
    assert {int(m["Attributes"]["ApproximateReceiveCount"]) for m in read_all(target, orders.dlq_url)} == {2}


def test_it_sends_the_edited_copy_and_deletes_the_original(editor, orders, target):
    mid = order_id(orders, 4)
    loaded = text(editor.post(edit_url(orders, mid), {"load": "1"}))
    assert "&quot;order&quot;: 4," in loaded and "requestId" in loaded  # pretty-printed JSON, attributes
    assert counts(target, orders.dlq_url)["visible"] == 12  # loading released it again
    res = editor.post(edit_url(orders, mid), {"send": "1", "body": fixed_body(loaded)}, follow=True)
    assert "Sent the edited message to the source queue" in text(res)
    [copy] = read_all(target, orders.queue_url)
    assert json.loads(copy["Body"]) == {"order": 4, "note": "fixed", "text": "ü∑ ü∑ ü∑ ü∑ "}
    attrs = copy["MessageAttributes"]
    assert attrs["requestId"]["StringValue"] == "req-00004" and attrs["attempt"]["StringValue"] == "0"
    assert bytes(attrs["blob"]["BinaryValue"]) == bytes([4, 0, 255])
    assert re.fullmatch(rf"editor at \d{{4}}-\d\d-\d\dT[\d:]+\+00:00, from {mid}", attrs[edit.MARKER]["StringValue"])
    left = read_all(target, orders.dlq_url)
    assert len(left) == 11 and mid not in {m["MessageId"] for m in left}
    entry = AuditEntry.objects.get(action="dlq_edit_resend")
    assert entry.detail["sent"] and entry.detail["deleted"] and entry.detail["new_message_id"] == copy["MessageId"]
    assert '-  "note": "ok",' in entry.detail["diff"] and '+  "note": "fixed",' in entry.detail["diff"]
    assert AuditEntry.objects.filter(action="dlq_peek", detail__purpose="edit & resend").count() == 1


def test_it_sends_nothing_and_deletes_nothing_when_the_json_is_invalid(editor, orders, target):
    mid = order_id(orders, 2)
    page = text(editor.post(edit_url(orders, mid), {"send": "1", "body": '{"order": 2, "note": '}))
    assert "The body is not valid JSON" in page and "Nothing was sent." in page
    assert 'name="body"' in page  # the editor again, with what was typed
    assert counts(target, orders.queue_url)["visible"] == 0
    assert counts(target, orders.dlq_url) == {"visible": 12, "in_flight": 0, "delayed": 0}  # released at once
    assert not AuditEntry.objects.get(action="dlq_edit_resend").detail["sent"]


def test_it_leaves_the_original_in_the_dlq_when_the_send_fails(editor, orders, target):
    mid = order_id(orders, 5)
    aws.client(target, "sqs").delete_queue(QueueUrl=orders.queue_url)
    page = text(editor.post(edit_url(orders, mid), {"send": "1", "body": '{"order": 5}'}))
    assert "The copy was not sent: No queue exists at" in page and "The original stays in the DLQ." in page
    assert counts(target, orders.dlq_url) == {"visible": 12, "in_flight": 0, "delayed": 0}
    assert mid in {m["MessageId"] for m in read_all(target, orders.dlq_url)}
    entry = AuditEntry.objects.get(action="dlq_edit_resend")
    assert (entry.detail["sent"], entry.detail["deleted"]) == (False, False) and '+  "order": 5' in entry.detail["diff"]


def test_it_refuses_a_message_with_ten_attributes_and_keeps_it(editor, orders, target):
    attrs = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    mid = aws.client(target, "sqs").send_message(QueueUrl=orders.dlq_url, MessageBody="text", MessageAttributes=attrs)[
        "MessageId"
    ]
    assert 'id="rd-too-many"' in text(editor.post(edit_url(orders, mid), {"load": "1"}))
    page = text(editor.post(edit_url(orders, mid), {"send": "1", "body": "new text"}))
    assert "already has 10 message attributes" in page
    assert counts(target, orders.queue_url)["visible"] == 0 and counts(target, orders.dlq_url)["visible"] == 13


def test_it_keeps_the_group_and_gives_a_new_deduplication_id_on_a_fifo_queue(editor, register, target):
    payments = register("payments", fifo=True)
    fill(target, payments.dlq_url, 3, fifo=True)
    mid = order_id(payments, 1)
    editor.post(edit_url(payments, mid), {"send": "1", "body": '{"order": 1, "note": "fixed"}'})
    [copy] = read_all(target, payments.queue_url)
    assert copy["Attributes"]["MessageGroupId"] == "g1"
    assert copy["Attributes"]["MessageDeduplicationId"].startswith("edit-")
    assert json.loads(copy["Body"])["note"] == "fixed" and counts(target, payments.dlq_url)["visible"] == 2


def test_it_says_when_the_message_is_not_in_the_dlq(editor, orders, target):
    page = text(editor.post(edit_url(orders, "no-such-id"), {"send": "1", "body": "{}"}))
    assert "was not found among the 12 message(s) examined" in page
    assert counts(target, orders.queue_url)["visible"] == 0 and counts(target, orders.dlq_url)["visible"] == 12


@pytest.mark.parametrize(
    "perms", [("view_pipeline", "peek_dlq", "redrive_dlq"), ("view_pipeline", "peek_dlq", "view_message_bodies")]
)
def test_it_needs_both_the_redrive_and_the_bodies_permissions(as_user, orders, target, perms):
    client = as_user("someone", *perms)
    mid = order_id(orders, 1)
    assert client.get(edit_url(orders, mid)).status_code == 403
    assert client.post(edit_url(orders, mid), {"send": "1", "body": "{}"}).status_code == 403
    assert counts(target, orders.queue_url)["visible"] == 0 and not AuditEntry.objects.exists()
