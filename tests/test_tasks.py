"""Celery tasks and the cycle lock: a slow cycle never runs twice at once."""

import os
import threading
import time
from datetime import timedelta

import pytest

from pipelines import clock, tasks
from pipelines.collection.locks import cycle_lock
from pipelines.models import Lock, MetricSample, PollCycle

REDIS_URL = os.environ.get("LOCK_REDIS_URL") or (
    os.environ.get("CELERY_BROKER_URL", "") if os.environ.get("CELERY_BROKER_URL", "").startswith("redis") else ""
)


def lock_backends():
    backends = [pytest.param("", id="database")]
    backends.append(
        pytest.param(
            REDIS_URL,
            id="redis",
            marks=pytest.mark.skipif(not REDIS_URL, reason="no Redis configured (set CELERY_BROKER_URL=redis://...)"),
        )
    )
    return backends


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", lock_backends())
def test_the_lock_admits_one_holder_at_a_time(settings, url):
    settings.LOCK_REDIS_URL = url
    with cycle_lock("t:1", ttl=30) as first:
        assert first
        with cycle_lock("t:1", ttl=30) as second:
            assert not second
        with cycle_lock("t:2", ttl=30) as other:
            assert other
    with cycle_lock("t:1", ttl=30) as again:
        assert again


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", lock_backends())
def test_concurrent_takers_get_exactly_one_lock(settings, url):
    from django.db import connection

    if not url and connection.vendor == "sqlite":
        pytest.skip("the in-memory SQLite test database cannot be shared by threads; runs on Postgres")
    settings.LOCK_REDIS_URL = url
    got, barrier = [], threading.Barrier(8)
    barrier_done = threading.Event()

    def take():
        barrier.wait()
        try:
            with cycle_lock("race", ttl=30) as ok:
                if ok:
                    got.append(1)
                    barrier_done.wait()
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    barrier_done.set()
    for t in threads:
        t.join()
    assert len(got) == 1


def test_an_expired_database_lease_can_be_taken_over(db, settings, monkeypatch):
    settings.LOCK_REDIS_URL = ""

    with cycle_lock("stuck", ttl=10) as first:
        assert first
        later = clock.now() + timedelta(seconds=11)
        monkeypatch.setattr("pipelines.clock.now", lambda: later)
        with cycle_lock("stuck", ttl=10) as second:
            assert second  # the first holder is presumed dead
    assert not Lock.objects.exists()


def test_a_cycle_is_skipped_while_another_holds_its_lock(register, account, settings):
    settings.LOCK_REDIS_URL = ""
    register("orders")
    with cycle_lock(f"fast:{account.pk}", ttl=30):
        result = tasks.fast_cycle_account.apply(args=[account.pk]).get()
    assert result == {"skipped": "locked"} and not MetricSample.objects.exists()
    result = tasks.fast_cycle_account.apply(args=[account.pk]).get()
    assert result["failed"] == 0 and result["api_calls"] == 2
    assert MetricSample.objects.count() == 1


def test_beat_fans_out_one_task_per_shard_once_per_cycle(register, account, monkeypatch, settings):
    settings.LOCK_REDIS_URL = ""
    register("orders")
    sent = []
    monkeypatch.setattr(tasks.fast_cycle_shard, "apply_async", lambda args, **kw: sent.append(("fast", *args[:2])))
    monkeypatch.setattr(
        tasks.metrics_cycle_shard, "apply_async", lambda args, **kw: sent.append(("metrics", *args[:2]))
    )
    assert tasks.fast_cycle() == 1 and tasks.metrics_cycle() == 1
    assert sent == [("fast", account.pk, 0), ("metrics", account.pk, 0)]
    # A second beat in the same cycle queues nothing.
    assert tasks.fast_cycle() == -1 and tasks.metrics_cycle() == -1 and len(sent) == 2


def test_metrics_and_maintenance_tasks_run(register, account, settings):
    settings.LOCK_REDIS_URL = ""
    register("orders")
    assert tasks.metrics_cycle_account.apply(args=[account.pk]).get()["failed"] == 0
    assert PollCycle.objects.filter(kind="metrics").count() == 1
    result = tasks.maintenance.apply().get()
    assert set(result) == {"rolled_up", "samples", "rollups", "audit", "stale_alerts"}


def test_beat_schedules_both_cadences(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["fast-cycle"]["schedule"] == settings.FAST_INTERVAL_SECONDS
    assert schedule["metrics-cycle"]["schedule"] == settings.METRICS_INTERVAL_SECONDS
    assert tasks.fast_cycle_account.time_limit < settings.FAST_INTERVAL_SECONDS
