"""A trace lookup's DLQ search is a receive: it needs peek_dlq as a peek does. Without it the lookup
searches the logs only and says the DLQ was not searched and why; with it each DLQ received from is
written to the audit trail."""

import uuid

import pytest
from django.urls import reverse

from pipelines.dlq import peek
from pipelines.models import AuditAction, AuditEntry, TraceLookup
from tests.redrive_support import fill
from tests.trace.test_trace import client_for, staff, text
from tests.trace.test_trace_dlq import dead_letter, failed_three_times

WHY = "the user who ran the lookup lacks the “Can peek at a dead-letter queue” permission"


@pytest.fixture
def orders(register):
    return register("orders", api=True)


def receive_counts(p) -> list[int]:
    """Each DLQ message's receive count before this look (which is itself one receive)."""
    return sorted(m.receive_count - 1 for m in peek.scan(p, 100).messages)


def trace(client, rid, p):
    res = client.post(reverse("admin:trace"), {"id": rid, "pipeline": p.pk, "hours": 24})
    assert res.status_code == 302, text(res)
    return TraceLookup.objects.latest("pk"), text(client.get(res["Location"]))


def test_it_searches_the_logs_but_not_the_dlq_for_a_user_who_may_not_peek(orders, target):
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    fill(target, orders.dlq_url, 4)
    dead_letter(target, orders, rid)
    entry, page = trace(client_for(staff("tracer", "lookup_trace")), rid, orders)
    assert entry.verdict == "dlq_unknown"  # the logs were searched: three failed attempts
    assert len([e for e in entry.summary["timeline"] if e["kind"] == "invocation"]) == 3
    assert WHY in entry.summary["headline"]
    assert receive_counts(orders) == [0] * 5  # the DLQ was not received from
    assert "Failed; DLQ unknown" in page and WHY in page and "not searched" in page
    assert "The DLQs were not searched" in page
    assert not AuditEntry.objects.filter(action=AuditAction.TRACE_DLQ_SCAN).exists()


def test_it_tells_a_user_who_may_not_peek_that_lookups_search_logs_only(orders):
    page = text(client_for(staff("tracer", "lookup_trace")).get(reverse("admin:trace")))
    assert "Your lookups search logs only" in page and "pipelines.peek_dlq" in page
    assert "Your lookups search logs only" not in text(
        client_for(staff("peeker", "lookup_trace", "peek_dlq")).get(reverse("admin:trace"))
    )


def test_it_searches_the_dlq_and_audits_it_for_a_user_who_may_peek(orders, target):
    rid = str(uuid.uuid4())
    failed_three_times(target, orders, rid)
    fill(target, orders.dlq_url, 4)
    dead_letter(target, orders, rid)
    entry, page = trace(client_for(staff("peeker", "lookup_trace", "peek_dlq")), rid, orders)
    assert entry.verdict == "dlq" and "In the dead-letter queue" in page
    audit = AuditEntry.objects.get(action=AuditAction.TRACE_DLQ_SCAN)
    assert (audit.action, audit.username, audit.pipeline, audit.remote_addr) == (
        "trace_dlq_scan",
        "peeker",
        orders,
        "127.0.0.1",
    )
    d = audit.detail
    assert (d["received"], d["complete"], d["found"], d["lookup"], d["ident"]) == (5, True, True, entry.pk, rid)
    assert d["queue_url"] == orders.dlq_url and d["error"] == ""
    assert receive_counts(orders) == [1] * 5


def test_it_writes_no_dlq_scan_entry_for_a_lookup_that_received_from_no_dlq(register):
    bare = register("bare", api=True, dlq=False)
    trace(client_for(staff("peeker", "lookup_trace", "peek_dlq")), "nothing-here", bare)
    assert not AuditEntry.objects.filter(action=AuditAction.TRACE_DLQ_SCAN).exists()
