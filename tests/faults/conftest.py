"""Fixtures for the fault tests: private Postgres, Redis and emulator, and the project's processes on them.

They never use DATABASE_URL / CELERY_BROKER_URL or pytest-django's database: the shared services
stay untouched whatever a test restarts or kills. A test skips, with the reason, only when a binary
it needs is missing (Postgres's initdb/pg_ctl, redis-server).
"""

from __future__ import annotations

import shutil
import uuid

import boto3
import pytest

from tests.faults.services import Database, PrivatePostgres, PrivateRedis, Processes, postgres_bin, project_env
from tests.redrive_support import QuickMotoServer

REGION = "us-east-1"


@pytest.fixture(scope="session")
def private_postgres(tmp_path_factory):
    """A Postgres cluster of the fault tests' own, with a migrated template database (None without
    the binaries: the tests that can run on a SQLite file do)."""
    bindir = postgres_bin()
    if bindir is None or shutil.which("runuser") is None:
        yield None
        return
    server = PrivatePostgres(bindir)
    try:
        server.start()
        server.execute("CREATE DATABASE faults_template")
        env = project_env(server.url("faults_template"), "memory://", str(tmp_path_factory.mktemp("migrate")))
        Processes(env, "").manage("migrate", "--noinput", "-v0")
        yield server
    finally:
        server.stop()


@pytest.fixture
def needs_postgres(private_postgres):
    if private_postgres is None:
        pytest.skip(
            "no Postgres server binaries (initdb, pg_ctl under /usr/lib/postgresql/*/bin) to run a private cluster"
        )
    return private_postgres


@pytest.fixture
def database(private_postgres, tmp_path):
    """A fresh, migrated database for this test: a copy of the template on the private cluster, or
    a SQLite file when there is no Postgres to run."""
    if private_postgres is not None:
        name = f"faults_{uuid.uuid4().hex[:12]}"
        private_postgres.execute(f"CREATE DATABASE {name} TEMPLATE faults_template")
        yield Database(private_postgres.url(name))
        private_postgres.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        return
    db = Database(f"sqlite:///{tmp_path / 'faults.sqlite3'}")
    env = project_env(db.url, "memory://", str(tmp_path / "var"))
    Processes(env, str(tmp_path)).manage("migrate", "--noinput", "-v0")
    yield db


@pytest.fixture
def redis_server():
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to run a private Redis broker")
    server = PrivateRedis(binary).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fault_moto(tmp_path_factory):
    """The emulator (moto in server mode, sped up for queues of thousands of messages)."""
    server = QuickMotoServer(log_path=str(tmp_path_factory.mktemp("moto-faults") / "moto.log")).start()
    yield server
    server.stop()


@pytest.fixture
def sqs(fault_moto):
    """A boto3 SQS client on a freshly reset emulator."""
    fault_moto.reset()
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=fault_moto.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def processes(database, redis_server, tmp_path):
    """Start the project's workers and commands on this test's database and broker; killed afterwards."""
    procs = Processes(project_env(database.url, redis_server.url, str(tmp_path / "var")), str(tmp_path))
    yield procs
    procs.stop()
