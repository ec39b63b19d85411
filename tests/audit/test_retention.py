"""Audit entries are kept AUDIT_KEEP_DAYS days (0: forever) and pruned in batches by the maintenance task."""

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.collection import retention
from pipelines.models import AuditEntry
from tests.test_settings import PROD, run_manage

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def entries_aged(*ages: timedelta) -> None:
    AuditEntry.objects.bulk_create([AuditEntry(action="dlq_peek", username=str(age), at=AT - age) for age in ages])


def left() -> list[str]:
    return sorted(AuditEntry.objects.values_list("username", flat=True))


def test_it_prunes_entries_older_than_the_kept_days_and_keeps_the_rest(db, settings):
    settings.AUDIT_KEEP_DAYS = 30
    day = timedelta(days=1)
    entries_aged(30 * day + timedelta(seconds=1), 31 * day, 400 * day, 30 * day, 30 * day - timedelta(seconds=1), day)
    assert retention.prune_audit(AT, batch=2, budget=1000) == 3
    assert left() == sorted(str(a) for a in (30 * day, 30 * day - timedelta(seconds=1), day))


def test_it_prunes_a_long_trail_in_batches_within_its_budget(db, settings):
    settings.AUDIT_KEEP_DAYS = 1
    entries_aged(*[timedelta(days=2, minutes=m) for m in range(7)])
    assert retention.prune_audit(AT, batch=2, budget=4) == 4  # two statements of two rows, then the budget ends
    assert retention.prune(at=AT, batch=2)["audit"] == 3
    assert not AuditEntry.objects.exists()


def test_it_keeps_every_entry_when_the_kept_days_are_zero(db, settings):
    settings.AUDIT_KEEP_DAYS = 0
    entries_aged(timedelta(days=5000), timedelta(days=1))
    assert retention.prune(at=AT)["audit"] == 0 and AuditEntry.objects.count() == 2


def kept_days(**env) -> str:
    res = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.AUDIT_KEEP_DAYS)",
        env_overrides={**PROD, **env},
    )
    return res.stdout.strip().splitlines()[-1] if res.returncode == 0 else res.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "-1",
            "AUDIT_KEEP_DAYS must be a whole number of days (365 keeps a year of audit entries; 0 keeps them forever).",
        ),
        ("a year", "The environment variable AUDIT_KEEP_DAYS is malformed"),
    ],
)
def test_it_refuses_a_bad_number_of_days_with_a_sentence(value, message):
    res = run_manage("check", env_overrides={**PROD, "AUDIT_KEEP_DAYS": value})
    assert res.returncode != 0 and message in res.stderr and "Traceback" not in res.stderr


def test_it_reads_the_earlier_name_of_the_setting():
    assert kept_days(AUDIT_RETENTION_DAYS="90") == "90"
    assert kept_days(AUDIT_RETENTION_DAYS="90", AUDIT_KEEP_DAYS="7") == "7"
