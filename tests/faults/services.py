"""Private, throwaway services for the fault tests: a Postgres cluster, a redis-server, Celery workers.

Each runs as a real process on a free loopback port, owned by the test that started it, so the
shared Postgres and Redis (and any other test run using them) are never disturbed when a test
restarts or kills one. Everything started here is stopped by `stop()`, which the fixtures call
even when a test fails; processes run in their own process group so a kill reaches their children
(a Celery worker's pool processes).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsboard_demo.emulator import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy (returned); fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # a service restarting: try again
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the process group `proc` leads (it was started with start_new_session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --- Postgres ------------------------------------------------------------------------------------------


def postgres_bin() -> str | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl, if any."""
    found = [
        d
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/pg_ctl", os.X_OK)
    ]
    version = lambda d: int(v) if (v := Path(d).parent.name.split(".")[0]).isdigit() else 0  # noqa: E731
    return max(found, key=version) if found else None


class PrivatePostgres:
    """A Postgres cluster of its own in a temporary directory, listening on 127.0.0.1:<free port>.

    initdb refuses to run as root: when we are root, the cluster belongs to the `postgres` user and
    its commands run through `runuser`.
    """

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="opsboard-faults-pg-")
        self.data = f"{self.dir}/data"
        self.log = f"{self.dir}/postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_user, *args], check=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def _pg_ctl(self, *args: str) -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30", *args)

    def start(self) -> PrivatePostgres:
        self._run(f"{self.bindir}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        # Durability off: these clusters live for one test run.
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses={LOOPBACK} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._pg_ctl("-o", options, "start")
        return self

    def restart(self) -> None:
        """What an operator's `systemctl restart postgresql` does: every connection is cut."""
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        if os.path.exists(f"{self.data}/postmaster.pid"):
            try:
                self._pg_ctl("-m", "immediate", "stop")
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, name: str) -> str:
        return f"postgres://postgres@{LOOPBACK}:{self.port}/{name}"

    def execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)


# --- Redis ---------------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of its own on 127.0.0.1:<free port>, nothing persisted (as in CI)."""

    def __init__(self, binary: str):
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="opsboard-faults-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> PrivateRedis:
        log = open(f"{self.dir}/redis.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"],
            cwd=self.dir,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_until(self.ping, 15, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        return bool(redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=1, socket_connect_timeout=1).ping())

    def crash(self) -> None:
        """SIGKILL: everything it held (queued and unacknowledged Celery messages) is gone."""
        if self.proc is not None:
            kill_group(self.proc)

    def restart(self, down_for: float = 1.0) -> None:
        self.crash()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        self.crash()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the database the processes share ----------------------------------------------------------------


class Database:
    """The database a test's processes use (a private Postgres database, or a SQLite file), and
    plain SQL against it from the test process, which never switches its own Django database."""

    def __init__(self, url: str):
        self.url = url

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite:")

    def rows(self, query: str, params: tuple = ()) -> list[tuple]:
        if self.is_sqlite:
            with sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=20) as conn:
                return conn.execute(query.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    def one(self, query: str, params: tuple = ()) -> tuple | None:
        found = self.rows(query, params)
        return found[0] if found else None


# --- processes running the project ---------------------------------------------------------------------

#: Test-only timings for the worker processes, applied before the worker loads the tasks: how long a
#: redrive holds the messages it received (`worker.HOLD_SECONDS`, 180 in production: how long a dead
#: worker's messages stay invisible) and how long without a heartbeat makes a task abandoned
#: (`runner.STALE_SECONDS`, 120). Neither is a setting; with the production values a resume after a
#: SIGKILL takes over three minutes. FAULTS_REAL_TIMINGS=1 runs with the production values.
TEST_TIMINGS = {"HOLD_SECONDS": 8, "STALE_SECONDS": 4}

WORKER_BOOT = """
import os, sys
import django
django.setup()
timings = os.environ.get("FAULTS_TIMINGS")
if timings:
    import json
    from pipelines.dlq import runner, worker
    t = json.loads(timings)
    worker.HOLD_SECONDS, runner.STALE_SECONDS = t["HOLD_SECONDS"], t["STALE_SECONDS"]
from celery.__main__ import main
sys.argv[0] = "celery"
main()
"""


def project_env(database_url: str, broker_url: str, var_dir: str, **extra: str) -> dict[str, str]:
    """The environment a deployed opsboard process gets: its own settings module, no test settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "CELERY_", "LOCK_REDIS", "AWS_", "DJANGO_", "OPSBOARD_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="opsboard.settings",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        LOCK_REDIS_URL=broker_url if broker_url.startswith("redis") else "",
        SECRET_KEY="faults-only-secret-key-not-for-production-0123456789abcdef",
        OPSBOARD_VAR_DIR=var_dir,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8,::1",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    if os.environ.get("FAULTS_REAL_TIMINGS") != "1":
        env["FAULTS_TIMINGS"] = json.dumps(TEST_TIMINGS)
    env.update(extra)
    return env


class Processes:
    """Starts the project's commands and workers for one test; `stop()` kills whatever still runs."""

    def __init__(self, env: dict[str, str], log_dir: str):
        self.env = env
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []
        self.n = 0

    def manage(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def driver(self, command: str, **params: Any) -> Any:
        """Run tests/faults/driver.py's `command` (the product's own functions) and return its JSON."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.faults.driver", command, json.dumps(params)],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise AssertionError(f"driver {command} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def worker(self, concurrency: int = 2) -> Worker:
        self.n += 1
        w = Worker(self.env, f"{self.log_dir}/worker-{self.n}.log", f"faults{self.n}", concurrency)
        self.started.append(w.proc)
        return w.wait_ready()

    def stop(self) -> None:
        for proc in self.started:
            kill_group(proc)


class Worker:
    """`celery -A opsboard worker` in its own process group, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: str, name: str, concurrency: int):
        self.log_path = log_path
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER_BOOT,
                "-A",
                "opsboard",
                "worker",
                "-l",
                "info",
                "-n",
                f"{name}@%h",
                "-c",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def output(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> Worker:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the worker exited {self.proc.returncode}:\n{self.output()[-3000:]}")
            return " ready." in self.output()

        try:
            wait_until(ready, timeout, "the Celery worker to be ready")
        except AssertionError as exc:
            if "the worker exited" in str(exc):
                raise
            raise AssertionError(f"{exc}\n{self.output()[-3000:]}") from None
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as the OOM killer or a node loss would."""
        kill_group(self.proc)
