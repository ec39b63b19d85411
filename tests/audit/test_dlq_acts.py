"""DLQ actions on the audit trail: each redrive, dry run, deletion, purge and cancellation writes one
entry, with who, from where, through what, and the task's facts; a double submit writes none more."""

import pytest
from django.test import Client
from django.urls import reverse

from pipelines.dlq import peek, service
from pipelines.models import AuditAction, AuditEntry, AuditThrough, RedriveTask
from tests.audit.support import ADDRESS, only, who
from tests.redrive_support import fill
from tests.users import staff


@pytest.fixture
def operator(db):
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(staff("operator", "view_pipeline", "redrive_dlq", "peek_dlq", "delete_dlq_messages"))
    return client


@pytest.fixture
def orders(register, target):
    p = register("orders")
    fill(target, p.dlq_url, 6)
    return p


def url(name, *args):
    return reverse(f"admin:pipelines_pipeline_{name}", args=args)


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


def test_it_audits_a_redrive_once_however_often_the_form_is_sent(operator, orders):
    assert operator.post(url("dlq_redrive", orders.pk), start_form(max_messages="4")).status_code == 302
    operator.post(url("dlq_redrive", orders.pk), start_form(max_messages="4"))  # a double click
    task = RedriveTask.objects.get()
    entry = only(AuditAction.DLQ_REDRIVE)
    assert who(entry) == ("dlq_redrive", "ui", "operator", "orders", ADDRESS)
    assert entry.pipeline == orders
    d = entry.detail
    assert (d["task"], d["dry_run"], d["max_messages"], d["depth"]) == (task.pk, False, 4, 6)
    assert d["queue_url"] == orders.dlq_url and d["destination"] == orders.queue_url
    assert d["filter"] == "all messages" and d["engine"] == task.engine


def test_it_audits_a_dry_run_as_a_redrive_that_moves_nothing(operator, orders):
    operator.post(url("dlq_redrive", orders.pk), start_form(dry_run="on"))
    assert only(AuditAction.DLQ_REDRIVE).detail["dry_run"] is True


def test_it_audits_nothing_for_a_redrive_it_refused(operator, orders):
    page = operator.post(url("dlq_redrive", orders.pk), start_form(destination="other", destination_url="nope"))
    assert page.status_code == 200 and not RedriveTask.objects.exists()
    assert not AuditEntry.objects.exists()


def test_it_audits_a_deletion_with_how_many_messages_were_chosen(operator, orders):
    ids = [m.id for m in peek.peek(orders, 2)]
    form = {"ids": ids, "confirm": "1", "confirm_name": "orders-dlq", "token": "d-1"}
    assert operator.post(url("dlq_delete", orders.pk), form).status_code == 302
    entry = only(AuditAction.DLQ_DELETE)
    assert who(entry) == ("dlq_delete", "ui", "operator", "orders", ADDRESS)
    assert entry.detail["filter"] == "2 message id(s)" and entry.detail["task"] == RedriveTask.objects.get().pk
    assert "dry_run" not in entry.detail


def test_it_audits_a_purge(operator, orders):
    operator.post(url("dlq_purge", orders.pk), {"confirm_name": "orders-dlq", "token": "p-1"})
    operator.post(url("dlq_purge", orders.pk), {"confirm_name": "orders-dlq", "token": "p-1"})  # again
    entry = only(AuditAction.DLQ_PURGE)
    assert who(entry) == ("dlq_purge", "ui", "operator", "orders", ADDRESS)
    assert entry.detail["depth"] == 6 and entry.detail["task"] == RedriveTask.objects.get().pk


def test_it_audits_a_cancellation_only_when_the_task_was_still_running(operator, orders):
    task, _ = service.start_redrive(orders)  # no user: a process
    operator.post(url("dlq_task_cancel", orders.pk, task.pk))
    operator.post(url("dlq_task_cancel", orders.pk, task.pk))  # already cancelled: nothing to audit
    entry = only(AuditAction.DLQ_CANCEL)
    assert who(entry) == ("dlq_cancel", "ui", "operator", "orders", ADDRESS)
    assert (entry.detail["task"], entry.detail["operation"]) == (task.pk, "redrive")
    started = only(AuditAction.DLQ_REDRIVE)
    assert (started.user, started.username, started.remote_addr) == (None, "", None)


def test_it_says_when_an_act_came_through_the_api(orders):
    user = staff("robot", "redrive_dlq")
    task, _ = service.start_redrive(orders, user, remote_addr="2001:db8::5", through=AuditThrough.API)
    service.cancel(task, user, remote_addr="2001:db8::5", through=AuditThrough.API)
    for action in (AuditAction.DLQ_REDRIVE, AuditAction.DLQ_CANCEL):
        assert who(only(action)) == (action, "api", "robot", "orders", "2001:db8::5")
