"""Daily range partitions of a history table on Postgres: their names, creating missing ones, and the
guard every write of partitioned rows goes through.

On Postgres the minute history (`MetricSample`) is partitioned by RANGE on `minute`, one partition per
UTC day named `<table>_pYYYYMMDD`. There is no DEFAULT partition: a row whose day has no partition is
refused by Postgres ("no partition of relation … found for row"), so every write makes sure its days
exist first. Known days are remembered per process (one set per database), so the usual write costs
no extra query; a day dropped or rolled back behind the cache's back shows up as that error, and the
write then creates its days and runs once more, inside a savepoint so the surrounding transaction
survives the first failure.

A partition is created as a plain table and then attached: ATTACH PARTITION takes a SHARE UPDATE
EXCLUSIVE lock on the parent, which does not wait for the readers and writers of other days (CREATE
TABLE … PARTITION OF would take an ACCESS EXCLUSIVE one). Two workers creating the same day are
serialised by a transaction-scoped advisory lock, and the second finds the day already attached.

SQLite, and a Postgres table that is not partitioned (before the conversion, or after reversing it),
take the plain path: the write runs as it is.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from django.db import IntegrityError, connections, transaction

T = TypeVar("T")

#: Days known to have a partition, per (database alias, database name, table); cleared by `forget`.
_known: dict[tuple[str, str, str], set[date]] = {}
#: Tables known not to be partitioned, per the same key.
_plain: set[tuple[str, str, str]] = set()
_cache_lock = threading.Lock()


def day_of(moment: datetime) -> date:
    """The UTC day a moment falls on (a naive moment is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The partition's range [start, end) as aware UTC moments."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _key(connection, table: str) -> tuple[str, str, str]:
    return (connection.alias, str(connection.settings_dict.get("NAME")), table)


def forget(connection=None) -> None:
    """Forget what is known about partitions (all databases, or one): after converting a table, in tests."""
    with _cache_lock:
        for key in [k for k in _known if connection is None or k[0] == connection.alias]:
            del _known[key]
        _plain.difference_update({k for k in _plain if connection is None or k[0] == connection.alias})


def advisory_key(table: str) -> int:
    """A stable 32-bit key for the advisory lock that serialises partition changes of one table."""
    return zlib.crc32(f"opsboard:partitions:{table}".encode())


def is_partitioned(connection, table: str) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
            "WHERE c.oid = to_regclass(%s)",
            [table],
        )
        return cursor.fetchone() is not None


def attached_days(connection, table: str) -> set[date]:
    """The days that have a partition named the opsboard way (others are left alone)."""
    prefix = f"{table}_p"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = set()
    for name in names:
        suffix = name[len(prefix) :] if name.startswith(prefix) else ""
        if len(suffix) == 8 and suffix.isdigit():
            days.add(datetime.strptime(suffix, "%Y%m%d").date())
    return days


def create_days(connection, table: str, days: Iterable[date]) -> list[date]:
    """Create and attach the partitions of `days` that do not exist yet; returns the days created.

    Idempotent, and safe when several workers do it at once (see the module docstring). Runs in the
    caller's transaction when there is one (a savepoint), else in its own.
    """
    wanted = sorted(set(days))
    if not wanted or set(wanted) <= attached_days(connection, table):
        # The usual case (a new day for this process, made ahead by maintenance): no lock to hold
        # until the writer's transaction ends.
        with _cache_lock:
            _known.setdefault(_key(connection, table), set()).update(wanted)
        return []
    qn = connection.ops.quote_name
    created = []
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(table)])
            existing = attached_days(connection, table)
            for day in wanted:
                if day in existing:
                    continue
                name = qn(partition_name(table, day))
                start, end = day_bounds(day)
                # A leftover table of that name (a detached partition) would be attached as it is.
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} (LIKE {qn(table)} INCLUDING DEFAULTS)")
                cursor.execute(
                    f"ALTER TABLE {qn(table)} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
                    [start, end],
                )
                created.append(day)
    with _cache_lock:
        _known.setdefault(_key(connection, table), set()).update(wanted)
    return created


def ensure_days(connection, table: str, days: Iterable[date]) -> None:
    """Make sure the partitions of `days` exist, asking the database only about days not known yet."""
    key = _key(connection, table)
    if connection.vendor != "postgresql" or key in _plain:
        return
    missing = set(days) - _known.get(key, set())
    if not missing:
        return
    if not is_partitioned(connection, table):
        with _cache_lock:
            _plain.add(key)
        return
    create_days(connection, table, missing)


def is_missing_partition(exc: BaseException) -> bool:
    """Whether a database error is Postgres refusing a row whose day has no partition."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "23514" and "no partition of relation" in str(exc)


def guarded_write(table: str, using: str, moments: Iterable[datetime], write: Callable[[], T]) -> T:
    """Run `write` (an insert or upsert of rows at `moments`) with their days' partitions in place.

    On the plain path it just runs. On a partitioned table it creates unknown days first, runs the
    write in a savepoint, and if a partition was missing after all (a stale cache) forgets what it
    knew about the table, creates the days and runs the write once more.
    """
    connection = connections[using]
    if connection.vendor != "postgresql" or _key(connection, table) in _plain:
        return write()
    days = {day_of(m) for m in moments if m is not None}  # a missing minute fails as NOT NULL, as before
    ensure_days(connection, table, days)
    try:
        with transaction.atomic(using=using):
            return write()
    except IntegrityError as exc:
        if not is_missing_partition(exc):
            raise
    with _cache_lock:
        _known.pop(_key(connection, table), None)
        _plain.discard(_key(connection, table))
    if is_partitioned(connection, table):
        create_days(connection, table, days)
    with transaction.atomic(using=using):
        return write()
