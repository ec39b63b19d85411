"""Set-up shared by the benchmark scripts in this folder.

A script imports this module first (it sits next to the scripts, so `import setup` finds it when one
is run as `python bench/<name>.py` from the repository root), parses its options, calls
`configure_django` once, and only then imports the project's modules, which need Django set up.
Importing this module puts the repository root on `sys.path` (for `tests.settings`).

It offers:

- `REPO`, the repository root, and `REGION`, the AWS region the benches' accounts use;
- `argument_parser`: an `ArgumentParser` described by the first paragraph of a script's docstring;
- `temp_dir` and `sqlite_url`: a throwaway directory, removed when the process exits, and the URL
  of a SQLite database file in it;
- `recreate_postgres` and `ensure_postgres`: a Postgres database dropped and created afresh, or
  created only when the server does not have it;
- `postgres_reachable`: whether the Postgres server a URL names accepts a connection now;
- `configure_django`: the test settings (dummy AWS credentials) pointed at the bench database, with
  DEBUG off, then `django.setup()`;
- `migrate`: the schema, quietly;
- `emulator_account`: an `AwsAccount` whose AWS calls go to an emulator endpoint (moto in server
  mode, `opsboard_demo.emulator.MotoServer`, or a proxy in front of it);
- `time_limit` and `TimeLimit`: abort a run that takes longer than so many seconds;
- `yes`: "yes" or "NO", for the pass/fail columns of the printed figures.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django
from django.conf import settings
from django.core.management import call_command
from django.db import connection

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REGION = "us-east-1"


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the first paragraph of `doc` (the script's docstring)."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0])


def temp_dir(prefix: str) -> str:
    """A new temporary directory, removed with everything in it when the process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def sqlite_url(directory: str) -> str:
    """The URL of a SQLite database file `bench.sqlite3` in `directory`."""
    return f"sqlite:///{directory}/bench.sqlite3"


@contextmanager
def _postgres_server(url: str) -> Iterator[tuple[Any, str, str]]:
    """An autocommit connection to the server's `postgres` database, and the database `url` names,
    plain and quoted as an SQL identifier."""
    # Imported here, not at the top: the SQLite benches load no Postgres driver (collect_bench
    # reports its processes' memory).
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    conninfo: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "dbname": "postgres",
    }
    if parts.password:
        conninfo["password"] = parts.password
    name = parts.path.lstrip("/") or "postgres"
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        yield conn, name, sql.Identifier(name).as_string(conn)


def recreate_postgres(url: str) -> None:
    """Drop the database named in the URL (closing its connections) and create it empty."""
    with _postgres_server(url) as (conn, _, quoted):
        conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {quoted}")


def ensure_postgres(url: str) -> None:
    """Create the database named in the URL when the server does not have it."""
    with _postgres_server(url) as (conn, name, quoted):
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f"CREATE DATABASE {quoted}")
            print(f"created database {name}")


def configure_django(
    database_url: str,
    var_dir: str | None = None,
    *,
    eager_tasks: bool = False,
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Set Django up with the test settings (dummy AWS credentials) on the bench database.

    `var_dir` keeps the filesystem broker directories out of the repository; `eager_tasks` runs
    Celery tasks in the calling process; `allowed_hosts` are added to ALLOWED_HOSTS.
    """
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DATABASE_URL"] = database_url
    if var_dir is not None:
        os.environ["OPSBOARD_VAR_DIR"] = var_dir
    if eager_tasks:
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ["DEBUG"] = "false"  # DEBUG keeps every SQL query in memory: no honest RSS or timing with it
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.pop("AWS_ENDPOINT_URL", None)  # each account names its own endpoint
    django.setup()
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, *allowed_hosts]


def migrate() -> None:
    """Bring the bench database's schema up to date, without output."""
    call_command("migrate", verbosity=0)


def emulator_account(name: str, endpoint_url: str, region: str = REGION):
    """A saved `AwsAccount` whose AWS calls go to `endpoint_url` (the emulator, or a proxy in front of it)."""
    from pipelines.models import AwsAccount  # the models load only once configure_django has run

    return AwsAccount.objects.create(name=name, region=region, endpoint_url=endpoint_url)


class TimeLimit(Exception):
    """Raised in the main thread when a run's time limit is reached."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise `TimeLimit` in the main thread if the block is still running after `seconds`."""

    def on_alarm(*_) -> None:
        raise TimeLimit("bench time limit reached")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def postgres_reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether the Postgres server the URL names accepts a connection now (trust auth, as in CI)."""
    try:
        import psycopg

        parts = urlsplit(url)
        psycopg.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or None,
            dbname="postgres",
            connect_timeout=timeout,
        ).close()
        return True
    except Exception:
        return False


def timed(fn, runs: int = 5) -> tuple[float, int]:
    """Median seconds of `runs` calls, and the queries one call makes."""
    times, counts = [], []
    for _ in range(runs):
        count = [0]

        def counter(execute, sql, params, many, context, count=count):
            count[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        counts.append(count[0])
    return statistics.median(times), counts[-1]
