"""The DLQ pages in the admin: who may see and do what, what each page says, and that bad input is a
message on the page (never a server error, never a half-done action)."""

import re

import pytest
from django.urls import reverse

from pipelines import aws
from pipelines.dlq import peek, runner, service, worker
from pipelines.dlq.filters import Filter
from pipelines.models import AwsAccount, Pipeline, RedriveTask, TraceLookup
from tests.redrive_support import counts, fill, read_all
from tests.users import staff


@pytest.fixture
def viewer(as_user):
    return as_user("viewer", "view_pipeline")


@pytest.fixture
def peeker(as_user):
    return as_user("peeker", "view_pipeline", "peek_dlq")


@pytest.fixture
def operator(as_user):
    # Those who may redrive may peek and delete (the migrations that made those permissions gave them all).
    return as_user("operator", "view_pipeline", "redrive_dlq", "peek_dlq", "delete_dlq_messages")


@pytest.fixture
def reader(as_user):
    return as_user("reader", "view_pipeline", "peek_dlq", "view_message_bodies")


@pytest.fixture
def body_operator(as_user):
    return as_user("body-operator", "view_pipeline", "redrive_dlq", "view_message_bodies")


@pytest.fixture
def orders(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 25)
    return p


def url(name, *args):
    return reverse(f"admin:pipelines_pipeline_{name}", args=args)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def start_form(token="t-1", **extra):
    return {
        "confirm": "1",
        "token": token,
        "destination": "source",
        "destination_url": "",
        "max_messages": "",
        "rate": "",
        "filter_kind": "",
        "filter_attribute": "",
        "filter_value": "",
        "ids": "",
        **extra,
    }


# --- the DLQ page and peeking --------------------------------------------------------------------------------


def test_it_shows_the_dlq_and_how_peeking_works(viewer, orders):
    page = text(viewer.get(url("dlq", orders.pk)))
    assert "orders-dlq" in page and "25</strong> visible" in page
    assert "it counts as a receive" in page
    assert "Redrive…" not in page and "Purge…" not in page  # no redrive permission, no buttons


def test_it_shows_bodies_only_to_those_allowed(peeker, reader, orders, target):
    shown = text(reader.post(url("dlq", orders.pk), {"count": "3", "peek": "Peek"}))
    assert shown.count('<pre class="rd-body">') == 3
    assert "{ &quot;order&quot;: 0," in shown and "req-00000" in shown and "attempt" in shown
    masked = text(peeker.post(url("dlq", orders.pk), {"count": "3", "peek": "Peek"}))
    assert '"order": 0' not in masked and "ü∑" not in masked and "req-00001" in masked
    assert "&quot;order&quot;" not in masked and "•" not in masked
    assert "JSON object, 3 keys, 38 bytes" in masked and "JSON object, 3 keys, 51 bytes" in masked
    assert '<strong>attempt</strong> <small class="rd-masked">(Number, 1 byte)</small>' in masked
    assert counts(target, orders.dlq_url)["visible"] == 25  # nothing consumed


def test_it_links_each_peeked_message_to_its_trace_for_those_who_may_trace(as_user, peeker, orders, target):
    plain = aws.client(target, "sqs").send_message(QueueUrl=orders.dlq_url, MessageBody="no request id")
    tracer = as_user("tracer", "view_pipeline", "peek_dlq", "lookup_trace")
    page = text(tracer.post(url("dlq", orders.pk), {"count": "30", "peek": "Peek"}))
    trace = reverse("admin:trace")
    assert f'href="{trace}?id=req-00000&amp;pipeline={orders.pk}&amp;hours=1"' in page
    # A message without a request id is traced by its message id.
    assert f'href="{trace}?id={plain["MessageId"]}&amp;pipeline={orders.pk}&amp;hours=1"' in page
    assert page.count(f'href="{trace}?') == 26
    # Following a link fills in the trace form; it runs nothing until the form is submitted.
    form = text(tracer.get(f"{trace}?id=req-00000&pipeline={orders.pk}&hours=1"))
    assert 'value="req-00000"' in form and not TraceLookup.objects.exists()
    assert trace not in text(peeker.post(url("dlq", orders.pk), {"count": "30", "peek": "Peek"}))


def test_it_says_when_a_pipeline_has_no_dlq(viewer, register):
    p = register("bare", dlq=False)
    assert "has no dead-letter queue" in text(viewer.get(url("dlq", p.pk)))


def test_it_shows_an_unreachable_endpoint_as_a_message(operator, db):
    account = AwsAccount.objects.create(name="down", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    p = Pipeline.objects.create(
        name="ghost",
        account=account,
        queue_url="http://127.0.0.1:9/123456789012/ghost",
        dlq_url="http://127.0.0.1:9/123456789012/ghost-dlq",
    )
    page = operator.get(url("dlq", p.pk))
    assert page.status_code == 200 and "cannot reach the AWS endpoint" in text(page)
    peek = operator.post(url("dlq", p.pk), {"count": "5"}, follow=True)
    assert peek.status_code == 200 and "cannot reach the AWS endpoint" in text(peek)
    confirm = operator.get(url("dlq_redrive", p.pk))
    assert confirm.status_code == 200 and 'id="rd-start" disabled' in text(confirm)


# --- permissions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, method",
    [
        ("dlq_redrive", "get"),
        ("dlq_redrive", "post"),
        ("dlq_delete", "post"),
        ("dlq_purge", "get"),
        ("dlq_purge", "post"),
    ],
)
def test_it_needs_the_redrive_permission_to_change_a_dlq(viewer, reader, orders, target, name, method):
    for client in (viewer, reader):
        data = {**start_form(), "ids": "x", "confirm_name": "orders-dlq"} if method == "post" else None
        assert getattr(client, method)(url(name, orders.pk), data).status_code == 403
    assert not RedriveTask.objects.exists() and counts(target, orders.dlq_url)["visible"] == 25


def test_it_shows_when_a_running_task_started_and_that_it_has_not_finished(operator, orders):
    task, _ = service.start_redrive(orders)
    pending = text(operator.get(url("dlq_task", orders.pk, task.pk)))
    assert '<dt>Started</dt><dd id="rd-started">not yet: waiting for a worker</dd>' in pending
    assert '<dt>Finished</dt><dd id="rd-finished">not yet</dd>' in pending
    claimed, token = runner.claim(task.pk)  # a worker takes it: running now
    task.refresh_from_db()
    started = f"{task.started_at:%Y-%m-%d %H:%M:%S} UTC"
    page = text(operator.get(url("dlq_task", orders.pk, task.pk)))
    assert (
        f'<dt>Started</dt><dd id="rd-started">{started}</dd>' in page
        and '<dt>Finished</dt><dd id="rd-finished">running</dd>' in page
    )
    row = text(operator.get(url("dlq", orders.pk)))
    assert f"<td>{task.started_at:%Y-%m-%d %H:%M:%S}</td> <td>running</td>" in row
    worker.Run(claimed, token).finish("completed")
    task.refresh_from_db()
    done = text(operator.get(url("dlq_task", orders.pk, task.pk)))
    assert f'<dt>Finished</dt><dd id="rd-finished">{task.finished_at:%Y-%m-%d %H:%M:%S} UTC</dd>' in done


def test_it_needs_the_redrive_permission_to_cancel(viewer, orders):
    task, _ = service.start_redrive(orders)
    assert viewer.post(url("dlq_task_cancel", orders.pk, task.pk)).status_code == 403
    task.refresh_from_db()
    assert task.status == "pending"


def test_it_needs_the_view_permission_to_see_a_dlq(as_user, orders):
    nobody = as_user("nobody")
    assert nobody.get(url("dlq", orders.pk)).status_code == 403


def test_it_needs_the_csrf_token(as_user, orders):
    client = as_user("careful", "view_pipeline", "redrive_dlq", csrf=True)
    assert client.post(url("dlq_redrive", orders.pk), start_form()).status_code == 403
    assert not RedriveTask.objects.exists()


# --- redrive through the pages ---------------------------------------------------------------------------------


def test_it_confirms_with_depth_destination_and_options(body_operator, orders):
    page = text(body_operator.get(url("dlq_redrive", orders.pk)))
    assert "25</strong> visible" in page and "The source queue: orders" in page
    for label in ("Max messages", "Rate (messages/s)", "Dry run", "Filter", "Request ids", "Body contains"):
        assert label in page
    assert re.search(r'name="token" value="[\w-]{20,}"', page)


def test_it_lets_an_operator_redrive_and_follow_the_progress(
    operator, orders, target, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        res = operator.post(url("dlq_redrive", orders.pk), start_form())
    task = RedriveTask.objects.get()
    assert res.status_code == 302 and res["Location"] == url("dlq_task", orders.pk, task.pk)
    assert (task.status, task.moved, task.requested_by_name) == ("completed", 25, "operator")
    page = text(operator.get(res["Location"]))
    assert "Done: 25 message(s) moved." in page and 'data-active="false"' in page
    progress = operator.get(url("dlq_task_progress", orders.pk, task.pk)).json()
    assert progress | {"status": "completed", "moved": 25, "percent": 100, "active": False} == progress
    assert counts(target, orders.queue_url)["visible"] == 25
    history = text(operator.get(url("dlq", orders.pk)))
    assert f"#{task.pk}" in history and "Completed" in history


def test_it_redrives_by_request_id_from_the_form(operator, orders, target, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        operator.post(
            url("dlq_redrive", orders.pk), start_form(filter_kind="request_ids", ids="req-00002\nreq-00004, req-00999")
        )
    task = RedriveTask.objects.get()
    assert (task.matched, task.moved, task.skipped, task.filter_attribute) == (2, 2, 23, "requestId")
    assert counts(target, orders.dlq_url)["visible"] == 23


def test_it_lists_what_a_dry_run_would_move(as_user, orders, target, eager, django_capture_on_commit_callbacks):
    lead = as_user("lead", "view_pipeline", "redrive_dlq", "peek_dlq", "view_message_bodies")
    with django_capture_on_commit_callbacks(execute=True):
        res = lead.post(
            url("dlq_redrive", orders.pk),
            start_form(dry_run="on", filter_kind="attribute", filter_attribute="attempt", filter_value="2"),
        )
    page = text(lead.get(res["Location"]))
    assert "Dry run: 6 of 25 sampled message(s) would move; nothing was moved." in page
    assert "Sampled messages: 6 of 25 would move" in page and "req-00002" in page
    assert counts(target, orders.queue_url)["visible"] == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"destination": "other", "destination_url": "{emulator}/123456789012/ghost"}, "No queue exists at"),
        ({"destination": "other", "destination_url": ""}, "Give the URL of the queue"),
        (
            {"destination": "other", "destination_url": "{emulator}/123456789012/orders-dlq"},
            "the dead-letter queue itself",
        ),
        ({"rate": "501"}, "less than or equal to 500"),
        ({"filter_kind": "request_ids", "ids": " "}, "Give at least one id"),
        ({"filter_kind": "body", "filter_value": ""}, "Give the text the message bodies must contain"),
    ],
)
def test_it_shows_bad_input_as_a_message_and_starts_nothing(body_operator, orders, target, emulator, extra, message):
    data = start_form(**{k: v.format(emulator=emulator.url) for k, v in extra.items()})
    res = body_operator.post(url("dlq_redrive", orders.pk), data, follow=True)
    assert res.status_code == 200 and message in text(res)
    assert not RedriveTask.objects.exists() and counts(target, orders.dlq_url)["visible"] == 25


def test_it_refuses_a_fifo_destination_for_a_standard_dlq_on_the_page(operator, orders, register):
    fifo = register("payments", fifo=True)
    res = operator.post(url("dlq_redrive", orders.pk), start_form(destination="other", destination_url=fifo.queue_url))
    assert "is a FIFO queue: messages can only be redriven between queues of the same type" in text(res)
    assert not RedriveTask.objects.exists()


def test_it_starts_one_task_on_a_double_click(operator, orders):
    first = operator.post(url("dlq_redrive", orders.pk), start_form(token="same"))
    second = operator.post(url("dlq_redrive", orders.pk), start_form(token="same"), follow=True)
    task = RedriveTask.objects.get()
    assert first["Location"] == url("dlq_task", orders.pk, task.pk)
    assert "This form was already submitted" in text(second)


def test_it_refuses_a_second_redrive_while_one_is_active(operator, orders):
    operator.post(url("dlq_redrive", orders.pk), start_form(token="a"))
    first = RedriveTask.objects.get()
    res = operator.post(url("dlq_redrive", orders.pk), start_form(token="b"), follow=True)
    page = text(res)
    assert "Another task is already active on this dead-letter queue" in page
    assert f'href="{url("dlq_task", orders.pk, first.pk)}"' in page
    assert RedriveTask.objects.count() == 1


def test_it_cancels_a_pending_task_from_its_page(operator, orders):
    task, _ = service.start_redrive(orders)
    res = operator.post(url("dlq_task_cancel", orders.pk, task.pk), follow=True)
    task.refresh_from_db()
    assert task.status == "cancelled" and task.cancelled_by_name == "operator"
    assert "Cancelled" in text(res)
    assert operator.get(url("dlq_task_cancel", orders.pk, task.pk)).status_code == 405


# --- deleting and purging: typed confirmation, audited ------------------------------------------------------------


def test_it_deletes_chosen_messages_once_the_queue_name_is_typed(
    operator, orders, target, eager, django_capture_on_commit_callbacks
):
    ids = [m.id for m in peek.peek(orders, 3)]
    confirm = text(operator.post(url("dlq_delete", orders.pk), {"ids": ids}))
    assert "Type the queue name" in confirm and all(i in confirm for i in ids)
    wrong = text(operator.post(url("dlq_delete", orders.pk), {"ids": ids, "confirm": "1", "confirm_name": "orders"}))
    assert "exactly to confirm. Nothing was deleted." in wrong and not RedriveTask.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        res = operator.post(
            url("dlq_delete", orders.pk), {"ids": ids, "confirm": "1", "confirm_name": "orders-dlq", "token": "d-1"}
        )
    task = RedriveTask.objects.get()
    assert res.status_code == 302 and (task.operation, task.moved, task.requested_by_name) == ("delete", 3, "operator")
    assert counts(target, orders.dlq_url)["visible"] == 22
    assert not {m["MessageId"] for m in read_all(target, orders.dlq_url)} & set(ids)


def test_it_says_when_nothing_was_chosen_to_delete(operator, orders):
    res = operator.post(url("dlq_delete", orders.pk), {}, follow=True)
    assert "Choose the messages to delete first" in text(res)


def test_it_purges_once_the_queue_name_is_typed_and_records_it(operator, orders, target):
    assert "deletes <strong>every</strong> message" in text(operator.get(url("dlq_purge", orders.pk)))
    wrong = text(operator.post(url("dlq_purge", orders.pk), {"confirm_name": "nope"}))
    assert "Nothing was purged" in wrong and counts(target, orders.dlq_url)["visible"] == 25
    res = operator.post(url("dlq_purge", orders.pk), {"confirm_name": "orders-dlq", "token": "p-1"}, follow=True)
    assert "Purged orders-dlq" in text(res)
    task = RedriveTask.objects.get()
    assert (task.operation, task.status, task.matched, task.requested_by_name) == ("purge", "completed", 25, "operator")
    assert counts(target, orders.dlq_url)["visible"] == 0


# --- the admin action and the task list -----------------------------------------------------------------------


def test_it_confirms_the_redrive_action_then_starts_one_task_per_dlq(as_user, orders, register, target):
    client = as_user("lead", "view_pipeline", "change_pipeline", "redrive_dlq")
    bare = register("bare", dlq=False)
    changelist = reverse("admin:pipelines_pipeline_changelist")
    data = {"action": "redrive_dlq", "_selected_action": [orders.pk, bare.pk]}
    confirm = text(client.post(changelist, data))
    assert "Redrive the dead-letter queues of the selected pipelines" in confirm and "25 (+0 in flight)" in confirm
    res = client.post(
        changelist, {**data, "confirm": "1", "token": "bulk-1", "max_messages": "", "rate": "10"}, follow=True
    )
    page = text(res)
    task = RedriveTask.objects.get()
    assert "Started 1 redrive(s)" in page and "Bare: no dead-letter queue." in page
    assert (task.pipeline, task.rate, task.requested_by_name) == (orders, 10, "lead")


def test_it_offers_the_redrive_action_only_with_the_permission(as_user, orders):
    changelist = reverse("admin:pipelines_pipeline_changelist")
    plain = as_user("plain", "view_pipeline", "change_pipeline")
    assert 'value="redrive_dlq"' not in plain.get(changelist).content.decode()
    lead = as_user("lead", "view_pipeline", "change_pipeline", "redrive_dlq")
    assert 'value="redrive_dlq"' in lead.get(changelist).content.decode()


def test_it_keeps_a_read_only_history(admin_client, orders):
    task, _ = service.start_redrive(orders)
    task.request_cancel("admin")
    page = text(admin_client.get(reverse("admin:pipelines_redrivetask_changelist")))
    assert f'href="{url("dlq_task", orders.pk, task.pk)}"' in page and "Cancelled" in page
    assert admin_client.get(reverse("admin:pipelines_redrivetask_add")).status_code == 403


# --- body filters need the permission to read bodies ----------------------------------------------------------


def test_it_offers_the_body_filter_only_to_those_who_may_read_bodies(operator, as_user, orders):
    assert "Body contains" not in text(operator.get(url("dlq_redrive", orders.pk)))
    both = as_user("both", "view_pipeline", "redrive_dlq", "view_message_bodies")
    assert "Body contains" in text(both.get(url("dlq_redrive", orders.pk)))


def test_it_refuses_a_body_filter_dry_run_from_a_user_who_may_not_read_bodies(operator, orders, target):
    data = start_form(dry_run="on", filter_kind="body", filter_value="password=hunter2")
    res = operator.post(url("dlq_redrive", orders.pk), data, follow=True)
    assert res.status_code == 200 and "Select a valid choice" in text(res)
    assert not RedriveTask.objects.exists()


def test_it_refuses_an_attribute_value_filter_from_a_user_who_may_not_read_bodies(operator, as_user, orders):
    # Attribute values are masked like bodies, so a dry run's match count must not reveal them either.
    assert "Attribute equals" not in text(operator.get(url("dlq_redrive", orders.pk)))
    data = start_form(dry_run="on", filter_kind="attribute", filter_attribute="tenant", filter_value="acme")
    res = operator.post(url("dlq_redrive", orders.pk), data, follow=True)
    assert res.status_code == 200 and "Select a valid choice" in text(res)
    user = staff("redriver2", "view_pipeline", "redrive_dlq")
    with pytest.raises(service.RedriveError, match="attribute values needs the permission"):
        service.start_redrive(orders, user, flt=Filter("attribute", "tenant", "acme"), dry_run=True)
    assert not RedriveTask.objects.exists()


def test_it_refuses_a_body_filter_in_the_service_without_the_permission(as_user, orders):
    user = staff("redriver", "view_pipeline", "redrive_dlq")
    with pytest.raises(service.RedriveError, match="view message bodies"):
        service.start_redrive(orders, user, flt=Filter("body", value="password=hunter2"), dry_run=True)
    assert not RedriveTask.objects.exists()
    reader = staff("bodyreader", "view_pipeline", "redrive_dlq", "view_message_bodies")
    task, created = service.start_redrive(orders, reader, flt=Filter("body", value="password"), dry_run=True)
    assert created and task.filter_kind == "body"


# --- a huge maximum is a message, not a server error -------------------------------------------------------------


def test_it_refuses_an_absurd_maximum_on_the_redrive_page(operator, orders, target):
    res = operator.post(url("dlq_redrive", orders.pk), start_form(max_messages=str(10**20)), follow=True)
    assert res.status_code == 200 and "At most 10,000,000 messages per task" in text(res)
    assert not RedriveTask.objects.exists() and counts(target, orders.dlq_url)["visible"] == 25


def test_it_refuses_an_absurd_maximum_in_the_redrive_action(as_user, orders):
    client = as_user("lead", "view_pipeline", "change_pipeline", "redrive_dlq")
    changelist = reverse("admin:pipelines_pipeline_changelist")
    data = {"action": "redrive_dlq", "_selected_action": [orders.pk], "confirm": "1", "token": "bulk-1"}
    res = client.post(changelist, {**data, "max_messages": str(10**20), "rate": ""}, follow=True)
    assert res.status_code == 200 and "At most 10,000,000 messages per task" in text(res)
    assert not RedriveTask.objects.exists()


def test_it_refuses_an_absurd_maximum_in_the_service(orders):
    with pytest.raises(service.RedriveError, match="At most 10,000,000"):
        service.start_redrive(orders, max_messages=10**20)
    assert not RedriveTask.objects.exists()
