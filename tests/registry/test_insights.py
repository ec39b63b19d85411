"""Pipeline insights: each check on hand-made configurations (firing, quiet, skipped when unknown),
and on configurations discovered from the emulator; the pipeline page and the admin show them."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from pipelines.formatting import duration
from pipelines.models import Pipeline, Severity
from pipelines.registry.insights import InsightCode as C
from pipelines.registry.insights import insights_for, spend_anomaly, throttle_reason
from tests.browser import browser

DISCOVERED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def pipe(**overrides) -> Pipeline:
    """An unsaved, discovered pipeline configured the way AWS recommends; `overrides` break it."""
    fields = {
        "name": "orders",
        "queue_url": "http://h/123456789012/orders",
        "discovered_at": DISCOVERED_AT,
        "queue_arn": "arn:aws:sqs:us-east-1:123456789012:orders",
        "queue_name": "orders",
        "is_fifo": False,
        "visibility_timeout": 180,
        "retention_period": 345600,
        "dlq_url": "http://h/123456789012/orders-dlq",
        "dlq_arn": "arn:aws:sqs:us-east-1:123456789012:orders-dlq",
        "max_receive_count": 5,
        "dlq_retention_period": 1209600,
        "function_name": "orders-consumer",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:orders-consumer",
        "function_timeout": 30,
        "reserved_concurrency": None,
        "batch_size": 10,
        "maximum_concurrency": 5,
        "report_batch_item_failures": True,
        "mapping_uuid": "9b1c-mapping",
        "mapping_state": "Enabled",
        "extra_mappings": 0,
    }
    fields.update(overrides)
    return Pipeline(**fields)


def codes(p) -> list[str]:
    return [i.code for i in insights_for(p)]


def only(p, code):
    found = [i for i in insights_for(p) if i.code == code]
    assert len(found) == 1, insights_for(p)
    return found[0]


# --- on hand-made configurations ------------------------------------------------------------------


def test_it_finds_nothing_wrong_with_a_well_configured_pipeline():
    assert insights_for(pipe()) == []
    assert insights_for(pipe(api_id="a1", api_kind="rest", api_passes_request_id=True)) == []


def test_it_says_nothing_before_discovery_has_run():
    assert insights_for(pipe(discovered_at=None, dlq_url="", dlq_arn="", function_name="")) == []


def test_it_flags_a_missing_dlq_as_critical():
    i = only(pipe(dlq_url="", dlq_arn="", max_receive_count=None, dlq_retention_period=None), C.NO_DLQ)
    assert i.severity == Severity.CRITICAL
    assert "retried until the retention period deletes them" in i.title
    assert "RedrivePolicy with maxReceiveCount 5" in i.fix
    # A DLQ named by the RedrivePolicy but unreadable is not "no DLQ".
    assert C.NO_DLQ not in codes(pipe(dlq_url=""))


@pytest.mark.parametrize("state", ["Disabled", "Disabling", "Deleting"])
def test_it_flags_a_stopped_mapping_as_critical(state):
    i = only(pipe(mapping_state=state), C.MAPPING_DISABLED)
    assert i.severity == Severity.CRITICAL
    assert f"is {state.lower()}: nothing drains the queue" in i.title
    assert i.fix == "Enable it: aws lambda update-event-source-mapping --uuid 9b1c-mapping --enabled"


def test_it_says_when_none_of_several_mappings_is_enabled():
    i = only(pipe(mapping_state="Disabled", extra_mappings=2), C.MAPPING_DISABLED)
    assert i.title.startswith("None of the 3 event-source mappings on the queue is enabled")


@pytest.mark.parametrize("state", ["Enabled", "Enabling", "Updating", "Creating", ""])
def test_it_leaves_active_or_unknown_mapping_states_alone(state):
    assert C.MAPPING_DISABLED not in codes(pipe(mapping_state=state))


def test_it_flags_a_queue_nobody_reads():
    p = pipe(
        function_name="",
        function_arn="",
        function_timeout=None,
        batch_size=None,
        maximum_concurrency=None,
        report_batch_item_failures=None,
        mapping_uuid="",
        mapping_state="",
    )
    assert codes(p) == [C.NO_CONSUMER]
    assert only(p, C.NO_CONSUMER).severity == Severity.WARNING
    # Without the queue's ARN consumer discovery never ran: unknown, not absent.
    assert codes(pipe(queue_arn="", function_name="", mapping_uuid="", maximum_concurrency=None)) == []


@pytest.mark.parametrize(
    "overrides, why",
    [
        ({"reserved_concurrency": 2, "maximum_concurrency": None}, "reserved concurrency 2 and no MaximumConcurrency"),
        ({"reserved_concurrency": 2, "maximum_concurrency": 10}, "MaximumConcurrency 10 above reserved concurrency 2"),
        ({"recent_throttles": 7}, "7 throttle(s) recently"),
    ],
)
def test_it_flags_a_low_max_receive_count_when_the_consumer_can_be_throttled(overrides, why):
    i = only(pipe(max_receive_count=3, **overrides), C.MAX_RECEIVE_COUNT)
    assert i.severity == Severity.WARNING
    assert i.title.startswith(f"maxReceiveCount 3 with a consumer that can be throttled ({why})")
    assert i.fix == "Set maxReceiveCount to at least 5 in the queue's RedrivePolicy"


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_receive_count": 3},  # nothing says the consumer is throttled
        {
            "max_receive_count": 3,
            "reserved_concurrency": 5,
            "maximum_concurrency": 5,
        },  # pollers capped at the reservation
        {"max_receive_count": 5, "recent_throttles": 40},  # enough receives to ride out throttles
        {"max_receive_count": None, "recent_throttles": 40},  # unknown
    ],
)
def test_it_leaves_max_receive_count_alone_otherwise(overrides):
    assert C.MAX_RECEIVE_COUNT not in codes(pipe(**overrides))


def test_throttle_reason_needs_a_consumer_or_evidence():
    assert throttle_reason(pipe(function_name="", reserved_concurrency=3, maximum_concurrency=None)) == ""
    assert throttle_reason(pipe()) == ""


def test_it_flags_a_visibility_timeout_under_six_function_timeouts():
    i = only(pipe(visibility_timeout=179), C.VISIBILITY_TIMEOUT)
    assert i.severity == Severity.WARNING
    assert i.fix == "Set the queue's visibility timeout to at least 180 s (6 × the 30 s function timeout)"
    assert "under 6 × the 30 s function timeout" in i.title
    shorter = only(pipe(visibility_timeout=20), C.VISIBILITY_TIMEOUT)
    assert "shorter than the 30 s function timeout" in shorter.title


@pytest.mark.parametrize(
    "overrides",
    [
        {"visibility_timeout": 180},
        {"visibility_timeout": 900, "function_timeout": 150},
        {"visibility_timeout": 30, "function_timeout": None},
        {"visibility_timeout": None},
    ],
)
def test_it_leaves_a_long_enough_or_unknown_visibility_timeout_alone(overrides):
    assert C.VISIBILITY_TIMEOUT not in codes(pipe(**overrides))


@pytest.mark.parametrize("source, dlq", [(345600, 345600), (345600, 86400)])
def test_it_flags_a_dlq_that_keeps_messages_no_longer_than_the_queue(source, dlq):
    i = only(pipe(retention_period=source, dlq_retention_period=dlq), C.DLQ_RETENTION)
    assert i.severity == Severity.WARNING
    assert f"DLQ retention {duration(dlq)} is not longer than the queue's 4 days" in i.title
    assert i.fix == "Set the DLQ's retention period to 14 days (1,209,600 s), longer than the queue's 4 days"


def test_when_both_retentions_are_at_the_maximum_the_fix_shortens_the_queue():
    i = only(pipe(retention_period=1209600, dlq_retention_period=1209600), C.DLQ_RETENTION)
    assert i.fix.startswith("Shorten the queue's retention period below the DLQ's 14 days")


@pytest.mark.parametrize(
    "overrides",
    [
        {"retention_period": 345600, "dlq_retention_period": 345601},
        {"is_fifo": True, "retention_period": 345600, "dlq_retention_period": 345600},  # FIFO restarts the clock
        {"dlq_retention_period": None},
        {"retention_period": None},
    ],
)
def test_it_leaves_dlq_retention_alone_when_longer_fifo_or_unknown(overrides):
    assert C.DLQ_RETENTION not in codes(pipe(**overrides))


def test_no_maximum_concurrency_is_info_without_and_a_warning_with_reserved_concurrency():
    i = only(pipe(maximum_concurrency=None), C.NO_MAX_CONCURRENCY)
    assert i.severity == Severity.INFO and "account's concurrency limit" in i.title
    w = only(pipe(maximum_concurrency=None, reserved_concurrency=5), C.NO_MAX_CONCURRENCY)
    assert w.severity == Severity.WARNING and "reserved concurrency of 5" in w.title
    assert w.fix == "Set MaximumConcurrency on the event-source mapping to 5 (no more than the reserved concurrency)"
    low = only(pipe(maximum_concurrency=None, reserved_concurrency=1), C.NO_MAX_CONCURRENCY)
    assert low.fix.startswith("Raise the reserved concurrency to at least 2")
    # No mapping found: nothing to set it on.
    assert C.NO_MAX_CONCURRENCY not in codes(pipe(maximum_concurrency=None, mapping_uuid=""))


def test_it_flags_report_batch_item_failures_off_when_batches_hold_several_messages():
    i = only(pipe(report_batch_item_failures=False), C.NO_BATCH_ITEM_FAILURES)
    assert i.severity == Severity.WARNING and "the whole batch of 10 retry" in i.title
    assert "return the failed message ids as batchItemFailures" in i.fix
    assert C.NO_BATCH_ITEM_FAILURES not in codes(pipe(report_batch_item_failures=False, batch_size=1))
    assert C.NO_BATCH_ITEM_FAILURES not in codes(pipe(report_batch_item_failures=None))


def test_it_notes_an_api_that_does_not_pass_the_request_id():
    rest = only(
        pipe(api_id="a1", api_kind="rest", api_passes_request_id=False, request_id_attribute="rid"), C.API_REQUEST_ID
    )
    assert rest.severity == Severity.INFO and "traces cannot follow a request" in rest.title
    assert "MessageAttribute.1.Name=rid&MessageAttribute.1.Value.StringValue=$context.requestId" in rest.fix
    http = only(pipe(api_id="a1", api_kind="http", api_passes_request_id=False), C.API_REQUEST_ID)
    assert '"requestId": {"DataType": "String", "StringValue": "${context.requestId}"}' in http.fix
    # No SQS integration found (None) or no API: nothing to judge.
    assert C.API_REQUEST_ID not in codes(pipe(api_id="a1", api_kind="rest", api_passes_request_id=None))
    assert C.API_REQUEST_ID not in codes(pipe(api_passes_request_id=False))


def test_insights_come_worst_first():
    p = pipe(
        api_id="a1",
        api_kind="rest",
        api_passes_request_id=False,
        maximum_concurrency=None,
        report_batch_item_failures=False,
        dlq_url="",
        dlq_arn="",
        max_receive_count=None,
        dlq_retention_period=None,
        mapping_state="Disabled",
    )
    found = insights_for(p)
    assert [i.severity for i in found] == sorted((i.severity for i in found), key=lambda s: s.rank)
    assert [i.code for i in found] == [
        C.NO_DLQ,
        C.MAPPING_DISABLED,
        C.NO_BATCH_ITEM_FAILURES,
        C.NO_MAX_CONCURRENCY,
        C.API_REQUEST_ID,
    ]


def test_every_fix_is_one_line():
    p = pipe(
        api_id="a1",
        api_kind="rest",
        api_passes_request_id=False,
        maximum_concurrency=None,
        reserved_concurrency=2,
        max_receive_count=2,
        visibility_timeout=10,
        retention_period=1209600,
        report_batch_item_failures=False,
        mapping_state="Disabled",
    )
    found = insights_for(p)
    assert len(found) == 7
    assert all(i.fix and "\n" not in i.fix and "\n" not in i.title for i in found)


# --- on configurations discovered from the emulator -----------------------------------------------


def test_it_finds_no_issues_on_a_well_configured_discovered_pipeline(register):
    p = register("tidy", api=True, mapping_enabled=True, reserved_concurrency=5, maximum_concurrency=5)
    assert p.mapping_state == "Enabled" and p.api_passes_request_id is True
    assert insights_for(p) == []


def test_it_finds_exactly_the_expected_issues_on_a_misconfigured_discovered_pipeline(register):
    p = register(
        "sloppy",
        api=True,
        api_passes_request_id=False,
        max_receive_count=2,
        reserved_concurrency=3,
        maximum_concurrency=None,
        visibility_timeout=60,
        function_timeout=30,
        retention_period=1209600,
        dlq_retention_period=604800,
        report_batch_item_failures=False,
    )
    found = insights_for(p)
    assert [(i.code, i.severity) for i in found] == [
        (C.MAPPING_DISABLED, Severity.CRITICAL),  # the emulator's mappings are created disabled
        (C.MAX_RECEIVE_COUNT, Severity.WARNING),
        (C.VISIBILITY_TIMEOUT, Severity.WARNING),
        (C.DLQ_RETENTION, Severity.WARNING),
        (C.NO_MAX_CONCURRENCY, Severity.WARNING),
        (C.NO_BATCH_ITEM_FAILURES, Severity.WARNING),
        (C.API_REQUEST_ID, Severity.INFO),
    ]
    by_code = {i.code: i for i in found}
    assert "sloppy-consumer is disabled" in by_code[C.MAPPING_DISABLED].title
    assert by_code[C.MAPPING_DISABLED].fix.endswith(f"--uuid {p.mapping_uuid} --enabled")
    assert "reserved concurrency 3 and no MaximumConcurrency" in by_code[C.MAX_RECEIVE_COUNT].title
    assert by_code[C.VISIBILITY_TIMEOUT].fix.endswith("at least 180 s (6 × the 30 s function timeout)")
    assert "DLQ retention 7 days is not longer than the queue's 14 days" in by_code[C.DLQ_RETENTION].title
    assert by_code[C.NO_MAX_CONCURRENCY].fix.startswith("Set MaximumConcurrency on the event-source mapping to 3")


def test_it_flags_a_discovered_queue_without_dlq_or_consumer(register):
    p = register("bare", dlq=False, consumer=False)
    assert [(i.code, i.severity) for i in insights_for(p)] == [
        (C.NO_DLQ, Severity.CRITICAL),
        (C.NO_CONSUMER, Severity.WARNING),
    ]


def test_a_discovered_fifo_queue_is_not_judged_on_dlq_retention(register):
    p = register("ledger", fifo=True, mapping_enabled=True, retention_period=345600, dlq_retention_period=345600)
    assert p.is_fifo and insights_for(p) == []


# --- in the UI ------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    return client


def test_the_pipeline_page_shows_insights_with_their_fixes(staff_client, register):
    p = register("sloppy", visibility_timeout=60)
    page = staff_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[p.pk])).content.decode()
    assert "Insights" in page
    assert "Set the queue&#x27;s visibility timeout to at least 180 s (6 × the 30 s function timeout)" in page
    assert 'data-code="mapping_disabled"' in page and "No configuration issues found" not in page


def test_the_pipeline_page_says_when_there_is_nothing_to_fix(staff_client, register):
    p = register("tidy", mapping_enabled=True)
    page = staff_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[p.pk])).content.decode()
    assert "No configuration issues found" in page


def test_the_admin_shows_insights_on_the_change_page_and_the_worst_in_the_list(staff_client, register):
    p = register("bare", dlq=False, consumer=False)
    register("tidy", mapping_enabled=True)
    change = staff_client.get(reverse("admin:pipelines_pipeline_change", args=[p.pk])).content.decode()
    assert "No dead-letter queue: failing messages are retried" in change
    assert "Create a dead-letter queue and give this queue a RedrivePolicy" in change
    listing = staff_client.get(reverse("admin:pipelines_pipeline_changelist")).content.decode()
    assert "Critical · 2" in listing


@browser
@pytest.mark.django_db(transaction=True)
def test_an_operator_sees_insights_on_the_pipeline_page_in_a_browser(page, live_server, register):
    from tests.browser import SHOTS, log_in

    p = register("sloppy", visibility_timeout=60, report_batch_item_failures=False, maximum_concurrency=None)
    log_in(page, live_server)
    page.goto(f"{live_server.url}{reverse('admin:pipelines_pipeline_dashboard', args=[p.pk])}")
    panel = page.locator("#ob-insights")
    items = panel.locator("li.ob-insight")
    assert items.count() == 4
    first = items.first
    assert first.locator(".ob-badge").inner_text() == "Critical"
    assert "nothing drains the queue" in first.inner_text()
    visibility = panel.locator("li[data-code=visibility_timeout]")
    assert visibility.locator(".ob-badge").inner_text() == "Warning"
    assert "at least 180 s (6 × the 30 s function timeout)" in visibility.inner_text()
    assert visibility.is_visible()
    page.screenshot(path="/tmp/insights.png", full_page=True)
    page.screenshot(path=str(SHOTS / "insights.png"), full_page=True)

    page.goto(f"{live_server.url}{reverse('admin:pipelines_pipeline_change', args=[p.pk])}")
    assert page.locator("#ob-insights li.ob-insight").count() == 4
    page.locator("fieldset", has=page.locator("#ob-insights")).screenshot(path="/tmp/insights-admin.png")

    page.goto(f"{live_server.url}{reverse('admin:pipelines_pipeline_changelist')}")
    assert page.locator("#result_list td.field-config_insights .ob-badge").inner_text() == "Critical · 4"
    page.screenshot(path=str(SHOTS / "insights-list.png"))


# --- the spend anomaly (figures in tests/spend/test_history.py) ----------------------------------


def test_it_flags_a_cost_per_1000_that_more_than_doubled_week_over_week():
    found = spend_anomaly((0.002, 0.0042))
    assert found.code == C.SPEND_ANOMALY and found.severity == Severity.WARNING
    assert found.title.startswith("Cost per 1,000 messages up 2.1× week over week (was $0.0020, now $0.0042)")
    assert spend_anomaly((0.002, 0.0038)) is None  # 1.9×
    assert spend_anomaly(None) is None  # a week without enough data: no judgement
    assert C.SPEND_ANOMALY not in codes(pipe())  # without spend figures the insights are the configuration's
