"""Overview load benchmark: 50 operators on the overview through gunicorn for 60 s, over real HTTP.

Run from the repository root:

    .venv/bin/python bench/load_overview.py                     # Postgres on 127.0.0.1:5432 if it answers, else SQLite
    .venv/bin/python bench/load_overview.py --sqlite            # a throwaway SQLite file
    .venv/bin/python bench/load_overview.py --clients 20 --seconds 30 --pipelines 500

It prints figures; it asserts nothing, but exits 1 when any request failed.

Set-up: a database of its own (`opsboard_load` on the Postgres server, dropped and created afresh,
or a SQLite file in a temporary directory), migrated; `--pipelines` registered pipelines (300) with
the history the overview reads, written as the collectors write it: the last 30 minutes of minute
rows and 24 hours of hourly rollups per pipeline (a daily curve, a backlog building on every 7th
pipeline, DLQ messages on every 10th, Lambda errors and throttles on some, stale syncs on a few), then trends,
health and sparklines stored by the same functions a sync runs, and the alert rules evaluated
(which opens incidents, shown above the table). Static files are collected as a deployment does.

Server: `gunicorn opsboard.wsgi -w 4 -b 127.0.0.1:<free port>` with `opsboard.settings` (DEBUG off,
WhiteNoise with its manifest, database sessions, the production middleware), plain HTTP (the TLS
redirect and secure cookies are turned off through their environment variables).

Load: `--clients` staff users (each in the "operators" group, with the view permissions), each
logged in with a session of their own, created as the login view creates one. Each client is a thread
with a keep-alive `http.client` connection, in a closed loop with no think time (a worst case: an
operator's browser asks every 30 s): the overview (`/admin/`), then its refresh — the rows fragment
(`/admin/overview/rows/`) and the incident strip (`/admin/incidents/strip/`), as overview.js
fetches them — twice, and again. A request counts as an error when the status is not 200, the body
is not the page expected (the login page served with a 200 counts), or it raises. Latency is per
request, from sending to the last byte read. Peak RSS is each gunicorn worker's VmHWM at the end.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import setup

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/opsboard_load"
PAGES = {
    # name: (path, a string the right answer contains)
    "overview": ("/admin/", 'id="ob-overview"'),
    "rows": ("/admin/overview/rows/", "<tr"),
    "strip": ("/admin/incidents/strip/", ""),
}
#: What one client asks for, in order, over and over: the page, then two rounds of its refresh.
CYCLE = ["overview", "rows", "strip", "rows", "strip"]


def parse_args(argv=None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--clients", type=int, default=50, help="concurrent operators (default 50)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the load runs (default 60)")
    ap.add_argument("--pipelines", type=int, default=300, help="registered pipelines (default 300)")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (default 4)")
    ap.add_argument("--think", type=float, default=0.0, help="seconds each client waits between requests (default 0)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--sqlite", action="store_true", help="a throwaway SQLite file even if Postgres answers")
    where.add_argument("--database-url", default=None, help=f"a database to recreate and use (default {POSTGRES_URL})")
    return ap.parse_args(argv)


ARGS = parse_args()
TMP = setup.temp_dir("opsboard-load-bench-")
if ARGS.sqlite:
    DATABASE_URL = setup.sqlite_url(TMP)
elif ARGS.database_url or setup.postgres_reachable(POSTGRES_URL):
    DATABASE_URL = ARGS.database_url or POSTGRES_URL
    setup.recreate_postgres(DATABASE_URL)
else:
    DATABASE_URL = setup.sqlite_url(TMP)
setup.configure_django(DATABASE_URL, TMP)

from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402

from opsboard_demo.emulator import free_port, wait_for_http  # noqa: E402
from pipelines.alerting import evaluate, history, rules  # noqa: E402
from pipelines.clock import now  # noqa: E402
from pipelines.collection import retention  # noqa: E402
from pipelines.models import AwsAccount, Incident, MetricRollup, MetricSample, Pipeline  # noqa: E402

THEMES = ["orders", "payments", "invoices", "events", "emails", "webhooks", "imports", "exports", "audit", "search"]


# --- the data ------------------------------------------------------------------------------------------


def make_pipelines(count: int) -> list[Pipeline]:
    """Registered pipelines with discovered configuration, in two accounts."""
    at = now()
    accounts = [
        AwsAccount.objects.create(name="production", region="eu-west-1"),
        AwsAccount.objects.create(name="staging", region="us-east-1"),
    ]
    pipes = []
    for i in range(count):
        account = accounts[0] if i % 4 else accounts[1]
        region, acct = account.region, "123456789012"
        name = f"{THEMES[i % len(THEMES)]}-{i:03d}"
        fifo = i % 25 == 24
        qname = f"{name}.fifo" if fifo else name
        dlq = i % 6 != 0
        fn = i % 8 != 7
        pipes.append(
            Pipeline(
                name=name,
                account=account,
                queue_url=f"https://sqs.{region}.amazonaws.com/{acct}/{qname}",
                queue_arn=f"arn:aws:sqs:{region}:{acct}:{qname}",
                queue_name=qname,
                is_fifo=fifo,
                visibility_timeout=180,
                retention_period=345600,
                dlq_url=f"https://sqs.{region}.amazonaws.com/{acct}/{name}-dlq" if dlq else "",
                dlq_arn=f"arn:aws:sqs:{region}:{acct}:{name}-dlq" if dlq else "",
                max_receive_count=5 if dlq else None,
                dlq_retention_period=1209600 if dlq else None,
                function_name=f"{name}-consumer" if fn else "",
                function_arn=f"arn:aws:lambda:{region}:{acct}:function:{name}-consumer" if fn else "",
                function_timeout=30 if fn else None,
                batch_size=10 if fn else None,
                maximum_concurrency=(10 if i % 4 == 0 else None) if fn else None,
                report_batch_item_failures=(i % 2 == 1) if fn else None,
                mapping_state="Enabled" if fn else "",
                consumer_log_group=f"/aws/lambda/{name}-consumer" if fn else "",
                backlog_threshold=[1000, 5000, 20000][i % 3],
                oldest_age_sla=[900, 1800, 3600][i % 3],
                discovered_at=at,
                last_sync_at=at - timedelta(minutes=12 if i % 50 == 49 else 0),
                metrics_synced_until=at,
            )
        )
    Pipeline.objects.bulk_create(pipes, batch_size=500)
    return list(Pipeline.objects.select_related("account").order_by("pk"))


def levels(i: int, age_minutes: float, rng: random.Random) -> dict:
    """One minute (or hour) of a pipeline's values: a daily curve, noise, a backlog on every 7th
    pipeline, DLQ messages on every 10th, Lambda errors and throttles on some."""
    rate = (5 + (i % 40) * 5) * (1 + 0.6 * math.sin(2 * math.pi * (i + age_minutes / 1440)))
    building = i % 7 == 3
    visible = int(rate * 0.2 * (0.5 + rng.random()) + (max(0, 30 - age_minutes) * rate * 0.5 if building else 0))
    sent = int(rate * (0.9 + 0.2 * rng.random()))
    errors = int(5 * rng.random()) if i % 13 == 5 else 0
    return {
        "visible": visible,
        "in_flight": int(rate * 0.05 * (0.5 + rng.random())),
        "delayed": 0,
        "dlq_visible": 1 + (i % 40) if i % 10 == 2 else 0,
        "oldest_age": int(20 + 40 * rng.random() + 60 * visible / max(rate, 1)),
        "sent": sent,
        "received": sent,
        "deleted": max(0, sent - errors),
        "empty_receives": int(30 * rng.random()),
        "lambda_invocations": (sent + 9) // 10,
        "lambda_errors": errors,
        "lambda_throttles": 1 if i % 14 == 3 and rng.random() > 0.7 else 0,
        "lambda_duration_avg": 40 + 60 * rng.random(),
        "lambda_concurrency": 1 + int(rate / 40),
    }


def load_history(pipes: list[Pipeline]) -> tuple[int, int]:
    """The last 30 minutes of minute rows and 24 hours of hourly rollups for every pipeline."""
    rng = random.Random(7)
    at = now()
    minute = at.replace(second=0, microsecond=0)
    hour = at.replace(minute=0, second=0, microsecond=0)
    samples, rollups = [], []
    for i, p in enumerate(pipes):
        for m in range(30):
            samples.append(MetricSample(pipeline=p, minute=minute - timedelta(minutes=m), **levels(i, m, rng)))
        for h in range(1, 25):
            values = levels(i, h * 60, rng)
            rollups.append(
                MetricRollup(
                    pipeline=p, hour=hour - timedelta(hours=h), samples=60, visible_max=values["visible"] * 2, **values
                )
            )
    MetricSample.objects.bulk_create(samples, batch_size=2000)
    MetricRollup.objects.bulk_create(rollups, batch_size=2000)
    # The live fields a fast cycle stores from its newest counts.
    for i, p in enumerate(pipes):
        newest = levels(i, 0, random.Random(i))
        p.backlog, p.in_flight, p.delayed = newest["visible"], newest["in_flight"], 0
        p.dlq_depth = newest["dlq_visible"] if p.dlq_url else None
        p.oldest_age = newest["oldest_age"]
    Pipeline.objects.bulk_update(pipes, ["backlog", "in_flight", "delayed", "dlq_depth", "oldest_age"], batch_size=500)
    return len(samples), len(rollups)


def judge(pipes: list[Pipeline]) -> None:
    """Trends, health and sparklines as a sync stores them; the alert rules evaluated (incidents)."""
    at = now()
    for account_id in {p.account_id for p in pipes}:
        mine = [p for p in pipes if p.account_id == account_id]
        recent = history.refresh(mine, at)
        evaluate.evaluate_after_sync(mine, at, recent, rules.FAST)
        evaluate.evaluate_after_sync(mine, at, recent, rules.METRICS)
    retention.refresh_sparklines(at, [p.pk for p in pipes])


def operators(count: int) -> list[str]:
    """`count` staff users in an "operators" group with the view permissions; a session each."""
    group = Group.objects.create(name="operators")
    group.permissions.set(Permission.objects.filter(content_type__app_label="pipelines", codename__startswith="view_"))
    # The backend the login view records for a password login (django-axes' own backend only checks).
    backend = next(
        (b for b in settings.AUTHENTICATION_BACKENDS if b.endswith("ModelBackend")),
        settings.AUTHENTICATION_BACKENDS[-1],
    )
    keys = []
    for n in range(count):
        user = User.objects.create_user(f"operator{n:02d}", password=None, is_staff=True)
        user.groups.add(group)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = backend
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
    return keys


# --- the server ------------------------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DJANGO_SETTINGS_MODULE="opsboard.settings",
        DATABASE_URL=DATABASE_URL,
        SECRET_KEY=settings.SECRET_KEY,  # the sessions made here are signed with it
        DEBUG="false",
        SECURE_SSL_REDIRECT="false",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        OPSBOARD_VAR_DIR=TMP,
        LOG_LEVEL="WARNING",
    )
    return env


def collectstatic() -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=setup.REPO,
        env=server_env(),
        check=True,
    )


def start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    log = open(Path(TMP) / "gunicorn.log", "ab")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "opsboard.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "60",
        ],
        cwd=setup.REPO,
        env=server_env(),
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_http(f"http://127.0.0.1:{port}/healthz?checks=database", timeout=60)
    return proc


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(c) for c in children]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- the load ----------------------------------------------------------------------------------------------


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.examples: list[str] = []

    def ok(self, page: str, seconds: float) -> None:
        with self.lock:
            self.latency[page].append(seconds)

    def error(self, page: str, what: str) -> None:
        with self.lock:
            self.errors[page] += 1
            if len(self.examples) < 5:
                self.examples.append(f"{page}: {what}")


def client(port: int, session_key: str, stop_at: float, think: float, results: Results, offset: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Cookie": f"sessionid={session_key}", "Accept": "text/html"}
    n = offset  # the clients start at different places in the cycle
    while time.monotonic() < stop_at:
        page = CYCLE[n % len(CYCLE)]
        n += 1
        path, expected = PAGES[page]
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - started
            if resp.status != 200:
                results.error(page, f"HTTP {resp.status}")
            elif expected and expected.encode() not in body:
                results.error(page, "200 but not the expected page (logged out?)")
            else:
                results.ok(page, elapsed)
            if resp.will_close:
                conn.close()
        except Exception as exc:
            results.error(page, f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        if think:
            time.sleep(think)
    conn.close()


def warm_up(port: int, session_key: str, workers: int) -> None:
    """Each page a few times before the clock starts: a worker's first responses load code and templates."""
    for _ in range(2 * workers):
        for path, _expected in PAGES.values():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path, headers={"Cookie": f"sessionid={session_key}"})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status != 200:
                raise SystemExit(f"warm-up: {path} answered HTTP {resp.status}; see {TMP}/gunicorn.log")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)] if s else float("nan")


def main(args: argparse.Namespace) -> int:
    engine = "Postgres" if DATABASE_URL.startswith("postgres") else "SQLite"
    t0 = time.monotonic()
    setup.migrate()
    pipes = make_pipelines(args.pipelines)
    n_samples, n_rollups = load_history(pipes)
    judge(pipes)
    keys = operators(args.clients)
    open_incidents = Incident.objects.filter(resolved_at__isnull=True).count()
    collectstatic()
    print(
        f"set-up in {time.monotonic() - t0:.1f} s: {engine} ({DATABASE_URL.rsplit('/', 1)[-1]}), "
        f"{len(pipes)} pipelines, {n_samples:,} minute rows, {n_rollups:,} hourly rollups, "
        f"{open_incidents} open incidents, {len(keys)} operators with a session each",
        flush=True,
    )
    port = free_port()
    server = start_gunicorn(port, args.workers)
    try:
        workers = worker_pids(server.pid)
        results = Results()
        # One request per page before the clock starts: each worker's first response loads code.
        warm_up(port, keys[0], args.workers)
        stop_at = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client, args=(port, key, stop_at, args.think, results, n), daemon=True)
            for n, key in enumerate(keys)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 120)
        elapsed = time.monotonic() - started
        rss = {pid: peak_rss_mib(pid) for pid in workers if Path(f"/proc/{pid}").exists()}
        master_rss = peak_rss_mib(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

    all_latency = [x for v in results.latency.values() for x in v]
    requests = len(all_latency) + sum(results.errors.values())
    errors = sum(results.errors.values())
    print(
        f"\n{args.clients} clients, closed loop{f' with {args.think}s think time' if args.think else ', no think time'}, "
        f"{elapsed:.1f} s against gunicorn -w {args.workers} ({os.cpu_count()} CPUs on this machine)\n"
    )
    print(f"{'':10}{'requests':>10}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for page in [*PAGES, "all"]:
        lat = all_latency if page == "all" else results.latency[page]
        errs = errors if page == "all" else results.errors[page]
        n = len(lat) + errs
        print(
            f"{page:10}{n:>10,}{errs:>8}{n / elapsed:>9.1f}"
            f"{pct(lat, 50) * 1000:>9.0f}{pct(lat, 95) * 1000:>9.0f}{pct(lat, 99) * 1000:>9.0f}"
            f"{(max(lat) if lat else float('nan')) * 1000:>9.0f}"
        )
    print(
        "\npeak RSS (VmHWM) of the gunicorn workers: "
        + ", ".join(f"{v:.0f}" for v in rss.values())
        + f" MiB (max {max(rss.values(), default=float('nan')):.0f}); master {master_rss:.0f} MiB"
    )
    print(f"requests {requests:,}, errors {errors} ({setup.yes(errors == 0)} error-free)")
    for example in results.examples:
        print(f"  e.g. {example}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
