"""A sync cycle cut short by a Postgres restart: `manage.py sync_metrics` (as cron runs it) on the
private Postgres cluster, the emulator behind a latency proxy so the restart lands mid-cycle."""

from __future__ import annotations

import subprocess
import sys
import threading

from opsboard_demo.emulator import FaultProxy
from tests.faults.queues import make_pipeline
from tests.faults.services import REPO, Processes, project_env

PIPELINES = 6


def test_it_recovers_from_a_database_restart_during_a_sync_cycle(sqs, fault_moto, needs_postgres, database, tmp_path):
    procs = Processes(project_env(database.url, "memory://", str(tmp_path / "var"), COLLECT_CONCURRENCY="2"), "")
    with FaultProxy(fault_moto.url) as proxy:
        queues = {f"p{i}": make_pipeline(sqs, f"p{i}")[0] for i in range(PIPELINES)}
        procs.driver("register", endpoint=proxy.url, region="us-east-1", queues=queues)

        # Each GetQueueAttributes takes 0.4 s: 12 of them, two at a time, keep the cycle in its AWS
        # phase for about 2.4 s, holding the database connection it read the pipelines with.
        # Postgres restarts as the first call arrives, so the cycle's writes meet a cut connection.
        first_call = threading.Event()
        proxy.latency = 0.4
        proxy.rule = lambda req: first_call.set() or ""
        cycle = subprocess.Popen(
            [sys.executable, "manage.py", "sync_metrics", "--fast-only", "--json"],
            cwd=REPO,
            env=procs.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert first_call.wait(60), "the cycle made no AWS call"
            needs_postgres.restart()
            _, err = cycle.communicate(timeout=60)
        finally:
            cycle.kill()
        assert cycle.returncode == 1  # cron sees the failure, told in a sentence, not a traceback
        assert "Traceback" not in err and f"{PIPELINES} pipeline(s) failed" in err, err[-2000:]
        assert "the database failed while storing (OperationalError)" in err, err[-2000:]
        # Nothing half-written: the cycle's rows go in one transaction.
        assert database.one("SELECT count(*) FROM pipelines_metricsample") == (0,)
        # The cycle is recorded as failed, every pipeline of it (the poll-cycle list, /healthz and /metrics read this).
        assert database.rows("SELECT kind, failed FROM pipelines_pollcycle") == [("fast", PIPELINES)]

        # The next cycle, on the restarted server, succeeds and writes one row per pipeline and minute.
        proxy.reset_faults()
        again = procs.manage("sync_metrics", "--fast-only")
    cycles = database.rows("SELECT kind, failed FROM pipelines_pollcycle ORDER BY started_at")
    assert cycles == [("fast", PIPELINES), ("fast", 0)], (cycles, again.stdout)
    assert database.one("SELECT count(DISTINCT pipeline_id) FROM pipelines_metricsample") == (PIPELINES,)
    assert (
        database.rows("SELECT pipeline_id, minute FROM pipelines_metricsample GROUP BY 1, 2 HAVING count(*) > 1") == []
    )
    assert database.one("SELECT count(*) FROM pipelines_pipeline WHERE last_sync_at IS NULL") == (0,)
