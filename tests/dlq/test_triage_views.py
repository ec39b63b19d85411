"""The DLQ triage page: who sees what of a scan's groups, who may start a scan, its progress as JSON,
and that a missing DLQ, a running scan or an unknown scan is a message or a 404, never a server error."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from pipelines import clock
from pipelines.models import AuditEntry, AwsAccount, GroupKind, Pipeline, TriageGroup, TriageScan, TriageStatus
from tests.redrive_support import fill

ALL_PERMS = ("view_pipeline", "peek_dlq", "lookup_trace", "redrive_dlq", "delete_dlq_messages", "view_message_bodies")
SECRET_LINE = "KeyError: 'customer_id' while handling order 4242 for ann@example.com"


@pytest.fixture
def orders(db):
    account = AwsAccount.objects.create(name="offline", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://127.0.0.1:9/123456789012/orders",
        dlq_url="http://127.0.0.1:9/123456789012/orders-dlq",
    )


def scan_of(p, groups: dict[str, int], ago_minutes=0, status=TriageStatus.COMPLETED, **fields) -> TriageScan:
    """A stored scan of `p` with one group per (signature: count), named after its signature."""
    at = clock.now() - timedelta(minutes=ago_minutes)
    scan = TriageScan.objects.create(
        pipeline=p,
        status=status,
        requested_by_name="ann",
        created_at=at,
        finished_at=at if status == TriageStatus.COMPLETED else None,
        heartbeat_at=at,
        cap=10_000,
        depth_at_start=fields.pop("depth_at_start", sum(groups.values())),
        examined=fields.pop("examined", sum(groups.values())),
        complete=fields.pop("complete", status == TriageStatus.COMPLETED),
        sqs_calls=12,
        log_calls=3,
        **fields,
    )
    earlier = TriageScan.objects.filter(pipeline=p, status=TriageStatus.COMPLETED, pk__lt=scan.pk).first()
    before = {g.signature: g.count for g in earlier.groups.all()} if earlier else {}
    for sig, n in groups.items():
        TriageGroup.objects.create(
            scan=scan,
            signature=sig,
            kind=GroupKind.ERROR,
            title=f"{sig} in handler",
            count=n,
            first_sent=at - timedelta(hours=3),
            last_sent=at - timedelta(hours=1),
            receive_min=3,
            receive_max=5,
            receive_total=4 * n,
            sample_error=SECRET_LINE if sig == "KeyError" else f"{sig}: failed",
            sample_traceback='Traceback (most recent call last):\n  File "handler.py", line 12',
            sample_message_ids=[f"msg-{sig}-1", f"msg-{sig}-2"],
            request_ids=[f"req-{sig}-1"],
            previous_count=before.get(sig),
        )
    return scan


def url(name, *args):
    return reverse(f"admin:pipelines_pipeline_{name}", args=args)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_it_shows_the_groups_of_the_latest_scan_with_shares_and_trends(as_user, orders):
    scan_of(orders, {"KeyError": 1250, "TimeoutError": 1200}, ago_minutes=90)
    latest = scan_of(orders, {"KeyError": 1000, "TimeoutError": 1200, "ValueError": 300}, ago_minutes=5)
    page = text(as_user("ann", *ALL_PERMS).get(url("dlq_triage", orders.pk)))
    assert f"Latest scan #{latest.pk}" in page and "2500 of 2500" in page.replace(",", "")
    assert "3 failure groups" in page
    row = re.search(r'data-signature="KeyError">(.*?)</tr>', page).group(1)
    assert ">1,000<" in row and "40 %" in row and "was 1,250" in row
    row = re.search(r'data-signature="TimeoutError">(.*?)</tr>', page).group(1)
    assert "48 %" in row and "still 1,200" in row
    row = re.search(r'data-signature="ValueError">(.*?)</tr>', page).group(1)
    assert "12 %" in row and ">new<" in row
    assert "12 SQS calls, 3 CloudWatch Logs calls" in page and "Complete: every message" in page


def test_it_says_first_scan_instead_of_new_when_there_is_nothing_to_compare_with(as_user, orders):
    scan_of(orders, {"KeyError": 10})
    page = text(as_user("ann", *ALL_PERMS).get(url("dlq_triage", orders.pk)))
    assert "first scan" in page and ">new<" not in page


def test_it_hides_the_scan_button_and_refuses_a_scan_to_a_user_who_may_not_peek(as_user, orders):
    scan_of(orders, {"KeyError": 7})
    viewer = as_user("viewer", "view_pipeline")
    page = viewer.get(url("dlq_triage", orders.pk))
    assert page.status_code == 200
    body = text(page)
    assert 'id="tr-scan"' not in body and "pipelines.peek_dlq" in body
    # Titles and counts, no samples.
    assert "KeyError in handler" in body and ">7<" in body
    assert "msg-KeyError-1" not in body and "req-KeyError-1" not in body and "customer_id" not in body
    assert viewer.post(url("dlq_triage", orders.pk)).status_code == 403
    assert TriageScan.objects.count() == 1


def test_it_shows_no_failure_lines_or_trace_links_without_the_trace_permission(as_user, orders):
    scan_of(orders, {"KeyError": 7})
    peeker = text(as_user("peeker", "view_pipeline", "peek_dlq").get(url("dlq_triage", orders.pk)))
    assert "msg-KeyError-1" in peeker  # sample message ids: a peeker may see them
    assert "customer_id" not in peeker and "Traceback" not in peeker and "req-KeyError-1" not in peeker
    assert reverse("admin:trace") not in peeker
    tracer = text(as_user("tracer", "view_pipeline", "peek_dlq", "lookup_trace").get(url("dlq_triage", orders.pk)))
    assert "customer_id" in tracer and "Traceback" in tracer
    assert f"{reverse('admin:trace')}?id=req-KeyError-1&amp;pipeline={orders.pk}&amp;hours=" in tracer
    # Tracing without peeking: still titles and counts only.
    no_peek = text(as_user("no-peek", "view_pipeline", "lookup_trace").get(url("dlq_triage", orders.pk)))
    assert "KeyError in handler" in no_peek and "customer_id" not in no_peek and "req-KeyError-1" not in no_peek


def test_it_shows_each_group_action_only_to_those_who_hold_its_permission(as_user, orders):
    scan_of(orders, {"KeyError": 7})
    peeker = text(as_user("peeker", "view_pipeline", "peek_dlq").get(url("dlq_triage", orders.pk)))
    assert "Search in this group" in peeker and "Show these messages" in peeker
    assert "Redrive this group" not in peeker and "Delete this group" not in peeker and "Export" not in peeker
    redriver = as_user("operator", "view_pipeline", "peek_dlq", "redrive_dlq")
    operator = text(redriver.get(url("dlq_triage", orders.pk)))
    assert "Redrive this group" in operator and "Delete this group" not in operator  # deleting: its own permission
    deleter = as_user("deleter", "view_pipeline", "peek_dlq", "delete_dlq_messages")
    assert "Delete this group" in text(deleter.get(url("dlq_triage", orders.pk)))
    assert "Export this group" not in operator
    everyone = text(as_user("ann", *ALL_PERMS).get(url("dlq_triage", orders.pk)))
    assert "Export this group" in everyone


def test_it_never_starts_a_scan_on_a_get(as_user, orders):
    scan_of(orders, {"KeyError": 7})
    client = as_user("ann", *ALL_PERMS)
    for page in (url("dlq_triage", orders.pk), url("dlq_triage_scan", orders.pk, TriageScan.objects.get().pk)):
        assert client.get(page).status_code == 200
    assert TriageScan.objects.count() == 1 and not AuditEntry.objects.exists()


def test_it_answers_404_for_an_unknown_scan_or_one_of_another_pipeline(as_user, orders):
    other = Pipeline.objects.create(name="other", account=orders.account, queue_url=orders.queue_url + "-2")
    foreign = scan_of(other, {"KeyError": 1})
    client = as_user("ann", *ALL_PERMS)
    for scan_id in (foreign.pk, 99999):
        assert client.get(url("dlq_triage_scan", orders.pk, scan_id)).status_code == 404
        assert client.get(url("dlq_triage_progress", orders.pk, scan_id)).status_code == 404


def test_it_refuses_the_page_to_a_user_who_may_not_view_pipelines(as_user, orders):
    assert as_user("nobody").get(url("dlq_triage", orders.pk)).status_code == 403


def test_it_reports_a_scans_progress_as_json(as_user, orders):
    client = as_user("viewer", "view_pipeline")
    running = scan_of(orders, {}, status=TriageStatus.RUNNING, examined=30, depth_at_start=120)
    assert client.get(url("dlq_triage_progress", orders.pk, running.pk)).json() == {
        "status": "running",
        "status_label": "Scanning",
        "colour": TriageStatus.RUNNING.colour,
        "examined": 30,
        "depth": 120,
        "percent": 25,
        "done": False,
    }
    TriageScan.objects.filter(pk=running.pk).update(depth_at_start=None)
    assert client.get(url("dlq_triage_progress", orders.pk, running.pk)).json()["percent"] is None
    TriageScan.objects.filter(pk=running.pk).update(status=TriageStatus.COMPLETED)
    done = client.get(url("dlq_triage_progress", orders.pk, running.pk)).json()
    assert done["done"] is True and done["percent"] == 100


def test_it_shows_a_running_scans_progress_bar_on_the_page(as_user, orders):
    running = scan_of(orders, {}, status=TriageStatus.RUNNING, examined=30, depth_at_start=120)
    page = text(as_user("ann", *ALL_PERMS).get(url("dlq_triage", orders.pk)))
    assert url("dlq_triage_progress", orders.pk, running.pk) in page and 'id="tr-bar" style="width:25%"' in page
    assert 'id="tr-scan" value="Scan the DLQ" disabled' in page


def test_it_says_why_a_pipeline_without_a_dlq_cannot_be_scanned(as_user, orders):
    Pipeline.objects.filter(pk=orders.pk).update(dlq_url="", dlq_arn="")
    client = as_user("ann", *ALL_PERMS)
    page = client.post(url("dlq_triage", orders.pk), follow=True)
    assert page.status_code == 200 and "dead-letter queue" in text(page)
    assert not TriageScan.objects.exists()
    assert "no dead-letter queue" in text(client.get(url("dlq_triage", orders.pk)))


def test_it_says_a_scan_is_already_running_instead_of_starting_another(as_user, orders):
    scan_of(orders, {}, status=TriageStatus.RUNNING)
    page = as_user("ann", *ALL_PERMS).post(url("dlq_triage", orders.pk), follow=True)
    assert page.status_code == 200 and "A scan of this dead-letter queue is already scanning" in text(page)
    assert TriageScan.objects.count() == 1


def test_it_says_what_a_partial_scan_missed_and_why_the_last_scan_failed(as_user, orders):
    missing = "The log group /aws/lambda/orders-consumer does not exist: messages are grouped by body shape."
    scan_of(
        orders,
        {"KeyError": 60},
        ago_minutes=30,
        complete=False,
        stopped="time",
        left=40,
        depth_at_start=100,
        sources=[{"source": "consumer log /aws/lambda/orders-consumer", "ok": False, "message": missing}],
    )
    scan_of(orders, {}, status=TriageStatus.FAILED, error="The scan failed: the DLQ does not exist.")
    page = text(as_user("viewer", "view_pipeline").get(url("dlq_triage", orders.pk)))
    assert "Not the whole DLQ: it ran out of time (TRIAGE_SCAN_SECONDS). 40 messages were not examined." in page
    assert f"consumer log /aws/lambda/orders-consumer: {missing}" in page
    failed = re.search(r'id="tr-failed">(.*?)</p>', page).group(1)
    assert "failed: The scan failed: the DLQ does not exist." in failed and "from the scan before it" in failed


def test_it_lists_older_scans_and_opens_one(as_user, orders):
    old = scan_of(orders, {"KeyError": 5, "TimeoutError": 2}, ago_minutes=600)
    scan_of(orders, {"KeyError": 9}, ago_minutes=5)
    client = as_user("ann", *ALL_PERMS)
    listing = text(client.get(url("dlq_triage", orders.pk)))
    older = re.search(r'id="tr-older">(.*?)</table>', listing).group(1)
    assert url("dlq_triage_scan", orders.pk, old.pk) in older and ">7 of 7<" in older and ">2<" in older
    page = text(client.get(url("dlq_triage_scan", orders.pk, old.pk)))
    assert f"Scan #{old.pk}" in page and "TimeoutError in handler" in page


# --- the pipeline page and the DLQ page --------------------------------------------------------------


def test_it_shows_the_dlqs_top_causes_and_the_scans_age_on_the_pipeline_page(as_user, orders):
    client = as_user("viewer", "view_pipeline")
    dashboard = url("dashboard", orders.pk)
    assert "not known yet: the DLQ has not been triaged" in text(client.get(dashboard))
    scan_of(orders, {"KeyError": 71, "TimeoutError": 20, "ValueError": 9}, ago_minutes=125)
    page = text(client.get(dashboard))
    causes = re.search(r'id="ob-dlq-causes">(.*?)</p>', page).group(1)
    assert "3 causes: KeyError in handler 71 %, TimeoutError in handler 20 %, ValueError in handler 9 %" in causes
    assert "2 hours ago" in causes and url("dlq_triage", orders.pk) in causes
    assert f'id="ob-triage" href="{url("dlq_triage", orders.pk)}"' in page


def test_it_shows_the_dlqs_top_causes_on_the_overview_while_the_dlq_holds_messages(as_user, orders):
    client = as_user("viewer", "view_pipeline")
    overview = reverse("admin:index")
    scan_of(orders, {"KeyError": 30, "TimeoutError": 70}, ago_minutes=200)
    scan_of(orders, {"KeyError": 71, "TimeoutError": 29}, ago_minutes=10)
    Pipeline.objects.filter(pk=orders.pk).update(dlq_depth=100)
    row = re.search(r'<tr[^>]*data-pipeline="orders".*?</tr>', text(client.get(overview))).group(0)
    # The newest completed scan, not the older one.
    assert "2 causes: KeyError in handler 71 %, TimeoutError in handler 29 %" in row
    Pipeline.objects.filter(pk=orders.pk).update(dlq_depth=0)  # drained: nothing left to explain
    row = re.search(r'<tr[^>]*data-pipeline="orders".*?</tr>', text(client.get(overview))).group(0)
    assert "causes" not in row


def test_it_warns_of_a_failure_group_the_previous_scan_did_not_have(as_user, orders):
    Pipeline.objects.filter(pk=orders.pk).update(discovered_at=clock.now())
    client = as_user("viewer", "view_pipeline")
    previous = scan_of(orders, {"KeyError": 50}, ago_minutes=60)
    scan_of(orders, {"KeyError": 50}, ago_minutes=5)
    assert "New failure in the DLQ" not in text(client.get(url("dashboard", orders.pk)))
    scan_of(orders, {"KeyError": 50, "TimeoutError": 12}, ago_minutes=1)
    page = text(client.get(url("dashboard", orders.pk)))
    # Compared with the scan just before the latest one, not the first.
    assert previous.created_at.strftime("%H:%M") not in re.search(r"New failure in the DLQ[^<]*", page).group(0)
    assert "New failure in the DLQ since the scan of " in page and "TimeoutError in handler (12 messages)" in page


def test_it_links_the_dlq_page_to_its_triage(as_user, register):
    p = register("orders")
    page = text(as_user("viewer", "view_pipeline").get(url("dlq", p.pk)))
    assert f'id="rd-triage" href="{url("dlq_triage", p.pk)}"' in page


# --- the admin's list of scans -------------------------------------------------------------------------


def test_it_lists_scans_in_the_admin_only_to_those_who_may_view_pipelines(as_user, orders):
    scan = scan_of(orders, {"KeyError": 5, "TimeoutError": 2})
    changelist = reverse("admin:pipelines_triagescan_changelist")
    page = as_user("ann", "view_pipeline", "view_triagescan").get(changelist)
    assert page.status_code == 200
    row = re.search(rf"<tr>.*?#{scan.pk}.*?</tr>", text(page)).group(0)
    assert "orders" in row and "ann" in row and "Completed" in row and "7 of 7" in row
    assert url("dlq_triage_scan", orders.pk, scan.pk) in row
    detail = as_user("bob", "view_pipeline", "view_triagescan").get(
        reverse("admin:pipelines_triagescan_change", args=[scan.pk])
    )
    assert detail.status_code == 200 and ">12<" in text(detail)  # the SQS calls the scan cost
    assert as_user("scans-only", "view_triagescan").get(changelist).status_code == 403


def test_it_scans_on_a_post_and_shows_the_groups_it_found(
    as_user, register, target, eager, django_capture_on_commit_callbacks
):
    p = register("orders")
    fill(target, p.dlq_url, 6)
    client = as_user("ann", *ALL_PERMS)
    with django_capture_on_commit_callbacks(execute=True):  # the worker runs the scan once it is committed
        started = client.post(url("dlq_triage", p.pk))
    scan = TriageScan.objects.get()
    assert started.url == url("dlq_triage_scan", p.pk, scan.pk)
    page = client.get(started.url)
    assert scan.status == TriageStatus.COMPLETED and scan.examined == 6
    body = text(page)
    assert "1 failure group" in body and "6 of 6" in body and "Body shape" in body
    assert AuditEntry.objects.get().action == "dlq_triage_scan"
