"""Cycles in shards: the plan (sizes, stable boundaries, whole GetMetricData calls), the leases that run
each shard once per cycle and each cycle's dispatch once, and a failing account failing alone.

Then real Celery worker processes sharing cycles, on a database and a Redis broker they share.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import boto3
import psycopg
import pytest
import redis

from opsboard_demo.emulator import FaultProxy
from pipelines.collection import shards
from pipelines.collection.cloudwatch import MAX_QUERIES_PER_CALL
from pipelines.models import AwsAccount, MetricSample, Pipeline, PollCycle
from tests.faults.queues import make_pipeline
from tests.faults.services import REPO, Database, PrivateRedis, Processes, project_env, wait_until
from tests.test_tasks import REDIS_URL, lock_backends

T0 = datetime(2026, 12, 5, 12, 0, 5, tzinfo=UTC)


def calls(split):
    return sum(math.ceil(q / MAX_QUERIES_PER_CALL) for _, _, _, q in split)


def test_it_splits_full_size_pipelines_into_shards_that_fill_whole_calls():
    weights = [(pk, 17) for pk in range(1, 1201)]
    split = shards.split(weights, max_pipelines=500)
    assert [(first, last, n) for first, last, n, _ in split] == [(1, 500, 500), (501, 1000, 500), (1001, 1200, 200)]
    # 17 × 1200 = 20,400 queries: 41 calls for the whole account, and no more in shards.
    assert calls(split) == math.ceil(17 * 1200 / MAX_QUERIES_PER_CALL) == 41


def test_it_never_puts_more_than_a_calls_budget_or_the_pipeline_limit_in_a_shard():
    weights = [(pk, (5, 12, 17)[pk % 3]) for pk in range(10, 3010, 3)]
    split = shards.split(weights, max_pipelines=100)
    covered = [pk for first, last, _, _ in split for pk, _ in weights if first <= pk <= last]
    assert covered == [pk for pk, _ in weights]  # every pipeline in exactly one shard, in id order
    for _, _, n, q in split:
        assert n <= 100 and q <= (100 * 17 // MAX_QUERIES_PER_CALL) * MAX_QUERIES_PER_CALL
    # One part-filled call per shard at most, over what the account needs as a whole.
    assert calls(split) <= math.ceil(sum(q for _, q in weights) / MAX_QUERIES_PER_CALL) + len(split) - 1


def test_a_small_account_is_one_shard_and_an_empty_one_none():
    assert shards.split([(7, 12), (9, 17)], max_pipelines=500) == [(7, 9, 2, 29)]
    assert shards.split([], max_pipelines=500) == []


def test_boundaries_stay_put_from_cycle_to_cycle(register, account):
    pipes = [register(f"p{i}") for i in range(5)]
    first = shards.plan("fast", cycle=100, max_pipelines=2)
    again = shards.plan("metrics", cycle=101, max_pipelines=2)
    bounds = [(s.account_id, s.index, s.first_pk, s.last_pk) for s in first]
    assert bounds == [(s.account_id, s.index, s.first_pk, s.last_pk) for s in again]
    assert [(s.first_pk, s.last_pk) for s in first] == [
        (pipes[0].pk, pipes[1].pk),
        (pipes[2].pk, pipes[3].pk),
        (pipes[4].pk, pipes[4].pk),
    ]
    # A new pipeline (a higher id) joins the last shard; the others do not move.
    newest = register("p5")
    later = shards.plan("fast", cycle=102, max_pipelines=2)
    assert [(s.first_pk, s.last_pk) for s in later] == [
        *[(s.first_pk, s.last_pk) for s in first[:2]],
        (pipes[4].pk, newest.pk),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", lock_backends())
def test_a_shard_claimed_twice_runs_once(register, account, settings, url):
    settings.LOCK_REDIS_URL = url
    register("orders")
    register("billing")
    (shard,) = shards.plan("fast", cycle=shards.cycle_of("fast", T0) + 10_000_000)
    args = ("fast", shard.account_id, shard.index, shard.cycle, shard.first_pk, shard.last_pk)
    at = shards.cycle_end("fast", shard.cycle) - timedelta(seconds=30)
    try:
        first = shards.run_shard(*args, at=at)
        second = shards.run_shard(*args, at=at + timedelta(seconds=1))
        assert first["failed"] == 0 and first["pipelines"] == 2 and first["api_calls"] == 4
        assert second == {"skipped": "claimed"}
        assert PollCycle.objects.count() == 1 and MetricSample.objects.count() == 2
        # The next cycle's shard is another lease: it runs.
        later = at + timedelta(seconds=shards.interval("fast"))
        third = shards.run_shard("fast", *args[1:3], shard.cycle + 1, *args[4:], at=later)
        assert third["pipelines"] == 2 and PollCycle.objects.count() == 2
    finally:
        if url:  # leases far in the future: leave none behind on a shared Redis
            shards.locks._redis(url).delete(
                *(
                    shards.locks.KEY_PREFIX + shards.lease_name("fast", shard.account_id, 0, shard.cycle + i)
                    for i in (0, 1)
                )
            )


def test_a_shard_queued_for_a_cycle_that_is_over_does_nothing(register, account, settings):
    settings.LOCK_REDIS_URL = ""
    register("orders")
    (shard,) = shards.plan("fast", cycle=shards.cycle_of("fast", T0))
    late = shards.cycle_end("fast", shard.cycle)
    result = shards.run_shard("fast", *shard.task_args, at=late)
    assert result == {"skipped": "its cycle is over"} and not PollCycle.objects.exists()


def test_a_cycle_is_dispatched_once_however_many_beats_run(register, account, settings):
    settings.LOCK_REDIS_URL = ""
    register("orders")
    planned = shards.dispatch("fast", at=T0)
    assert [(s.account_id, s.pipelines) for s in planned] == [(account.pk, 1)]
    assert shards.dispatch("fast", at=T0 + timedelta(seconds=20)) is None  # a second beat, same minute
    assert shards.dispatch("metrics", at=T0) is not None  # the other cadence is its own cycle
    assert shards.dispatch("fast", at=T0 + timedelta(seconds=60)) is not None  # the next minute


def test_a_denied_accounts_shard_fails_alone(register, account, proxied_account, fault_proxy, settings):
    settings.LOCK_REDIS_URL = ""
    good = [register(f"ok{i}") for i in range(3)]
    denied = [register(f"no{i}", account_=proxied_account) for i in range(3)]
    fault_proxy.rule = lambda req: "deny"
    planned = shards.plan("fast", cycle=shards.cycle_of("fast", T0), max_pipelines=2)
    assert len(planned) == 4
    results = [shards.run_shard("fast", *s.task_args, at=T0) for s in planned]
    by_account = {
        a: [r for s, r in zip(planned, results) if s.account_id == a] for a in (account.pk, proxied_account.pk)
    }
    assert [r["failed"] for r in by_account[account.pk]] == [0, 0]
    assert [r["failed"] for r in by_account[proxied_account.pk]] == [2, 1]
    for p in Pipeline.objects.filter(pk__in=[p.pk for p in denied]):
        assert "access denied" in p.last_error and p.last_sync_at is None
    assert all(
        p.last_sync_at is not None and not p.last_error for p in Pipeline.objects.filter(pk__in=[p.pk for p in good])
    )
    failed = PollCycle.objects.filter(account=proxied_account).order_by("started_at")
    assert [c.failed for c in failed] == [2, 1] and "access denied" in failed[0].errors[0]


def test_the_plan_weighs_pipelines_by_their_cloudwatch_queries(register, account):
    register("plain")
    register("full", api=True)
    AwsAccount.objects.filter(pk=account.pk).update(unsupported_statistics=["percentile"])
    (shard,) = shards.plan("metrics", cycle=1)
    # queue 5 + DLQ 1 + Lambda 6 (+ API 5 with an API), percentiles left out as the account asks.
    assert (shard.pipelines, shard.queries) == (2, (5 + 1 + 5) + (5 + 1 + 5 + 4))


def test_planning_reads_the_pipelines_in_one_query_however_many(register, account, django_assert_num_queries):
    for i in range(4):
        register(f"api{i}", api=True)
    with django_assert_num_queries(2):  # the accounts' statistics, the pipelines
        (shard,) = shards.plan("metrics", cycle=1)
    assert shard.pipelines == 4


# --- real worker processes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_broker():
    """The configured Redis (CELERY_BROKER_URL / LOCK_REDIS_URL), else a private redis-server."""
    if REDIS_URL:
        yield REDIS_URL
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis configured and no redis-server binary to run one")
    server = PrivateRedis(binary).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory):
    """A migrated database to copy for each test: on the configured Postgres server, else a SQLite file."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith("postgres"):
        server, name = configured.split("?")[0].rsplit("/", 1)
        template = f"{name}_shard_workers"
        postgres(server, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)", f"CREATE DATABASE {template}")
        db = Database(f"{server}/{template}")
    else:
        db = Database(f"sqlite:///{tmp_path_factory.mktemp('shards') / 'template.sqlite3'}")
    env = project_env(db.url, "memory://", str(tmp_path_factory.mktemp("migrate")))
    Processes(env, "").manage("migrate", "--noinput", "-v0")
    yield db
    if not db.is_sqlite:
        postgres(server, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")


def postgres(server, *statements):
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def worker_database(migrated_database, tmp_path):
    """A fresh copy of the migrated database for this test's worker processes; the test reads it with plain SQL."""
    if migrated_database.is_sqlite:
        path = tmp_path / "workers.sqlite3"
        shutil.copyfile(migrated_database.url.removeprefix("sqlite:///"), path)
        yield Database(f"sqlite:///{path}")
        return
    server, template = migrated_database.url.rsplit("/", 1)
    name = f"{template}_{tmp_path.name[-20:].replace('-', '_').lower()}"
    postgres(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name} TEMPLATE {template}")
    yield Database(f"{server}/{name}")
    postgres(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def workers(worker_database, worker_broker, emulator, tmp_path):
    """Start worker processes on the shared database and broker (shards of 10 pipelines); killed afterwards."""
    client = redis.Redis.from_url(worker_broker)
    stale = client.keys("opsboard:lock:*") + client.keys("celery*") + client.keys("_kombu*") + client.keys("unacked*")
    if stale:  # leases and messages of an earlier run whose ids the fresh rows reuse
        client.delete(*stale)
    env = project_env(
        worker_database.url, worker_broker, str(tmp_path / "var"), COLLECT_SHARD_PIPELINES="10", COLLECT_CONCURRENCY="4"
    )
    procs = Processes(env, str(tmp_path))
    yield procs
    procs.stop()


def drive(procs, command, **params):
    done = subprocess.run(
        [sys.executable, "-m", "tests.collection.shard_driver", command, json.dumps(params)],
        cwd=REPO,
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_queues(emulator, prefix, count):
    sqs = boto3.client(
        "sqs", region_name="us-east-1", endpoint_url=emulator.url, aws_access_key_id="t", aws_secret_access_key="t"
    )
    return {f"{prefix}{i:03d}": make_pipeline(sqs, f"{prefix}{i:03d}") for i in range(count)}


def finished_shards(db, kind, names):
    marks = ",".join(["%s"] * len(names))
    return db.rows(
        "SELECT a.name, c.pipelines, c.failed FROM pipelines_pollcycle c JOIN pipelines_awsaccount a "
        f"ON a.id = c.account_id WHERE c.kind = %s AND a.name IN ({marks}) ORDER BY c.started_at",
        (kind, *names),
    )


def shard_results(worker, task):
    return re.findall(rf"{task}\[[^\]]+\] succeeded in [0-9.]+s: (.*)", worker.output())


def test_two_worker_processes_share_a_cycle_and_run_each_shard_once(workers, worker_database, emulator):
    db = worker_database
    with FaultProxy(emulator.url, latency=0.1) as proxy:
        accounts = {
            name: {"endpoint": proxy.url, "queues": make_queues(emulator, name, 30)} for name in ("east", "west")
        }
        ids = drive(workers, "register", accounts=accounts)
        first, second = workers.worker(concurrency=2), workers.worker(concurrency=2)
        fast = drive(workers, "beat", kind="fast")
        assert fast["queued"] == 6  # 2 accounts × 30 pipelines, 10 to a shard
        rows = wait_until(lambda: len(r := finished_shards(db, "fast", list(accounts))) >= 6 and r, 90, "6 fast shards")
        # A second beat in the same cycle queues nothing; duplicated messages of its shards run nothing.
        assert drive(workers, "beat", kind="fast", cycle=fast["cycle"])["queued"] == -1
        assert drive(workers, "requeue", kind="fast", cycle=fast["cycle"]) == {"queued": 6}
        metrics = drive(workers, "beat", kind="metrics")
        wait_until(lambda: len(finished_shards(db, "metrics", list(accounts))) >= 6, 90, "6 metrics shards")
        claimed = lambda: sum(  # noqa: E731
            r.startswith("{'skipped': 'claimed'") for w in (first, second) for r in shard_results(w, "fast_cycle_shard")
        )
        wait_until(lambda: claimed() == 6, 60, "the duplicated shards to be skipped")

    assert sorted(rows) == [(name, 10, 0) for name in ("east", "east", "east", "west", "west", "west")]
    assert finished_shards(db, "fast", list(accounts)) == rows  # no shard ran twice
    assert metrics["queued"] == 6 and len(finished_shards(db, "metrics", list(accounts))) == 6
    every = [pk for pks in ids.values() for pk in pks]
    synced = db.rows("SELECT pipeline_id, count(*) FROM pipelines_metricsample GROUP BY pipeline_id")
    assert sorted(synced) == [(pk, 1) for pk in sorted(every)]  # every pipeline synced exactly once
    assert db.one(
        "SELECT count(*) FROM pipelines_pipeline WHERE last_sync_at IS NULL OR metrics_synced_until IS NULL"
    ) == (0,)
    # Both processes did part of the cycle.
    assert all(any(r.startswith("{'kind'") for r in shard_results(w, "fast_cycle_shard")) for w in (first, second))


def test_a_killed_workers_shard_is_done_by_the_next_cycle(workers, worker_database, emulator):
    db = worker_database
    with FaultProxy(emulator.url) as proxy:
        accounts = {"solo": {"endpoint": proxy.url, "queues": make_queues(emulator, "solo", 10)}}
        drive(workers, "register", accounts=accounts)
        doomed = workers.worker(concurrency=1)
        first_call = threading.Event()
        proxy.latency = 0.5  # 20 calls, 4 at a time: the shard is in its AWS phase for about 2.5 s
        proxy.rule = lambda req: first_call.set() or ""
        cycle = drive(workers, "beat", kind="fast")
        assert cycle["queued"] == 1
        assert first_call.wait(60), "the shard made no AWS call"
        doomed.kill()
        assert finished_shards(db, "fast", ["solo"]) == []  # it died mid-shard: nothing written
        proxy.latency = 0.0
        workers.worker(concurrency=1)
        assert drive(workers, "beat", kind="fast", cycle=cycle["cycle"])["queued"] == -1
        assert drive(workers, "beat", kind="fast", cycle=cycle["cycle"] + 1)["queued"] == 1
        rows = wait_until(lambda: finished_shards(db, "fast", ["solo"]), 60, "the next cycle's shard")
    assert rows == [("solo", 10, 0)]
    assert db.one("SELECT count(DISTINCT pipeline_id) FROM pipelines_metricsample") == (10,)


def test_a_denied_accounts_shards_fail_alone_on_the_workers(workers, worker_database, emulator):
    db = worker_database
    with FaultProxy(emulator.url) as allowed, FaultProxy(emulator.url) as denied:
        denied.rule = lambda req: "deny"
        accounts = {
            "open": {"endpoint": allowed.url, "queues": make_queues(emulator, "open", 20)},
            "shut": {"endpoint": denied.url, "queues": make_queues(emulator, "shut", 20)},
        }
        drive(workers, "register", accounts=accounts)
        workers.worker(concurrency=2)
        workers.worker(concurrency=2)
        assert drive(workers, "beat", kind="fast")["queued"] == 4
        rows = wait_until(lambda: len(r := finished_shards(db, "fast", list(accounts))) >= 4 and r, 90, "4 shards")
    assert sorted(rows) == [("open", 10, 0), ("open", 10, 0), ("shut", 10, 10), ("shut", 10, 10)]
    errors = db.rows(
        "SELECT p.last_error FROM pipelines_pipeline p JOIN pipelines_awsaccount a ON a.id = p.account_id "
        "WHERE a.name = 'shut'"
    )
    assert len(errors) == 20 and all("access denied" in e for (e,) in errors)
