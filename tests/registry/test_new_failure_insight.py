"""The "new failure in the DLQ" insight: a failure group the latest triage scan found and the previous one
did not; judged from the two scans the caller read, so these tests need no database."""

from datetime import UTC, datetime

from pipelines.models import Pipeline, Severity, TriageGroup
from pipelines.registry.insights import InsightCode, ScanPair, insights_for, new_dlq_failure

PREVIOUS_AT = datetime(2026, 12, 5, 6, 40, tzinfo=UTC)


def group(signature: str, count: int) -> TriageGroup:
    return TriageGroup(signature=signature, title=f"{signature} in handler", count=count)


def pair(*groups: TriageGroup, before=("KeyError",)) -> ScanPair:
    return ScanPair(tuple(groups), PREVIOUS_AT, frozenset(before))


def test_it_names_the_largest_new_group_and_when_the_previous_scan_ran():
    found = new_dlq_failure(pair(group("KeyError", 900), group("ValueError", 3), group("TimeoutError", 40)))
    assert found.code == InsightCode.NEW_DLQ_FAILURE and found.severity == Severity.WARNING
    assert found.title == (
        "New failure in the DLQ since the scan of 2026-12-05 06:40 UTC: TimeoutError in handler (40 messages)"
    )
    assert found.detail == "1 more new group(s): ValueError in handler (3)"


def test_it_says_nothing_when_every_group_was_there_before_or_there_is_no_previous_scan():
    assert new_dlq_failure(pair(group("KeyError", 900))) is None
    assert new_dlq_failure(None) is None


def test_it_joins_the_configuration_insights_of_a_discovered_pipeline():
    p = Pipeline(
        name="orders",
        discovered_at=PREVIOUS_AT,
        queue_arn="arn:aws:sqs:us-east-1:1:orders",
        dlq_url="u",
        dlq_arn="a",
        function_name="f",
        mapping_uuid="m",
        maximum_concurrency=5,
        report_batch_item_failures=True,
    )
    codes = [i.code for i in insights_for(p, scans=pair(group("ValueError", 1)))]
    assert InsightCode.NEW_DLQ_FAILURE in codes
    assert InsightCode.NEW_DLQ_FAILURE not in [i.code for i in insights_for(p)]
