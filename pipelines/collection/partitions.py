"""The minute history's daily partitions on Postgres: converting the table, creating days ahead,
listing them, and dropping the days past retention.

`MetricSample` (`pipelines_metricsample`) is partitioned by RANGE on `minute`, one partition per UTC
day (`pipelines_metricsample_p20261205` holds 2026-12-05 00:00 up to, not including, 2026-12-06
00:00). Retention drops a day's partition once the whole day is older than the cutoff: dropping a
table is instant where deleting 14.4 million rows (a day at 10,000 pipelines) is not. The partition
that straddles the cutoff is kept until it is wholly past, so on Postgres minute rows are kept
between RAW_RETENTION_DAYS and RAW_RETENTION_DAYS + 1 days (deleting its old rows row by row would
cost the same DELETE work as before, only spread over the day).

Maintenance creates the partitions of today and of PARTITION_DAYS_AHEAD days ahead, so writes
rarely create one themselves (`pipelines.models.partitioning` makes every write safe anyway).
Creating and dropping run with a lock timeout (PARTITION_LOCK_TIMEOUT_SECONDS): dropping a partition
needs an ACCESS EXCLUSIVE lock on the parent, and a drop queued behind a long read would hold up
every reader behind it; on a timeout the day is left for the next maintenance run.

SQLite keeps one plain table and the batched DELETE of `retention.prune`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction

from pipelines import clock
from pipelines.models import MetricSample, partitioning

log = logging.getLogger(__name__)

TABLE = MetricSample._meta.db_table


@dataclass(frozen=True)
class Partition:
    day: date
    name: str


def enabled(conn=None) -> bool:
    """Whether the minute history is partitioned on this database (Postgres after the conversion)."""
    return partitioning.is_partitioned(conn or connection, TABLE)


def list_partitions(conn=None) -> list[Partition]:
    """The minute history's daily partitions, oldest first (none on SQLite)."""
    conn = conn or connection
    if not enabled(conn):
        return []
    return [
        Partition(day, partitioning.partition_name(TABLE, day))
        for day in sorted(partitioning.attached_days(conn, TABLE))
    ]


def _lock_timeout(conn) -> None:
    with conn.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{settings.PARTITION_LOCK_TIMEOUT_SECONDS}s"])


def ensure_range(first: date, last: date, conn=None) -> list[date]:
    """Create the partitions of the days first..last (inclusive) that are missing; returns those created."""
    conn = conn or connection
    if not enabled(conn) or last < first:
        return []
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    with transaction.atomic(using=conn.alias):
        _lock_timeout(conn)
        return partitioning.create_days(conn, TABLE, days)


def ensure_ahead(at: datetime, days_ahead: int | None = None, conn=None) -> list[date]:
    """Today's partition and those of the next `days_ahead` days (PARTITION_DAYS_AHEAD)."""
    ahead = settings.PARTITION_DAYS_AHEAD if days_ahead is None else days_ahead
    today = partitioning.day_of(at)
    return ensure_range(today, today + timedelta(days=ahead), conn)


def expired(cutoff: datetime, conn=None) -> list[Partition]:
    """The partitions whose whole day is before `cutoff`."""
    return [p for p in list_partitions(conn) if partitioning.day_bounds(p.day)[1] <= cutoff]


def _rows(conn, name: str) -> int:
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {conn.ops.quote_name(name)}")
        return cursor.fetchone()[0]


def drop_expired(cutoff: datetime, conn=None) -> int:
    """Drop the partitions wholly older than `cutoff`, one short transaction each; returns the rows
    they held. A day whose lock cannot be had within the lock timeout stays for the next run."""
    conn = conn or connection
    qn = conn.ops.quote_name
    dropped_rows = 0
    for part in expired(cutoff, conn):
        # Counted before the drop, outside its lock: nothing writes a day this old.
        rows = _rows(conn, part.name)
        try:
            with transaction.atomic(using=conn.alias):
                _lock_timeout(conn)
                with conn.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [partitioning.advisory_key(TABLE)])
                    # Rows written earlier in the same transaction leave foreign-key checks queued on
                    # the partition, which then cannot be dropped: run them now.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute(f"DROP TABLE IF EXISTS {qn(part.name)}")
                    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        except OperationalError as exc:
            log.warning(
                "could not drop the minute partition %s now (%s); the next maintenance run retries", part.name, exc
            )
            continue
        dropped_rows += rows
        log.info("dropped the minute partition %s (%d rows)", part.name, rows)
    partitioning.forget(conn)
    return dropped_rows


def prune(at: datetime, cutoff: datetime, conn=None) -> int:
    """Retention of a partitioned minute history: create the days ahead, drop the expired ones."""
    created = ensure_ahead(at, conn=conn)
    if created:
        log.info("created minute partitions for %s", ", ".join(f"{d:%Y-%m-%d}" for d in created))
    return drop_expired(cutoff, conn)


# --- converting the table (migration 0020, and back) ----------------------------------------------


def _definitions(cursor, table: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The table's own constraints (name, type, definition) and its indexes that back no constraint
    (name, CREATE INDEX statement), to be recreated on the table that replaces it."""
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND coninhcount = 0 AND contype IN ('p', 'u', 'f', 'c', 'x') "
        "ORDER BY contype DESC, conname",
        [table],
    )
    constraints = list(cursor.fetchall())
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = to_regclass(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
        "WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')) "
        "ORDER BY c.relname",
        [table],
    )
    # A partitioned table's index reads "ON ONLY <table>"; the replacement's must cover its partitions.
    indexes = [(name, sql.replace(" ON ONLY ", " ON ", 1)) for name, sql in cursor.fetchall()]
    return constraints, indexes


def _rebuild(conn, table: str, partitioned: bool, days_ahead: int, at: datetime) -> int:
    """Replace `table` by a copy of it, partitioned by day on `minute` or plain; returns the rows copied.

    Runs in one transaction: the old table is locked against writes (reads go on), its constraints
    and indexes are moved by name to the new one, its id sequence's position is carried over, and
    the old table is dropped only once every row is in the new one.
    """
    qn = conn.ops.quote_name
    old = f"{table}_old"
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {qn(table)} IN EXCLUSIVE MODE")
        # Foreign keys checked at commit would leave trigger events queued on the old table, which
        # then cannot be altered: check them now (Django's are all INITIALLY DEFERRED; restored below).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        constraints, indexes = _definitions(cursor, table)
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        position = cursor.fetchone()
        # Free every name the new table takes: the table, its sequence, its index-backed constraints.
        cursor.execute(f"ALTER TABLE {qn(table)} RENAME TO {qn(old)}")
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {qn(old + '_id_seq')}")
        for name, _kind, _ in constraints:
            cursor.execute(f"ALTER TABLE {qn(old)} DROP CONSTRAINT {qn(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {qn(name)}")
        tail = " PARTITION BY RANGE (minute)" if partitioned else ""
        cursor.execute(f"CREATE TABLE {qn(table)} (LIKE {qn(old)} INCLUDING DEFAULTS INCLUDING IDENTITY){tail}")
        if partitioned:
            cursor.execute(f"SELECT DISTINCT (minute AT TIME ZONE 'UTC')::date FROM {qn(old)}")
            days = {row[0] for row in cursor.fetchall()}
            today = partitioning.day_of(at)
            days.update(today + timedelta(days=i) for i in range(days_ahead + 1))
            partitioning.create_days(conn, table, days)
        cursor.execute(f"INSERT INTO {qn(table)} SELECT * FROM {qn(old)}")
        copied = cursor.rowcount
        # Indexes and constraints after the copy (faster than maintaining them row by row).
        for name, kind, definition in constraints:
            if kind == "p":
                definition = "PRIMARY KEY (id, minute)" if partitioned else "PRIMARY KEY (id)"
            cursor.execute(f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(name)} {definition}")
        for _, statement in indexes:
            cursor.execute(statement)
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)", [table, *position])
        cursor.execute(f"DROP TABLE {qn(old)}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    partitioning.forget(conn)
    return copied


def convert_to_partitioned(conn=None, days_ahead: int | None = None, at: datetime | None = None) -> int:
    """Partition the minute history by day (Postgres; nothing elsewhere or when already done): every
    row is kept, the unique (pipeline, minute) constraint, the indexes and the foreign key are
    recreated, the primary key becomes (id, minute). Returns the rows copied."""
    conn = conn or connection
    if conn.vendor != "postgresql" or enabled(conn):
        return 0
    ahead = settings.PARTITION_DAYS_AHEAD if days_ahead is None else days_ahead
    return _rebuild(conn, TABLE, True, ahead, at or clock.now())


def convert_to_plain(conn=None) -> int:
    """The reverse: one plain table with the primary key (id) again. Returns the rows copied."""
    conn = conn or connection
    if not enabled(conn):
        return 0
    return _rebuild(conn, TABLE, False, 0, clock.now())
