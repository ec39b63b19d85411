"""The minute history partitioned by day on Postgres: converting a filled table, partitions created
ahead and on demand, retention by dropping whole days, two workers at once; the upsert's semantics
on both backends; SQLite's retention by DELETE."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, connections, transaction

from pipelines.collection import partitions, retention, store
from pipelines.models import AwsAccount, MetricSample, Pipeline, partitioning

UTC = UTC
AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitioned minute history exists only on Postgres"
)
sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite keeps one table and DELETE retention")


def make_pipelines(n=2):
    account = AwsAccount.objects.create(name="a", region="us-east-1")
    return [
        Pipeline.objects.create(name=f"p{i}", account=account, queue_url=f"http://h/123456789012/p{i}")
        for i in range(n)
    ]


def rows_by_id():
    return list(MetricSample.objects.order_by("id").values_list("id", "pipeline_id", "minute", "visible", "sent"))


def primary_key_columns():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary ORDER BY a.attname",
            [partitions.TABLE],
        )
        return [r[0] for r in cursor.fetchall()]


@postgres
def test_it_converts_a_filled_table_without_losing_rows(db):
    partitions.convert_to_plain()  # the table as it was before the conversion, in this test's transaction
    assert not partitions.enabled() and primary_key_columns() == ["id"]
    p, q = make_pipelines()
    start = AT - timedelta(days=3, minutes=5)  # rows on four days, across midnights
    MetricSample.objects.bulk_create(
        [
            MetricSample(pipeline=x, minute=start + timedelta(minutes=97 * m), visible=m, sent=k)
            for k, x in enumerate((p, q))
            for m in range(50)
        ]
    )
    before = rows_by_id()

    copied = partitions.convert_to_partitioned(days_ahead=2, at=AT)

    assert copied == 100 and partitions.enabled()
    assert rows_by_id() == before
    days = {partitioning.day_of(r[2]) for r in before}
    listed = [part.day for part in partitions.list_partitions()]
    assert days | {date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)} == set(listed)
    assert (
        listed[0] == date(2026, 11, 23) and partitions.list_partitions()[0].name == "pipelines_metricsample_p20261123"
    )
    assert primary_key_columns() == ["id", "minute"]
    # The unique (pipeline, minute) constraint still refuses a second row for a minute.
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {partitions.TABLE} (pipeline_id, minute) VALUES (%s, %s)", [p.pk, before[0][2]]
            )
    # New rows continue the id sequence; Django still reads, updates and deletes by id.
    fresh = MetricSample.objects.create(pipeline=p, minute=AT, visible=7)
    assert fresh.pk > max(r[0] for r in before)
    MetricSample.objects.filter(pk=fresh.pk).update(visible=8)
    assert MetricSample.objects.get(pk=fresh.pk).visible == 8
    # Deleting a pipeline takes its rows on every day with it.
    p.delete()
    assert MetricSample.objects.count() == 50 and set(MetricSample.objects.values_list("pipeline", flat=True)) == {q.pk}
    assert partitions.convert_to_partitioned() == 0  # already done: nothing happens
    # Reversing the migration gives one plain table with the same rows back.
    kept = rows_by_id()
    assert partitions.convert_to_plain() == 50
    assert rows_by_id() == kept and primary_key_columns() == ["id"] and partitions.list_partitions() == []


@postgres
def test_it_creates_partitions_ahead_once(db):
    created = partitions.ensure_ahead(AT, days_ahead=3)
    wanted = [date(2026, 11, 26) + timedelta(days=i) for i in range(4)]
    assert set(created) <= set(wanted)
    assert set(wanted) <= {part.day for part in partitions.list_partitions()}
    assert partitions.ensure_ahead(AT, days_ahead=3) == []


@postgres
def test_a_write_into_a_day_without_a_partition_creates_it(db):
    (p,) = make_pipelines(1)
    far = datetime(2031, 3, 4, 5, 6, tzinfo=UTC)
    assert date(2031, 3, 4) not in {part.day for part in partitions.list_partitions()}
    with transaction.atomic():
        assert store.write_minute_samples([(p.pk, far, {"visible": 3})]) == 1
    assert date(2031, 3, 4) in {part.day for part in partitions.list_partitions()}
    # The partition disappears behind the process's back (another worker's retention): the next write
    # is refused once, creates the day again and lands, and the surrounding transaction goes on.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign-key checks of this test's writes
        cursor.execute(f"DROP TABLE {partitioning.partition_name(partitions.TABLE, date(2031, 3, 4))}")
    with transaction.atomic():
        assert store.write_minute_samples([(p.pk, far, {"visible": 4})]) == 1
        MetricSample.objects.create(pipeline=p, minute=far + timedelta(minutes=1), visible=5)
    assert list(MetricSample.objects.filter(pipeline=p).values_list("visible", flat=True)) == [4, 5]


@postgres
def test_retention_drops_whole_days_past_the_cutoff_and_keeps_the_rest(db, settings):
    settings.RAW_RETENTION_DAYS = 15
    settings.PARTITION_DAYS_AHEAD = 2
    (p,) = make_pipelines(1)
    cutoff = AT - timedelta(days=15)  # 2026-11-11 12:00
    old = [cutoff - timedelta(days=5, minutes=m) for m in range(30)]  # 2026-11-06: wholly past
    older = [cutoff - timedelta(days=1, hours=12, minutes=m) for m in range(1, 11)]  # 2026-11-10 (ends at midnight)
    straddling = [cutoff - timedelta(hours=1), cutoff + timedelta(hours=1)]  # 2026-11-11: kept whole
    recent = [AT - timedelta(days=1)]
    MetricSample.objects.bulk_create([MetricSample(pipeline=p, minute=m) for m in old + older + straddling + recent])

    removed = retention.prune(at=AT)

    assert removed["samples"] == 40
    kept = sorted(MetricSample.objects.values_list("minute", flat=True))
    assert kept == sorted(straddling + recent)
    days = {part.day for part in partitions.list_partitions()}
    assert date(2026, 11, 6) not in days and date(2026, 11, 10) not in days
    assert {date(2026, 11, 11), date(2026, 11, 25)} <= days
    assert {date(2026, 11, 26), date(2026, 11, 27), date(2026, 11, 28)} <= days  # created ahead
    assert retention.prune(at=AT)["samples"] == 0


def both(fn):
    """Run fn twice at once on two threads (two database connections), released together."""
    barrier, results, errors = threading.Barrier(2), [], []

    def run():
        try:
            barrier.wait()
            results.append(fn())
        except Exception as exc:  # reported below: a failure in either caller fails the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    return results


@postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_creating_and_writing_the_same_days_at_once_both_succeed():
    first = date(2032, 1, 1)
    results = both(lambda: partitions.ensure_range(first, first + timedelta(days=4)))
    assert sorted(results[0] + results[1]) == [first + timedelta(days=i) for i in range(5)]  # each made once
    days = [part.day for part in partitions.list_partitions()]
    assert len(days) == len(set(days))
    # Two shards writing into a day nobody has created yet: both rows land.
    p, q = make_pipelines()
    minute = datetime(2033, 6, 7, 8, 9, tzinfo=UTC)
    partitioning.forget()
    both_ids = iter([p.pk, q.pk])
    lock = threading.Lock()

    def write():
        with lock:
            pid = next(both_ids)
        with transaction.atomic():
            return store.write_minute_samples([(pid, minute, {"visible": pid})])

    assert both(write) == [1, 1]
    assert sorted(MetricSample.objects.filter(minute=minute).values_list("pipeline", "visible")) == [
        (p.pk, p.pk),
        (q.pk, q.pk),
    ]


def test_an_upsert_overwrites_the_fields_it_carries_and_keeps_the_others(db):
    p, q = make_pipelines()
    minute = AT.replace(minute=7)
    store.write_minute_samples([(p.pk, minute, {"visible": 1, "dlq_visible": 2}), (q.pk, minute, {"visible": 9})])
    # The metrics cycle's values for the same minute, then the fast cycle re-syncing it.
    store.write_minute_samples([(p.pk, minute, {"sent": 5, "oldest_age": 60})])
    assert store.write_minute_samples([(p.pk, minute, {"visible": 3, "dlq_visible": None})]) == 1
    row = MetricSample.objects.get(pipeline=p, minute=minute)
    assert (row.visible, row.dlq_visible, row.sent, row.oldest_age) == (3, None, 5, 60)
    assert MetricSample.objects.count() == 2 and MetricSample.objects.get(pipeline=q).visible == 9


@sqlite
def test_retention_deletes_old_rows_on_sqlite(db, settings):
    settings.RAW_RETENTION_DAYS = 15
    (p,) = make_pipelines(1)
    cutoff = AT - timedelta(days=15)
    MetricSample.objects.bulk_create(
        [MetricSample(pipeline=p, minute=cutoff - timedelta(minutes=m + 1)) for m in range(5)]
        + [MetricSample(pipeline=p, minute=cutoff + timedelta(minutes=1))]
    )
    assert not partitions.enabled() and partitions.list_partitions() == []
    assert retention.prune(at=AT)["samples"] == 5  # rows just past the cutoff go, not whole days
    assert list(MetricSample.objects.values_list("minute", flat=True)) == [cutoff + timedelta(minutes=1)]
