"""Collection at scale: 10,000 pipelines in 50 accounts, the fast and metrics cycles sharded over 1 and 2 Celery worker processes.

The AWS side is a stub HTTP server of the two read calls the cycles make, in the JSON protocol botocore
uses for both (SQS GetQueueAttributes; CloudWatch GetMetricData, whose model also offers RPC v2 CBOR
and query, botocore picks JSON), with a fixed latency
per call and enough processes and threads that it is not the bottleneck (one moto process caps at
about 250 calls/s). The workers are real `celery worker` processes (solo pool: one process, one
shard at a time, its AWS calls on COLLECT_CONCURRENCY threads) on Redis and Postgres (SQLite when no
Postgres answers); beat's task is run here, at a fresh cycle number for each run.

Printed per run: the AWS calls (counted by the stub, and by the workers' meters in their PollCycle
rows) against the floor, the wall time from dispatch to the last shard recorded, the workers' CPU
seconds per 1,000 calls, and the shards recorded against the shards planned (a shard run twice would
show as an extra PollCycle row). From the 1-worker runs: pipelines one worker core keeps up with.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import setup

OPS = ("GetQueueAttributes", "GetMetricData")


# --- the stub AWS endpoint ---------------------------------------------------------------------------


def _handler(latency: float, counts):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, status: int, content_type: str, body: bytes, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(latency)
            target = self.headers.get("X-Amz-Target", "")
            if target == "AmazonSQS.GetQueueAttributes":
                with counts.get_lock():
                    counts[0] += 1
                # Steady answers (a queue's own backlog, DLQs empty), as between incidents: alerting work
                # stays what a normal cycle costs, not a storm of incidents opening and closing.
                url = json.loads(body).get("QueueUrl", "")
                n = 0 if url.endswith("-dlq") else zlib.crc32(url.encode()) % 50
                attrs = {
                    "ApproximateNumberOfMessages": str(n),
                    "ApproximateNumberOfMessagesNotVisible": str(n // 5),
                    "ApproximateNumberOfMessagesDelayed": "0",
                }
                self._send(200, "application/x-amz-json-1.0", json.dumps({"Attributes": attrs}).encode())
            elif target == "GraniteServiceVersion20100801.GetMetricData":
                request = json.loads(body)
                with counts.get_lock():
                    counts[1] += 1
                    counts[2] += len(request["MetricDataQueries"])
                start, end = float(request["StartTime"]), float(request["EndTime"])
                minutes = [start + 60 * i for i in range(int((end - start) // 60))]
                results = [
                    {
                        "Id": q["Id"],
                        "Label": q["Id"],
                        "Timestamps": minutes,
                        "Values": [float(random.randrange(0, 100)) for _ in minutes],
                        "StatusCode": "Complete",
                    }
                    for q in request["MetricDataQueries"]
                ]
                payload = json.dumps({"MetricDataResults": results, "Messages": []}).encode()
                self._send(200, "application/x-amz-json-1.0", payload)
            else:
                message = f"not stubbed: {self.path} {target}"
                self._send(
                    400, "application/json", json.dumps({"__type": "UnknownOperation", "message": message}).encode()
                )

    return Handler


class _ReusePortServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def _serve(port: int, latency: float, counts) -> None:
    server = _ReusePortServer(("127.0.0.1", port), _handler(latency, counts))
    server.serve_forever()


def start_stub(processes: int, latency: float):
    """Stub processes sharing one port (SO_REUSEPORT): (url, shared counters [GQA, GMD, queries], processes)."""
    port = _free_port()
    counts = multiprocessing.Array("q", 3)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_serve, args=(port, latency, counts), daemon=True) for _ in range(processes)]
    for p in procs:
        p.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return url, counts, procs
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the stub endpoint did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- worker processes -----------------------------------------------------------------------------------


def worker_env(database_url: str, redis_url: str, var_dir: str, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "LOCK_", "AWS_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="opsboard.settings",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=redis_url,
        LOCK_REDIS_URL=redis_url,
        SECRET_KEY="bench-only-secret-key-not-for-production-0123456789abcdef",
        OPSBOARD_VAR_DIR=var_dir,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION=setup.REGION,
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
        COLLECT_CONCURRENCY=str(concurrency),
        LOG_LEVEL="WARNING",
        DEBUG="false",
    )
    return env


def start_workers(n: int, env: dict[str, str], log_dir: str) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        log_path = Path(log_dir) / f"worker-{n}-{i}.log"
        log = open(log_path, "ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "opsboard", "worker", "-P", "solo", "-l", "info"]
                + ["-n", f"bench{n}-{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=setup.REPO,
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        log.close()
    deadline = time.monotonic() + 90
    for i, proc in enumerate(procs):
        log_path = Path(log_dir) / f"worker-{n}-{i}.log"
        while " ready." not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a worker did not start:\n{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the runs -----------------------------------------------------------------------------------------


def populate(stub_url: str, accounts: int, per_account: int) -> None:
    from pipelines.models import AwsAccount, Pipeline

    for a in range(accounts):
        account = AwsAccount.objects.create(name=f"acct{a:02d}", region=setup.REGION, endpoint_url=stub_url)
        pipes = []
        for i in range(per_account):
            name = f"a{a:02d}-p{i:04d}"
            base = f"{stub_url}/123456789012/{name}"
            pipes.append(
                Pipeline(
                    name=name,
                    account=account,
                    queue_url=base,
                    queue_name=name,
                    dlq_url=f"{base}-dlq",
                    dlq_arn=f"arn:aws:sqs:{setup.REGION}:123456789012:{name}-dlq",
                    function_name=f"{name}-consumer",
                    # Half of them behind an API (Gateway REST API): 5 more metrics each.
                    api_kind="rest" if i % 2 == 0 else "",
                    api_id=f"api{a:02d}{i:04d}" if i % 2 == 0 else "",
                    api_stage="prod" if i % 2 == 0 else "",
                )
            )
        Pipeline.objects.bulk_create(pipes, batch_size=2000)


def run_cycle(kind: str, cycle: int, counts, workers: list[subprocess.Popen], timeout: float) -> dict:
    """Dispatch one cycle (beat's task, as at second 1 of cycle `cycle`) and wait for every shard's record."""
    from pipelines import tasks
    from pipelines.collection import shards
    from pipelines.models import Pipeline, PollCycle

    Pipeline.objects.update(last_sync_at=None, metrics_synced_until=None)  # every pipeline due, same window
    before = PollCycle.objects.filter(kind=kind).count()
    with counts.get_lock():
        counts[0] = counts[1] = counts[2] = 0
    cpu0 = [cpu_seconds(p.pid) for p in workers]
    at = shards.cycle_end(kind, cycle - 1) + timedelta(seconds=1)
    started = time.perf_counter()
    with mock.patch("pipelines.clock.now", return_value=at):
        planned = shards.plan(kind, cycle)
        queued = (tasks.fast_cycle if kind == "fast" else tasks.metrics_cycle)()
    assert queued == len(planned), (queued, len(planned))
    deadline = time.monotonic() + timeout
    while PollCycle.objects.filter(kind=kind).count() - before < len(planned):
        if time.monotonic() > deadline:
            raise SystemExit(f"the {kind} cycle did not finish in {timeout:.0f}s")
        time.sleep(0.05)
    wall = time.perf_counter() - started
    time.sleep(1.0)  # a duplicate would land after the last expected record: give it the chance
    cpu = sum(cpu_seconds(p.pid) for p in workers) - sum(cpu0)
    rows = list(PollCycle.objects.filter(kind=kind).order_by("-pk")[: len(planned) + 5])
    rows = rows[: PollCycle.objects.filter(kind=kind).count() - before]
    stub_calls = counts[0] + counts[1]
    return {
        "shards": len(planned),
        "recorded": len(rows),
        "pipelines": sum(r.pipelines for r in rows),
        "failed": sum(r.failed for r in rows),
        "metered_calls": sum(r.api_calls for r in rows),
        "stub_calls": stub_calls,
        "queries": counts[2],
        "floor": floor(kind, planned),
        "wall": wall,
        "cpu": cpu,
    }


def floor(kind: str, planned) -> int:
    """Fast: one GetQueueAttributes per queue and DLQ. Metrics: ceil(queries / 500) per shard."""
    if kind == "fast":
        return 2 * sum(s.pipelines for s in planned)
    return sum(math.ceil(s.queries / 500) for s in planned)


def main() -> None:
    parser = setup.argument_parser(__doc__)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--per-account", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds the stub adds to every call")
    parser.add_argument("--stub-processes", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16, help="COLLECT_CONCURRENCY of each worker")
    parser.add_argument("--workers", default="1,2", help="worker process counts to run, e.g. 1,2")
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/opsboard_shrd_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/10")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the workers and the stub on the way out

    stub_url, counts, stub_procs = start_stub(args.stub_processes, args.latency)  # forked before any thread
    var_dir = setup.temp_dir("shard-bench-")
    database = args.database
    if database.startswith("postgres") and setup.postgres_reachable(database):
        setup.recreate_postgres(database)
    else:
        database = setup.sqlite_url(var_dir)
    os.environ["CELERY_BROKER_URL"] = os.environ["LOCK_REDIS_URL"] = args.redis
    setup.configure_django(database, var_dir)
    import redis

    redis.Redis.from_url(args.redis).flushdb()  # the bench's own Redis database: leases and queues of old runs
    setup.migrate()
    populate(stub_url, args.accounts, args.per_account)
    from pipelines.collection import shards
    from pipelines.models import Pipeline

    total = Pipeline.objects.count()
    print(
        f"{total} pipelines in {args.accounts} accounts; stub: {args.stub_processes} processes, "
        f"{args.latency * 1000:.0f} ms per call; COLLECT_CONCURRENCY={args.concurrency}; "
        f"COLLECT_SHARD_PIPELINES={os.environ.get('COLLECT_SHARD_PIPELINES', 500)}; database: {database.split(':')[0]}"
    )
    env = worker_env(database, args.redis, var_dir, args.concurrency)
    # Cycles far ahead: a shard is dropped once its cycle is over, and one worker may need longer than an
    # interval for all of them (that is the figure measured here, not a failure to hide).
    cycle_no = {kind: shards.cycle_of(kind, datetime.now(UTC)) + 1000 for kind in ("fast", "metrics")}
    results = {}
    header = f"{'kind':8}{'workers':>8}{'shards':>7}{'ran':>5}{'pipelines':>10}{'failed':>7}{'calls':>8}{'floor':>7}"
    print(header + f"{'queries':>9}{'wall s':>8}{'CPU s':>7}{'CPU s/1k calls':>15}")
    try:
        for n in [int(x) for x in args.workers.split(",")]:
            workers = start_workers(n, env, var_dir)
            try:
                for kind in ("fast", "metrics"):
                    cycle_no[kind] += 1
                    r = run_cycle(kind, cycle_no[kind], counts, workers, timeout=900)
                    results[(kind, n)] = r
                    per_k = r["cpu"] / max(1, r["stub_calls"]) * 1000
                    print(
                        f"{kind:8}{n:>8}{r['shards']:>7}{r['recorded']:>5}{r['pipelines']:>10}{r['failed']:>7}"
                        f"{r['stub_calls']:>8}{r['floor']:>7}{r['queries']:>9}{r['wall']:>8.1f}{r['cpu']:>7.1f}"
                        f"{per_k:>15.2f}"
                    )
            finally:
                stop_workers(workers)
    finally:
        for p in stub_procs:
            p.terminate()
    summarize(results, total)


def summarize(results: dict, total: int) -> None:
    print()
    for (kind, n), r in sorted(results.items()):
        print(
            f"{kind} on {n}: calls at the floor: {setup.yes(r['stub_calls'] == r['floor'] == r['metered_calls'])}; "
            f"every shard once: {setup.yes(r['recorded'] == r['shards'])}; "
            f"every pipeline once: {setup.yes(r['pipelines'] == total)}"
        )
    for (kind, n), r in sorted(results.items()):
        if kind == "metrics" and r["queries"]:  # a GetMetricData call carries up to 500 queries: per query too
            print(f"metrics on {n}: {r['cpu'] / r['queries'] * 1000:.2f} worker CPU s per 1,000 metric queries")
    for kind in ("fast", "metrics"):
        if (kind, 1) in results and (kind, 2) in results:
            one, two = results[(kind, 1)]["wall"], results[(kind, 2)]["wall"]
            print(f"{kind}: wall time 1 → 2 workers {one:.1f}s → {two:.1f}s ({one / two:.2f}× faster)")
    if ("fast", 1) in results:
        fast = results[("fast", 1)]
        metrics = results.get(("metrics", 1))
        per_pipeline = fast["cpu"] / total
        print(f"one worker core, fast cycle alone: {60 / per_pipeline:,.0f} pipelines at a 60 s cycle")
        if metrics:
            # The metrics cycle runs every METRICS_INTERVAL_SECONDS (300 s): a fifth of it per minute.
            per_minute = per_pipeline + metrics["cpu"] / total / 5
            print(f"one worker core, fast + metrics (every 5 min): {60 / per_minute:,.0f} pipelines")


if __name__ == "__main__":
    main()
