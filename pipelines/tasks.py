"""Celery tasks: thin wrappers that take ids, take a lock, call the domain packages' functions, and return.

Beat runs `fast_cycle` and `metrics_cycle`; each fans out one task per shard of the cycle (a run of
an account's pipelines, `collection/shards.py`) so workers on many machines share even one large
account. A cycle number is dispatched once (a second beat queues nothing) and each shard of it runs
once (its lease). `fast_cycle_account` / `metrics_cycle_account` run a whole account under its lock.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings

from pipelines.alerting import deliveries, evaluate
from pipelines.collection import cycles, retention, shards
from pipelines.collection.locks import cycle_lock
from pipelines.dlq import runner, triage
from pipelines.models import AwsAccount

log = logging.getLogger(__name__)


def _hard_limit(interval: int) -> int:
    return max(30, int(interval * 0.9))


def _fan_out(kind: str, task) -> int:
    """Queue one task per shard of this cycle; each message expires with its cycle. -1: dispatched already."""
    planned = shards.dispatch(kind)
    if planned is None:
        return -1
    for s in planned:
        task.apply_async(args=s.task_args, expires=shards.cycle_end(s.kind, s.cycle))
    return len(planned)


@shared_task(ignore_result=True)
def fast_cycle() -> int:
    return _fan_out("fast", fast_cycle_shard)


@shared_task(ignore_result=True)
def metrics_cycle() -> int:
    return _fan_out("metrics", metrics_cycle_shard)


@shared_task(
    ignore_result=True,
    soft_time_limit=_hard_limit(settings.FAST_INTERVAL_SECONDS) - 5,
    time_limit=_hard_limit(settings.FAST_INTERVAL_SECONDS),
)
def fast_cycle_shard(account_id: int, index: int, cycle: int, first_pk: int, last_pk: int) -> dict:
    return shards.run_shard("fast", account_id, index, cycle, first_pk, last_pk)


@shared_task(
    ignore_result=True,
    soft_time_limit=_hard_limit(settings.METRICS_INTERVAL_SECONDS) - 5,
    time_limit=_hard_limit(settings.METRICS_INTERVAL_SECONDS),
)
def metrics_cycle_shard(account_id: int, index: int, cycle: int, first_pk: int, last_pk: int) -> dict:
    return shards.run_shard("metrics", account_id, index, cycle, first_pk, last_pk)


def _run_locked(kind: str, account_id: int, fn, ttl: int) -> dict:
    with cycle_lock(f"{kind}:{account_id}", ttl) as acquired:
        if not acquired:
            log.info("%s cycle for account %s is still running elsewhere; skipped", kind, account_id)
            return {"skipped": "locked"}
        account = AwsAccount.objects.filter(pk=account_id).first()
        if account is None:
            return {"skipped": "account deleted"}
        report = fn(account)
        if report.errors:
            log.warning("%s cycle for %s: %d pipeline(s) failed", kind, account.name, len(report.errors))
        return report.as_dict()


@shared_task(
    ignore_result=True,
    soft_time_limit=_hard_limit(settings.FAST_INTERVAL_SECONDS) - 5,
    time_limit=_hard_limit(settings.FAST_INTERVAL_SECONDS),
)
def fast_cycle_account(account_id: int) -> dict:
    return _run_locked("fast", account_id, cycles.run_fast_cycle, _hard_limit(settings.FAST_INTERVAL_SECONDS))


@shared_task(
    ignore_result=True,
    soft_time_limit=_hard_limit(settings.METRICS_INTERVAL_SECONDS) - 5,
    time_limit=_hard_limit(settings.METRICS_INTERVAL_SECONDS),
)
def metrics_cycle_account(account_id: int) -> dict:
    return _run_locked("metrics", account_id, cycles.run_metrics_cycle, _hard_limit(settings.METRICS_INTERVAL_SECONDS))


@shared_task(ignore_result=True, soft_time_limit=540, time_limit=570)
def maintenance() -> dict:
    with cycle_lock("maintenance", 570) as acquired:
        if not acquired:
            return {"skipped": "locked"}
        resumed = runner.resume_stale_redrives()  # DLQ tasks whose worker died
        stale_scans = triage.recover_stale()  # triage scans whose worker died
        try:
            stale = len(evaluate.evaluate_clock().opened)  # pipelines no cycle has synced lately
        except Exception:  # upkeep below must run even so
            log.exception("the maintenance alert evaluation failed")
            stale = 0
        result = {"rolled_up": retention.rollup(), **retention.prune(), "stale_alerts": stale}
        if stale_scans:
            result["triage_scans_failed"] = stale_scans
        return {**result, "redrives_resumed": resumed} if resumed else result


# --- dead-letter queues ------------------------------------------------------------------------------


@shared_task(ignore_result=True, acks_late=True)
def run_redrive(task_id: int) -> dict:
    """Run (or resume) one DLQ task to its end: runner.run_redrive does the work."""
    task = runner.run_redrive(task_id)
    return {"skipped": "not ours to run"} if task is None else {"status": task.status, "moved": task.moved}


@shared_task(ignore_result=True)
def resume_stale_redrives() -> list[int]:
    return runner.resume_stale_redrives()


@shared_task(
    ignore_result=True,
    soft_time_limit=settings.TRIAGE_SCAN_SECONDS + 600,
    time_limit=settings.TRIAGE_SCAN_SECONDS + 660,
)
def run_triage_scan(scan_id: int) -> dict:
    """Run one DLQ triage scan (triage.run_scan claims it, so a duplicate task does nothing)."""
    scan = triage.run_scan(scan_id)
    return {"skipped": "not ours to run"} if scan is None else {"status": scan.status, "examined": scan.examined}


@worker_ready.connect
def _resume_redrives_after_restart(**_) -> None:
    """A worker that (re)starts picks up tasks whose worker died, once their heartbeat is stale."""
    resume_stale_redrives.apply_async(countdown=runner.STALE_SECONDS + 5)


# --- notifications -----------------------------------------------------------------------------------


@shared_task(ignore_result=True)
def deliver_notification(delivery_id: int) -> str | None:
    """Send one notification (deliveries.deliver claims it, so a duplicate task sends nothing)."""
    delivery = deliveries.deliver(delivery_id)
    return None if delivery is None else delivery.status


@shared_task(ignore_result=True, soft_time_limit=55, time_limit=58)
def deliver_due_notifications() -> int:
    """The beat sweep: notifications held by a silence that has ended, retries, and deliveries whose
    task never reached a worker."""
    try:
        deliveries.release_held()
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # the retries below must run even so
        log.exception("releasing held notifications failed")
    return deliveries.deliver_due()
