"""Collection benchmark: API calls per cycle, fast-cycle wall time under latency, cost per pipeline.

Run from the repository root (also `make bench`):

    .venv/bin/python bench/collect_bench.py            # full: N = 10, 100, 1000; timing at 1000 pipelines
    .venv/bin/python bench/collect_bench.py --quick    # N = 10, 100; timing at 200 pipelines

It prints figures; it asserts nothing. Everything runs against moto in server mode (`MotoServer`),
on a throwaway SQLite database under a temporary directory unless `--database-url` is given.

1. Calls per cycle, taken from the `CycleReport` the cycles return, against the floor:
   2N `sqs:GetQueueAttributes` per fast cycle (every pipeline has a queue and a DLQ) and
   ceil(planned metrics / 500) `cloudwatch:GetMetricData` per metrics cycle. The emulator rejects
   percentile statistics, so one warm-up metrics cycle runs first (the account learns that) and the
   steady-state cycle after it is the one compared with the floor. What a metrics cycle plans
   depends on its number (`cycles.cycle_number`: the DLQ's oldest-message age is fetched every 3rd
   cycle only) and on whether the fast cycle saw each DLQ empty (then it is not fetched at all), so
   the steady-state cycle is run at the next cycle that would fetch the DLQ age, and the floor is
   computed from a plan made the way `run_metrics_cycle` makes it for that cycle, cross-checked
   against the `metrics_requested` the cycle reports. The bench's DLQs are empty, so the DLQ age is
   left out there too; the plan with DLQ messages is printed alongside.
2. Wall time of one fast cycle with 20 ms added to every AWS call by a `FaultProxy`, against a plain
   sequential boto3 loop making the same GetQueueAttributes calls through the same proxy; then the
   same at 65 ms, the design brief's reference (2,000 calls through a "20 ms" proxy took 134 s
   sequentially, ~67 ms a call, because that proxy added a ~45 ms Nagle/delayed-ACK stall; the
   `FaultProxy` handler now disables Nagle, so "20 ms" is 20 ms). Each timed job runs in a fresh
   child process (the proxy stays in this one), so the child's peak RSS (VmHWM; its ru_maxrss is
   inherited from this parent across exec) is the memory a worker process needs for the cycle, and
   neither side's timing shares a GIL with the proxy. A fast cycle straight to the emulator shows
   the emulator/CPU floor, and a few sequential calls at latency 0, direct and through the proxy,
   show what the proxy itself costs per call.
3. Estimated AWS API cost per pipeline-month at the configured cadences, from `cost.monthly_cost`
   (which counts the DLQ age as if the DLQ always held messages: the upper bound); the DLQ-empty
   rows are that less the DLQ-age queries a cycle leaves out for a DLQ it knows is empty.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import setup

LATENCY = 0.02
#: The design brief's reference: 2,000 sequential calls through its "20 ms" proxy took 134 s (~67 ms a call).
LATENCY_REFERENCE = 0.065
REFERENCE_SECONDS, REFERENCE_CALLS = 134.0, 2000
RESULT_TAG = "BENCH-RESULT "
FULL_SIZES, QUICK_SIZES = (10, 100, 1000), (10, 100)
FULL_TIMING, QUICK_TIMING = 1000, 200
#: Calls the sequential loop times at each added latency (None: all of them; else extrapolated linearly).
FULL_SEQUENTIAL_SAMPLES = {LATENCY: None, LATENCY_REFERENCE: None}
QUICK_SEQUENTIAL_SAMPLES = {LATENCY: None, LATENCY_REFERENCE: 100}
CHILD_TIMEOUT = 300  # seconds; the sequential loop at 2000 calls and 65 ms takes about 140 s


# --- setup ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--quick", action="store_true", help="N = 10, 100 and a 200-pipeline timing only")
    ap.add_argument(
        "--database-url",
        nargs="?",
        const=os.environ.get("DATABASE_URL", ""),
        default=None,
        help="use this database (or, with no value, $DATABASE_URL) instead of a throwaway SQLite file",
    )
    ap.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[16, 32],
        help="COLLECT_CONCURRENCY values to time the fast cycle with (default: 16 32)",
    )
    ap.add_argument("--time-limit", type=int, default=900, help="abort the whole run after this many seconds")
    # Internal: the timed runs, in child processes.
    ap.add_argument("--child", choices=["fast", "sequential"], help=argparse.SUPPRESS)
    ap.add_argument("--account-id", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.database_url == "":
        ap.error("--database-url given without a value and DATABASE_URL is not set")
    return args


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
if ARGS.child:
    # A timed job: the parent's database and directory, handed down in the environment.
    setup.configure_django(os.environ["DATABASE_URL"], os.environ["OPSBOARD_VAR_DIR"])
else:
    TMP = setup.temp_dir("opsboard-bench-")
    setup.configure_django(ARGS.database_url or setup.sqlite_url(TMP), TMP)

from django.conf import settings  # noqa: E402

from opsboard_demo.emulator import FaultProxy, MotoServer  # noqa: E402
from pipelines import aws  # noqa: E402
from pipelines.clock import now  # noqa: E402
from pipelines.collection import cloudwatch, cost, cycles, store  # noqa: E402
from pipelines.models import AwsAccount, Pipeline, PollCycle  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux


def hwm_kb() -> int:
    """Peak RSS of this process's own address space (VmHWM), 0 where /proc is missing.

    Linux carries a process's ru_maxrss across fork/vfork + exec, so a child's ru_maxrss starts at
    the parent's RSS; VmHWM is reset at exec and so is the child's own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def create_queues(target, count: int) -> list[dict[str, str]]:
    """`count` queue + DLQ pairs in the emulator, each queue redriving to its DLQ (8 threads)."""
    sqs = aws.client(target, "sqs")

    def one(i: int) -> dict[str, str]:
        name = f"bench-q{i:04d}"
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
        url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        return {
            "name": name,
            "url": url,
            "arn": dlq_arn.rsplit(":", 1)[0] + f":{name}",
            "dlq_url": dlq_url,
            "dlq_arn": dlq_arn,
        }

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="bench-setup") as pool:
        return list(pool.map(one, range(count)))


def seed_percentile_data(target, queue: dict[str, str]) -> None:
    """One Duration and one Latency datapoint for the first pipeline, two minutes ago.

    moto answers a percentile query with HTTP 500 only when there is data to compute it from, so
    without this the warm-up cycle would never learn that percentiles are unsupported.
    """
    cw = aws.client(target, "cloudwatch")
    ts = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    cw.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Duration",
                "Dimensions": [{"Name": "FunctionName", "Value": f"{queue['name']}-consumer"}],
                "Timestamp": ts,
                "Value": 250.0,
            }
        ],
    )
    cw.put_metric_data(
        Namespace="AWS/ApiGateway",
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": [{"Name": "ApiId", "Value": "api0000"}, {"Name": "Stage", "Value": "$default"}],
                "Timestamp": ts,
                "Value": 40.0,
            }
        ],
    )


def register(account, queues: list[dict[str, str]], tag: str) -> None:
    """Pipeline rows for the given queues, with a consumer and an HTTP API so every metric is planned."""
    Pipeline.objects.bulk_create(
        [
            Pipeline(
                name=f"{tag}-{i:04d}",
                account=account,
                queue_url=q["url"],
                queue_name=q["name"],
                queue_arn=q["arn"],
                dlq_url=q["dlq_url"],
                dlq_arn=q["dlq_arn"],
                function_name=f"{q['name']}-consumer",
                api_kind="http",
                api_id=f"api{i:04d}",
                api_stage="$default",
            )
            for i, q in enumerate(queues)
        ],
        batch_size=500,
    )


def make_account(name: str, endpoint_url: str, queues: list[dict[str, str]]):
    account = setup.emulator_account(name, endpoint_url)
    register(account, queues, name)
    return account


# --- 1. calls per cycle --------------------------------------------------------------------------


def planned_metrics(account, at) -> dict[str, Any]:
    """Metrics per pipeline as run_metrics_cycle(account, at=at) will plan them, made independently.

    Same cycle number, same window (widened to cover the slowest metric due this cycle), same DLQ
    emptiness query; also the plan as it would be if every DLQ held messages.
    """
    pipes = list(Pipeline.objects.filter(account=account, enabled=True).order_by("pk"))
    end = store.floor_minute(at)
    cycle = cycles.cycle_number(end)
    spans = max([s.every for s in cloudwatch.METRICS if cycle % s.every == 0], default=1)
    empty = cycles.known_empty_dlqs(pipes, cycles.metrics_window(pipes, end, spans))
    unsupported = account.unsupported_statistics
    return {
        "cycle": cycle,
        "slow_due": [s.field for s in cloudwatch.METRICS if s.every > 1 and cycle % s.every == 0],
        "per_pipeline": [len(cloudwatch.plan_metrics(p, unsupported, p.pk in empty, cycle=cycle)) for p in pipes],
        "with_dlq_messages": sum(len(cloudwatch.plan_metrics(p, unsupported, False, cycle=cycle)) for p in pipes),
        "dlq_empty": len(empty),
        "dlqs": sum(1 for p in pipes if p.dlq_arn),
    }


def next_slow_cycle(after):
    """The first metrics-cycle time after `after` (at the configured cadence) whose cycle fetches every metric."""
    every = math.lcm(*(s.every for s in cloudwatch.METRICS))
    at = after + timedelta(seconds=settings.METRICS_INTERVAL_SECONDS)
    while cycles.cycle_number(store.floor_minute(at)) % every:
        at += timedelta(seconds=settings.METRICS_INTERVAL_SECONDS)
    return at


def measure_calls(account, n: int) -> dict[str, Any]:
    """Fast cycle, warm-up metrics cycle, steady-state metrics cycle for one account of n pipelines."""
    t0 = now()
    fast = cycles.run_fast_cycle(account, at=t0)
    warm_plan = planned_metrics(account, t0)
    warm = cycles.run_metrics_cycle(account, at=t0)
    account.refresh_from_db()
    # A later metrics cycle at the default cadence: the next one due to fetch the DLQ age as well.
    at = next_slow_cycle(t0)
    plan = planned_metrics(account, at)
    steady = cycles.run_metrics_cycle(account, at=at)
    total = sum(plan["per_pipeline"])
    return {
        "n": n,
        "fast_calls": fast.calls.get("sqs:GetQueueAttributes", 0),
        "fast_other": _other(fast.calls, "sqs:GetQueueAttributes"),
        "fast_floor": 2 * n,
        "fast_errors": len(fast.errors),
        "warm_calls": warm.calls.get("cloudwatch:GetMetricData", 0),
        "warm_metrics": warm.metrics_requested,
        "warm_plan": sorted(set(warm_plan["per_pipeline"])),
        "warm_errors": len(warm.errors),
        "unsupported": list(account.unsupported_statistics),
        "metrics_calls": steady.calls.get("cloudwatch:GetMetricData", 0),
        "metrics_other": _other(steady.calls, "cloudwatch:GetMetricData"),
        "metrics_floor": math.ceil(total / cloudwatch.MAX_QUERIES_PER_CALL),
        "metrics_floor_reported": math.ceil(steady.metrics_requested / cloudwatch.MAX_QUERIES_PER_CALL),
        "metrics_requested": steady.metrics_requested,
        "metrics_planned": total,
        "per_pipeline": sorted(set(plan["per_pipeline"])),
        "metrics_errors": len(steady.errors),
        "cycle": plan["cycle"],
        "cycle_after": (plan["cycle"] - warm_plan["cycle"]),
        "slow_due": plan["slow_due"],
        "dlq_empty": plan["dlq_empty"],
        "dlqs": plan["dlqs"],
        "with_dlq_messages": plan["with_dlq_messages"],
    }


def _other(calls: dict[str, int], key: str) -> int:
    return sum(v for k, v in calls.items() if k != key)


# --- 2. fast-cycle wall time (child processes) ---------------------------------------------------


def emit(result: dict[str, Any]) -> None:
    print(RESULT_TAG + json.dumps(result), flush=True)


def child_fast(account_id: int) -> None:
    """Two fast cycles (cold process, then warm clients) for every pipeline of the account."""
    account = AwsAccount.objects.get(pk=account_id)
    rss_ready, hwm_ready = max_rss_kb(), hwm_kb()
    runs = []
    for _ in range(2):
        Pipeline.objects.filter(account=account).update(last_sync_at=None)  # all due
        cpu, t = cpu_seconds(), time.perf_counter()
        report = cycles.run_fast_cycle(account)
        runs.append(
            {
                "seconds": time.perf_counter() - t,
                "cpu": cpu_seconds() - cpu,
                "calls": report.calls,
                "pipelines": report.pipelines,
                "errors": len(report.errors),
                "first_error": next(iter(report.errors.values()), ""),
            }
        )
    emit(
        {
            "concurrency": settings.COLLECT_CONCURRENCY,
            "runs": runs,
            "rss_ready_kb": rss_ready,
            "rss_peak_kb": max_rss_kb(),
            "hwm_ready_kb": hwm_ready,
            "hwm_peak_kb": hwm_kb(),
        }
    )


def child_sequential(account_id: int, sample: int | None = None) -> None:
    """The naive baseline: one plain boto3 client, one GetQueueAttributes after another.

    With `sample`, only the first `sample` calls are made and the time for all is extrapolated
    linearly (each call waits on the previous one, so the loop's time is linear in the calls).
    """
    account = AwsAccount.objects.get(pk=account_id)
    urls = [
        u
        for pair in Pipeline.objects.filter(account=account).order_by("pk").values_list("queue_url", "dlq_url")
        for u in pair
        if u
    ]
    timed = urls[:sample] if sample else urls
    sqs = boto3.client("sqs", region_name=setup.REGION, endpoint_url=account.endpoint_url)
    t = time.perf_counter()
    for url in timed:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(aws.COUNT_ATTRIBUTES))
    seconds = time.perf_counter() - t
    emit(
        {
            "seconds": seconds * len(urls) / len(timed),
            "measured_seconds": seconds,
            "calls": len(urls),
            "timed_calls": len(timed),
            "rss_peak_kb": max_rss_kb(),
        }
    )


def run_child(
    kind: str, account_id: int, proxy, concurrency: int | None = None, sample: int | None = None
) -> dict[str, Any]:
    """Run this script as a child doing one timed job; return its result and the calls the proxy saw."""
    env = dict(os.environ)
    if concurrency is not None:
        env["COLLECT_CONCURRENCY"] = str(concurrency)
    before = proxy.counts["forwarded"]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--account-id", str(account_id)]
    if sample:
        cmd += ["--sample", str(sample)]
    proc = subprocess.run(cmd, env=env, cwd=str(setup.REPO), capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {kind} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_TAG) :])
    result["proxied"] = proxy.counts["forwarded"] - before
    return result


def proxy_overhead(moto_url: str, queue_url: str, calls: int = 50) -> dict[str, float]:
    """ms per sequential GetQueueAttributes at latency 0: straight to moto, and through a FaultProxy."""
    out = {}
    for label in ("direct", "proxy"):
        proxy = FaultProxy(moto_url).start() if label == "proxy" else None
        try:
            sqs = boto3.client("sqs", region_name=setup.REGION, endpoint_url=proxy.url if proxy else moto_url)
            sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
            t = time.perf_counter()
            for _ in range(calls):
                sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
            out[label] = (time.perf_counter() - t) / calls * 1000
        finally:
            if proxy:
                proxy.stop()
    return out


def measure_timing(
    account, direct_account, proxy, concurrencies: list[int], samples: dict[float, int | None]
) -> dict[str, Any]:
    """For each added latency: the fast cycle at each concurrency, then the sequential loop."""
    by_latency = {}
    for latency, sample in samples.items():
        proxy.latency = latency
        fast = {}
        for c in concurrencies:
            print(f"  +{latency * 1000:.0f} ms: fast cycle, COLLECT_CONCURRENCY={c} (child process) ...", flush=True)
            fast[c] = run_child("fast", account.pk, proxy, c)
        what = f"first {sample} calls, extrapolated" if sample else "all calls"
        print(f"  +{latency * 1000:.0f} ms: sequential boto3 loop, {what} (child process) ...", flush=True)
        t = time.monotonic()
        sequential = run_child("sequential", account.pk, proxy, sample=sample)
        print(f"    ({time.monotonic() - t:.0f} s)", flush=True)
        by_latency[latency] = {"fast": fast, "sequential": sequential}
    proxy.latency = LATENCY
    print("  fast cycle straight to the emulator, no proxy (child process) ...", flush=True)
    direct = run_child("fast", direct_account.pk, proxy, concurrencies[0])
    return {"latencies": by_latency, "direct": direct}


# --- 3. cost -------------------------------------------------------------------------------------


def cost_pipeline():
    """An unsaved full pipeline: queue + DLQ + Lambda consumer + REST API."""
    base = "https://sqs.us-east-1.amazonaws.com/123456789012"
    return Pipeline(
        name="orders",
        queue_url=f"{base}/orders",
        queue_name="orders",
        dlq_url=f"{base}/orders-dlq",
        dlq_arn="arn:aws:sqs:us-east-1:123456789012:orders-dlq",
        function_name="orders-consumer",
        api_kind="rest",
        api_id="a1b2c3d4e5",
        api_name="orders-api",
        api_stage="prod",
    )


def cost_with(pipeline, unsupported: tuple[str, ...], dlq_empty: bool) -> dict[str, float]:
    """cost.monthly_cost; for a DLQ known empty, less the DLQ-age queries no cycle then makes."""
    month = dict(cost.monthly_cost(pipeline, unsupported))
    cycles_a_month = cost.MONTH_SECONDS / settings.METRICS_INTERVAL_SECONDS
    if dlq_empty:
        left_out = set(cloudwatch.plan_metrics(pipeline, unsupported)) - set(
            cloudwatch.plan_metrics(pipeline, unsupported, True)
        )
        month["metrics_requested"] -= sum(cycles_a_month / spec.every for spec in left_out)
        month["cloudwatch"] = month["metrics_requested"] * settings.CLOUDWATCH_PRICE_PER_THOUSAND_METRICS / 1e3
        month["total"] = month["sqs"] + month["cloudwatch"]
    month["metrics_per_cycle"] = month["metrics_requested"] / cycles_a_month  # an average over the cadences
    return month


def measure_cost() -> dict[str, Any]:
    p = cost_pipeline()
    components: dict[str, float] = defaultdict(float)
    for spec in cloudwatch.plan_metrics(p):
        components[spec.component] += 1 / spec.every
    return {
        "components": dict(components),
        "slow": [(s.field, s.every) for s in cloudwatch.plan_metrics(p) if s.every > 1],
        "cases": [
            ("DLQ holding messages (monthly_cost, upper bound)", cost_with(p, (), False)),
            ("DLQ empty (typical: DLQ age never queried)", cost_with(p, (), True)),
            ("percentiles unavailable, DLQ holding messages", cost_with(p, (cloudwatch.PERCENTILE,), False)),
            ("percentiles unavailable, DLQ empty", cost_with(p, (cloudwatch.PERCENTILE,), True)),
        ],
    }


# --- output --------------------------------------------------------------------------------------


def print_calls(rows: list[dict[str, Any]]) -> None:
    print("1. API calls per cycle against the emulator (from CycleReport.calls)")
    print(f"   {'N':>5}  {'cycle':<16} {'operation':<26} {'measured':>8} {'floor':>6}  equal  notes")
    for r in rows:
        other = f"; +{r['fast_other']} other calls" if r["fast_other"] else ""
        print(
            f"   {r['n']:>5}  {'fast':<16} {'sqs:GetQueueAttributes':<26} {r['fast_calls']:>8} {r['fast_floor']:>6}"
            f"  {setup.yes(r['fast_calls'] == r['fast_floor'] and not r['fast_other']):<5}  2 queues x N; "
            f"{r['fast_errors']} failed{other}"
        )
        print(
            f"   {r['n']:>5}  {'metrics warm-up':<16} {'cloudwatch:GetMetricData':<26} {r['warm_calls']:>8} {'-':>6}"
            f"  {'-':<5}  plans {'/'.join(map(str, r['warm_plan']))} metrics/pipeline, {r['warm_metrics']} requested;"
            f" account now skips {r['unsupported'] or 'nothing'}"
        )
        other = f"; +{r['metrics_other']} other calls" if r["metrics_other"] else ""
        ok = r["metrics_calls"] == r["metrics_floor"] == r["metrics_floor_reported"] and not r["metrics_other"]
        slow = ", ".join(r["slow_due"]) or "no slow metric"
        print(
            f"   {r['n']:>5}  {'metrics steady':<16} {'cloudwatch:GetMetricData':<26} {r['metrics_calls']:>8}"
            f" {r['metrics_floor']:>6}  {setup.yes(ok):<5}  cycle {r['cycle']} (warm-up +{r['cycle_after']}; due: {slow}); "
            f"{r['dlq_empty']}/{r['dlqs']} DLQs known empty; {'/'.join(map(str, r['per_pipeline']))} metrics/pipeline, "
            f"floor ceil({r['metrics_planned']}/500) from the plan, ceil({r['metrics_requested']}/500) = "
            f"{r['metrics_floor_reported']} from metrics_requested (requested = planned: "
            f"{setup.yes(r['metrics_requested'] == r['metrics_planned'])}); {r['metrics_errors']} failed{other}; "
            f"with DLQ messages: {r['with_dlq_messages']} metrics, "
            f"{math.ceil(r['with_dlq_messages'] / 500)} calls"
        )


def print_timing(t: dict[str, Any], n: int) -> None:
    over = t["overhead"]
    print(f"2. Fast-cycle wall time, {n} pipelines ({2 * n} queues), latency added to every AWS call by a FaultProxy")
    print(
        f"   overhead of the proxy at latency 0: {over['direct']:.1f} ms per sequential GetQueueAttributes "
        f"direct to moto vs {over['proxy']:.1f} ms through FaultProxy (+{over['proxy'] - over['direct']:.1f} ms)"
    )
    for latency, lt in t["latencies"].items():
        seq = lt["sequential"]
        per_call = seq["seconds"] / seq["calls"]
        ms = latency * 1000
        if seq["timed_calls"] < seq["calls"]:
            how = (
                f"EXTRAPOLATED linearly from {seq['timed_calls']} calls timed in {seq['measured_seconds']:.2f} s; "
                f"proxy forwarded {seq['proxied']}"
            )
        else:
            how = f"measured; proxy forwarded {seq['proxied']}"
        print(
            f"   +{ms:.0f} ms  sequential boto3 loop: {seq['seconds']:7.2f} s for {seq['calls']} calls "
            f"({per_call * 1000:.1f} ms/call; {how})"
        )
        if latency == LATENCY_REFERENCE:
            ref = REFERENCE_SECONDS / REFERENCE_CALLS
            print(
                f"   +{ms:.0f} ms  (design brief's reference: {REFERENCE_SECONDS:.0f} s for {REFERENCE_CALLS} calls "
                f'through its "20 ms" proxy, {ref * 1000:.0f} ms/call; here {per_call * 1000:.1f} ms/call, '
                f"{seq['seconds'] * REFERENCE_CALLS / seq['calls']:.0f} s for {REFERENCE_CALLS} calls)"
            )
        for c, r in lt["fast"].items():
            for label, run in zip(("cold", "warm"), r["runs"]):
                ratio = seq["seconds"] / run["seconds"]
                calls = run["calls"].get("sqs:GetQueueAttributes", 0)
                print(
                    f"   +{ms:.0f} ms  fast cycle, concurrency {c:>2}, {label}: {run['seconds']:6.2f} s  "
                    f"ratio {ratio:5.1f}x  (>= 10x: {setup.yes(ratio >= 10)}, < 10 s: {setup.yes(run['seconds'] < 10)}; "
                    f"{calls} calls, {run['errors']} failed"
                    f"{'; ' + run['first_error'][:120] if run['errors'] else ''}; child CPU {run['cpu']:.2f} s; "
                    f"latency-bound ideal {calls * per_call / c:.2f} s)"
                )
        c0, r0 = next(iter(lt["fast"].items()))
        warm = r0["runs"][-1]
        calls = warm["calls"].get("sqs:GetQueueAttributes", 0)
        projected = max(calls * per_call / c0, warm["cpu"])
        print(
            f"   +{ms:.0f} ms  estimate without the emulator's limit (concurrency {c0}): max(latency-bound ideal "
            f"{calls * per_call / c0:.2f} s, child CPU {warm['cpu']:.2f} s) = {projected:.2f} s, ratio "
            f"{seq['seconds'] / projected:.1f}x  (an estimate, not a measurement)"
        )
    concurrencies = next(iter(t["latencies"].values()))["fast"].keys()
    for c in concurrencies:
        runs = [(latency, lt["fast"][c]) for latency, lt in t["latencies"].items()]
        peak = max(r["hwm_peak_kb"] or r["rss_peak_kb"] for _, r in runs)
        print(
            f"   peak RSS, concurrency {c:>2} child: {peak / 1024:6.1f} MB  (< 200 MB: {setup.yes(peak < 200 * 1024)}; "
            + "; ".join(
                f"+{latency * 1000:.0f} ms child {(r['hwm_peak_kb'] or r['rss_peak_kb']) / 1024:.1f} MB"
                f" ({r['hwm_ready_kb'] / 1024:.1f} MB after Django setup, ru_maxrss "
                f"{r['rss_peak_kb'] / 1024:.1f} MB, proxy forwarded {r['proxied']} for both cycles)"
                for latency, r in runs
            )
            + ")"
        )
    d = t["direct"]
    print(
        f"   fast cycle straight to moto (no proxy, no added latency), concurrency {d['concurrency']}: "
        + ", ".join(
            f"{label} {run['seconds']:.2f} s (child CPU {run['cpu']:.2f} s)"
            for label, run in zip(("cold", "warm"), d["runs"])
        )
        + f"  <- the emulator/CPU floor on this {os.cpu_count()}-CPU machine"
    )
    print(
        "   'cold' is the child's first cycle (clients and connections made inside it); 'warm' the second,"
        " as in a long-lived worker.\n   Ratios are the sequential loop's time at the same added latency over"
        " the fast cycle's.\n   Peak RSS is VmHWM of the child process that ran only the two fast"
        f" cycles (Django + boto3 + {n} Pipeline rows + the cycles).\n   The child's ru_maxrss is"
        " printed too but is not its own: Linux carries ru_maxrss across fork+exec, so it starts at this"
        " parent's RSS\n   (emulator setup, call-count cycles, proxy) when the child was spawned."
    )


def print_cost(c: dict[str, Any]) -> None:
    comps = ", ".join(f"{k} {v:g}" if v == int(v) else f"{k} {v:.2f}" for k, v in c["components"].items())
    slow = "; ".join(f"{f} every {e} cycles" for f, e in c["slow"])
    print(
        f"3. AWS API cost per pipeline-month, full pipeline (queue + DLQ + Lambda + REST API), "
        f"fast every {settings.FAST_INTERVAL_SECONDS} s, metrics every {settings.METRICS_INTERVAL_SECONDS} s"
    )
    print(
        f"   metrics per cycle by component, averaged over the cadences (all available, DLQ holding messages): "
        f"{comps} ({slow}); SQS ${settings.SQS_PRICE_PER_MILLION}/million calls, CloudWatch "
        f"${settings.CLOUDWATCH_PRICE_PER_THOUSAND_METRICS}/1000 metrics"
    )
    print(
        f"   {'case':<50} {'metrics':>7} {'SQS calls':>10} {'SQS $':>7} {'CW metrics':>11} {'CW $':>7} "
        f"{'total $':>8}  <= $1.50"
    )
    for label, k in c["cases"]:
        print(
            f"   {label:<50} {k['metrics_per_cycle']:>7.2f} {k['sqs_calls']:>10,.0f} {k['sqs']:>7.4f} "
            f"{k['metrics_requested']:>11,.0f} {k['cloudwatch']:>7.4f} {k['total']:>8.4f}  {setup.yes(k['total'] <= 1.5)}"
        )
    print(
        "   'metrics' is metrics requested per metrics cycle, on average; the DLQ-empty rows are monthly_cost"
        " less the DLQ-age queries."
    )


def print_rss_parent() -> None:
    print(
        f"   (this parent process, for reference: peak RSS {max_rss_kb() / 1024:.1f} MB, including emulator "
        "setup, the call-count cycles and the proxy)"
    )


# --- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    timing_n = QUICK_TIMING if args.quick else FULL_TIMING
    started = time.monotonic()
    setup.migrate()
    with MotoServer() as moto, FaultProxy(moto.url, latency=LATENCY) as proxy:
        print(f"emulator at {moto.url}, latency proxy at {proxy.url}", flush=True)
        count = max(*sizes, timing_n)
        t = time.monotonic()
        target = aws.Target(region=setup.REGION, endpoint_url=moto.url)
        queues = create_queues(target, count)
        seed_percentile_data(target, queues[0])
        print(f"created {2 * count} queues in {time.monotonic() - t:.1f} s", flush=True)
        tag = f"bench{os.getpid()}"
        rows = []
        for n in sizes:
            print(f"calls per cycle, N={n} ...", flush=True)
            rows.append(measure_calls(make_account(f"{tag}-calls{n}", moto.url, queues[:n]), n))
        print(f"fast-cycle timing, {timing_n} pipelines through the proxy ...", flush=True)
        timing_account = make_account(f"{tag}-timing", proxy.url, queues[:timing_n])
        direct_account = make_account(f"{tag}-direct", moto.url, queues[:timing_n])
        samples = QUICK_SEQUENTIAL_SAMPLES if args.quick else FULL_SEQUENTIAL_SAMPLES
        timing = measure_timing(timing_account, direct_account, proxy, args.concurrency, samples)
        timing["overhead"] = proxy_overhead(moto.url, queues[0]["url"])
        costs = measure_cost()
        if args.database_url:
            cleanup(tag)
    print(
        f"\n=== opsboard collection bench ({'quick' if args.quick else 'full'}; "
        f"{time.monotonic() - started:.0f} s) ===\n"
    )
    print_calls(rows)
    print()
    print_timing(timing, timing_n)
    print_rss_parent()
    print()
    print_cost(costs)


def cleanup(tag: str) -> None:
    """Remove what the bench added to a database it did not create."""
    accounts = AwsAccount.objects.filter(name__startswith=f"{tag}-")
    PollCycle.objects.filter(account__in=accounts).delete()
    Pipeline.objects.filter(account__in=accounts).delete()
    accounts.delete()


def main(args: argparse.Namespace) -> None:
    if args.child == "fast":
        child_fast(args.account_id)
    elif args.child == "sequential":
        child_sequential(args.account_id, args.sample)
    else:
        with setup.time_limit(args.time_limit):
            run(args)


if __name__ == "__main__":
    main(ARGS)
