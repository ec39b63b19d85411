"""Redrive benchmark: the batch engine against a naive one-at-a-time mover, in the same run.

Run from the repository root:

    .venv/bin/python bench/redrive_bench.py                 # 10,000 messages in 10 DLQs of 1,000
    .venv/bin/python bench/redrive_bench.py --dlqs 1        # one DLQ of 10,000 (see below)
    .venv/bin/python bench/redrive_bench.py --quick         # 2,000 messages

It prints figures; it asserts nothing (it does check that every message arrived). Both movers run
against moto in server mode over HTTP, on a throwaway SQLite database unless --database-url is given.

- batch engine: `runner.run_redrive` on one `RedriveTask` per DLQ, exactly as a worker runs it
  (receive 10 → SendMessageBatch → DeleteMessageBatch, a checkpoint in the database per batch).
- naive mover: ReceiveMessage (1) → SendMessage → DeleteMessage, per message.

Calls are counted with `aws.metering()` (every HTTP attempt, retries included); the floor for the
batch engine is 0.3 calls per message (one receive, one send, one delete per 10), plus a few per
DLQ to find out that it is empty. Throughputs are wall-clock in the same run; the emulator's
absolute speed means little, the ratio and the call counts do.

The emulator: moto does work proportional to a queue's depth on every call, with a large constant
(a datetime-based clock read per message, the queue's messages counted three times whenever any
queue attribute is looked up, which it does for every message sent and received). Stock, one
receive on a queue of 1,000 messages takes ~0.5 s, so the bench runs moto with the speed-ups of
tests/redrive_support.py (QuickMotoServer: same answers, faster clock and counting). Even so
moto's cost per message sent and deleted still grows with depth (it scans the queue's message list),
which real SQS's does not; the default spreads the 10,000 messages over 10 DLQs of 1,000 so that
depth does not dominate. `--dlqs 1` shows the single deep queue.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import setup


def parse_args(argv=None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--messages", type=int, default=10_000, help="messages to move with each mover (default 10000)")
    ap.add_argument("--dlqs", type=int, default=10, help="spread them over this many DLQs (default 10)")
    ap.add_argument("--quick", action="store_true", help="2,000 messages")
    ap.add_argument("--database-url", default=None, help="a database to use instead of a throwaway SQLite file")
    args = ap.parse_args(argv)
    if args.quick:
        args.messages = 2_000
    if args.messages % args.dlqs:
        ap.error("--messages must be a multiple of --dlqs")
    return args


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
TMP = setup.temp_dir("opsboard-redrive-bench-")
setup.configure_django(ARGS.database_url or setup.sqlite_url(TMP), TMP)

from opsboard_demo.provision import PipelineSpec, provision  # noqa: E402
from pipelines import aws  # noqa: E402
from pipelines.dlq import runner  # noqa: E402
from pipelines.models import Pipeline, RedriveEngine, RedriveTask  # noqa: E402
from pipelines.registry.discovery import discover  # noqa: E402
from tests.redrive_support import QuickMotoServer  # noqa: E402


def make_pipelines(account, count: int, tag: str) -> list:
    """`count` queue + DLQ pairs in the emulator, registered as pipelines."""
    out = []
    for i in range(count):
        made = provision(account.target(), PipelineSpec(name=f"{tag}{i:02d}", consumer=False))
        p = Pipeline(name=f"{tag}{i:02d}", account=account)
        p.apply_discovery(discover(account.target(), made.queue_url).fields)
        p.save()
        out.append(p)
    return out


def fill(target, url: str, count: int, start: int) -> None:
    """Messages with a JSON body and two attributes, straight into the DLQ (not metered)."""
    sqs = aws.client(target, "sqs")
    for i in range(start, start + count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(j),
                    "MessageBody": json.dumps({"order": j, "payload": "x" * 200}),
                    "MessageAttributes": {
                        "requestId": {"DataType": "String", "StringValue": f"req-{j}"},
                        "attempt": {"DataType": "Number", "StringValue": "5"},
                    },
                }
                for j in range(i, min(i + 10, start + count))
            ],
        )


def depth(target, url: str) -> int:
    c = aws.queue_counts(target, url)
    return c["visible"] + c["in_flight"] + c["delayed"]


def run_batch_engine(pipelines) -> tuple[float, object]:
    tasks = [
        RedriveTask.objects.create(
            pipeline=p,
            pipeline_name=p.name,
            source_url=p.dlq_url,
            source_arn=p.dlq_arn,
            destination_url=p.queue_url,
            destination_arn=p.queue_arn,
            engine=RedriveEngine.BATCH,
        )
        for p in pipelines
    ]
    with aws.metering() as meter:
        t0 = time.perf_counter()
        for t in tasks:
            done = runner.run_redrive(t.pk)
            assert done.status == "completed", (done.status, done.errors)
        elapsed = time.perf_counter() - t0
    moved = sum(RedriveTask.objects.get(pk=t.pk).moved for t in tasks)
    return elapsed, meter, moved


def run_naive(target, pipelines) -> tuple[float, object, int]:
    """Receive one, send one, delete one, until each DLQ is empty."""
    sqs = aws.client(target, "sqs")
    moved = 0
    with aws.metering() as meter:
        t0 = time.perf_counter()
        for p in pipelines:
            empty = 0
            while empty < 2:
                msgs = sqs.receive_message(
                    QueueUrl=p.dlq_url, MaxNumberOfMessages=1, VisibilityTimeout=60, MessageAttributeNames=["All"]
                ).get("Messages", [])
                if not msgs:
                    empty += 1
                    continue
                m = msgs[0]
                params = {"QueueUrl": p.queue_url, "MessageBody": m["Body"]}
                if m.get("MessageAttributes"):
                    params["MessageAttributes"] = {
                        k: {f: v for f, v in a.items() if f in ("DataType", "StringValue", "BinaryValue")}
                        for k, a in m["MessageAttributes"].items()
                    }
                sqs.send_message(**params)
                sqs.delete_message(QueueUrl=p.dlq_url, ReceiptHandle=m["ReceiptHandle"])
                moved += 1
        elapsed = time.perf_counter() - t0
    return elapsed, meter, moved


def calls_line(meter) -> str:
    return ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(meter.calls.items()))


def main(args: argparse.Namespace) -> int:
    per_dlq = args.messages // args.dlqs
    setup.migrate()
    print(
        f"redrive benchmark: {args.messages:,} messages in {args.dlqs} DLQ(s) of {per_dlq:,}, "
        "moto in server mode over HTTP (QuickMotoServer)\n"
    )
    with QuickMotoServer(log_path=str(Path(TMP) / "moto.log")) as server:
        results = {}
        for name in ("batch", "naive"):
            server.reset()
            aws.reset_clients()
            account = setup.emulator_account(f"bench-{name}", server.url)
            target = account.target()
            pipelines = make_pipelines(account, args.dlqs, f"{name}-")
            t0 = time.perf_counter()
            for n, p in enumerate(pipelines):
                fill(target, p.dlq_url, per_dlq, n * per_dlq)
            print(f"{name}: filled {args.messages:,} messages in {time.perf_counter() - t0:.1f}s (not measured)")
            if name == "batch":
                elapsed, meter, moved = run_batch_engine(pipelines)
            else:
                elapsed, meter, moved = run_naive(target, pipelines)
            left = sum(depth(target, p.dlq_url) for p in pipelines)
            arrived = sum(depth(target, p.queue_url) for p in pipelines)
            results[name] = (elapsed, meter, moved)
            print(
                f"{name}: moved {moved:,} in {elapsed:.1f}s = {moved / elapsed:,.0f} messages/s; "
                f"{meter.total_calls:,} API calls = {meter.total_calls / moved:.4f} per message "
                f"({calls_line(meter)}); left in DLQs {left}, at the destinations {arrived:,}"
            )
            if left or arrived != args.messages:
                print(f"  !! expected 0 left and {args.messages:,} delivered")
    (b_t, b_m, b_n), (n_t, n_m, n_n) = results["batch"], results["naive"]
    b_rate, n_rate = b_n / b_t, n_n / n_t
    b_cpm, n_cpm = b_m.total_calls / b_n, n_m.total_calls / n_n
    print()
    print(f"{'':14}{'messages/s':>12}{'calls/message':>16}")
    print(f"{'batch engine':14}{b_rate:>12,.0f}{b_cpm:>16.4f}")
    print(f"{'naive mover':14}{n_rate:>12,.0f}{n_cpm:>16.4f}")
    print(
        f"\nthroughput: batch / naive = {b_rate / n_rate:.1f}x (target >= 5x): "
        f"{'met' if b_rate / n_rate >= 5 else 'NOT met'}"
    )
    print(f"calls per message: {b_cpm:.4f} (target <= 0.31, floor 0.30): {'met' if b_cpm <= 0.31 else 'NOT met'}")
    print(
        f"API calls: batch {b_m.total_calls:,} vs naive {n_m.total_calls:,} "
        f"({n_m.total_calls / b_m.total_calls:.1f}x fewer)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
