"""DLQ triage benchmark: a scan of a 10,000-message DLQ with its consumer's log lines, and the windowed
join against a naive one-message-at-a-time join, in the same run.

Run from the repository root:

    .venv/bin/python bench/triage_bench.py              # 10,000 messages
    .venv/bin/python bench/triage_bench.py --quick      # 2,000 messages

It prints figures and checks the groups' counts against what was written. Everything runs against
moto in server mode over HTTP (QuickMotoServer, as the redrive bench), on a throwaway SQLite
database unless --database-url is given.

- the DLQ: N messages sent straight to it; 50 % fail with KeyError 'customer_id' (a Python traceback),
  25 % with "ValueError: order <n> amount <n> is negative" (varying numbers), 15 % with a Node
  TimeoutError (an error object with a stack), 10 % have no log line (grouped by body shape). Each
  failing message failed twice (a transient timeout first); the lines are in 10 log streams, 10
  records per invocation, with START/END/REPORT lines, as a Lambda consumer writes them.
- the scan: `triage.start_scan` + `triage.run_scan`, as a worker runs it; every AWS call counted
  (`aws.metering`: every HTTP attempt).
- grouping CPU: `logjoin.last_failures` + `grouping.group_messages` (signatures included) on the
  error lines read, timed with process_time.
- the naive join: one FilterLogEvents per message (a quoted message-id term over the message's
  window, following nextToken), run on a sample of messages and scaled to N: stated as such.

moto answers FilterLogEvents by scanning every stored event and matches `?` patterns against
everything, so its time per call grows with the log's size; real CloudWatch Logs does its own
indexing. The call counts are exact; times are the emulator's, compare them within the run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import setup


def parse_args(argv=None) -> argparse.Namespace:
    ap = setup.argument_parser(__doc__)
    ap.add_argument("--messages", type=int, default=10_000, help="DLQ messages (default 10000)")
    ap.add_argument("--sample", type=int, default=100, help="messages the naive join is run on (default 100)")
    ap.add_argument("--quick", action="store_true", help="2,000 messages")
    ap.add_argument("--database-url", default=None, help="a database to use instead of a throwaway SQLite file")
    args = ap.parse_args(argv)
    if args.quick:
        args.messages = 2_000
    return args


# The options name the database Django starts on; the project's modules below need Django started.
ARGS = parse_args()
TMP = setup.temp_dir("opsboard-triage-bench-")
setup.configure_django(ARGS.database_url or setup.sqlite_url(TMP), TMP)

from opsboard_demo.provision import PipelineSpec, provision  # noqa: E402
from pipelines import aws  # noqa: E402
from pipelines.dlq import grouping, logjoin, triage  # noqa: E402
from pipelines.dlq.signatures import shape_signature  # noqa: E402
from pipelines.models import Pipeline, TriageScan  # noqa: E402
from pipelines.registry.discovery import discover  # noqa: E402
from tests.redrive_support import QuickMotoServer  # noqa: E402

STREAMS = 10
BATCH = 10
KINDS = [("key", 50), ("amount", 25), ("node", 15), ("none", 10)]
EXPECTED_TITLES = {
    "key": "KeyError: 'customer_id' — in /var/task/orders.py in load_customer",
    "amount": "ValueError: order <n> amount <n> is negative — in /var/task/orders.py in validate",
    "node": "TimeoutError: inventory request <n> timed out after <n> ms — in /var/task/inventory.js in reserveItems",
    "none": "JSON object {amount: number, order: number, requestId: string}",
}
PY_HEAD = (
    'Traceback (most recent call last):\n  File "/var/task/handler.py", line 12, in handler\n    process(record)\n'
)


def kind_of(j: int) -> str:
    pct, acc = j % 100, 0
    for kind, share in KINDS:
        acc += share
        if pct < acc:
            return kind
    return KINDS[-1][0]


def fill_dlq(target, url: str, n: int) -> list[tuple[str, str, str]]:
    """N messages straight into the DLQ; returns (message id, request id, kind) in send order."""
    sqs = aws.client(target, "sqs")
    out = []
    for i in range(0, n, 10):
        entries = []
        for j in range(i, min(i + 10, n)):
            body = {"order": 40_000 + j, "amount": -(j % 97) - 1, "requestId": f"req-{j:06d}"}
            attrs = {"requestId": {"DataType": "String", "StringValue": f"req-{j:06d}"}}
            entries.append({"Id": str(j - i), "MessageBody": json.dumps(body), "MessageAttributes": attrs})
        resp = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        for ok in sorted(resp["Successful"], key=lambda e: int(e["Id"])):
            j = i + int(ok["Id"])
            out.append((ok["MessageId"], f"req-{j:06d}", kind_of(j)))
    return out


def error_lines(mid: str, rid: str, kind: str, j: int, last: bool, rng: random.Random) -> list[str]:
    record = {"level": "ERROR", "message": "message failed", "messageId": mid, "correlation_id": rid}
    if not last:
        return [json.dumps({**record, "error": "TimeoutError: downstream service did not answer"})]
    if kind == "key":
        frame = '  File "/var/task/orders.py", line 41, in load_customer\n    return body["customer_id"]\n'
        return [json.dumps({**record, "error": "KeyError: 'customer_id'"}), f"{PY_HEAD}{frame}KeyError: 'customer_id'"]
    if kind == "amount":
        error = f"ValueError: order {40_000 + j} amount {-(j % 97) - 1} is negative"
        frame = '  File "/var/task/orders.py", line 77, in validate\n    raise ValueError(msg)\n'
        return [json.dumps({**record, "error": error}), f"{PY_HEAD}{frame}{error}"]
    message = f"inventory request {rng.randint(1000, 9999)} timed out after {rng.choice((3000, 5000))} ms"
    stack = [f"TimeoutError: {message}", "    at reserveItems (/var/task/inventory.js:88:11)"]
    return [json.dumps({**record, "errorType": "TimeoutError", "errorMessage": message, "stack": stack})]


def write_logs(target, group: str, messages: list[tuple[str, str, str]], base_ms: int) -> int:
    """Two failed attempts per message with a log line, in STREAMS streams of invocations of BATCH
    records each. Returns the events written."""
    logs = aws.client(target, "logs")
    rng = random.Random(7)
    written = 0
    for s in range(STREAMS):
        stream = f"2026/01/05/[$LATEST]{s:08x}"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        mine = [(j, m) for j, m in enumerate(messages) if j % STREAMS == s and m[2] != "none"]
        events, ts = [], base_ms + s
        for attempt in (0, 1):
            ts = max(ts, base_ms + attempt * 15_000)
            for b in range(0, len(mine), BATCH):
                inv = str(uuid.uuid4())
                lines = [f"START RequestId: {inv} Version: $LATEST"]
                for j, (mid, rid, kind) in mine[b : b + BATCH]:
                    lines += error_lines(mid, rid, kind, j, attempt == 1, rng)
                lines += [f"END RequestId: {inv}", f"REPORT RequestId: {inv}\tDuration: 41.00 ms"]
                for line in lines:
                    events.append({"timestamp": ts, "message": line})
                    ts += 1
        for i in range(0, len(events), 5_000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i : i + 5_000])
        written += len(events)
    return written


def naive_join(target, group: str, sample: list[tuple[str, str, str]], start_ms: int, end_ms: int) -> tuple[float, int]:
    """One FilterLogEvents search per message (its id as a quoted term), following nextToken."""
    calls = 0
    t0 = time.perf_counter()
    for mid, _, _ in sample:
        token = ""
        while True:
            page = aws.filter_log_events(target, group, f'"{mid}"', start_ms, end_ms, token)
            calls += 1
            token = page["next_token"]
            if not token:
                break
    return time.perf_counter() - t0, calls


def by_api(meter, total: int) -> str:
    return ", ".join(f"{k.split(':', 1)[1]} {v:,} ({v / total:.4f}/msg)" for k, v in sorted(meter.calls.items()))


def main(args: argparse.Namespace) -> int:
    n = args.messages
    setup.migrate()
    print(f"triage benchmark: {n:,} DLQ messages, moto in server mode over HTTP (QuickMotoServer)\n")
    with QuickMotoServer(log_path=str(Path(TMP) / "moto.log")) as server:
        account = setup.emulator_account("bench-triage", server.url)
        target = account.target()
        made = provision(target, PipelineSpec(name="orders", consumer=True))
        p = Pipeline(name="orders", account=account)
        p.apply_discovery(discover(target, made.queue_url).fields)
        p.save()
        t0 = time.perf_counter()
        base_ms = int(time.time() * 1000) - 40_000  # logged before the scan's "now", inside the windows
        messages = fill_dlq(target, p.dlq_url, n)
        events = write_logs(target, p.consumer_log_group, messages, base_ms)
        print(f"set-up: {n:,} messages and {events:,} log events in {time.perf_counter() - t0:.1f}s (not measured)")

        # The row start_scan records (without handing it to a worker: this process runs it). The cap
        # is one above N: a scan that reaches its cap cannot prove it saw the whole queue.
        scan = TriageScan.objects.create(pipeline=p, cap=n + 1)
        with aws.metering() as meter:
            t0 = time.perf_counter()
            triage.run_scan(scan.pk, meter)
            scan_s = time.perf_counter() - t0
        scan.refresh_from_db()
        groups = {g.title: g.count for g in scan.groups.all()}
        expected = Counter(EXPECTED_TITLES[k] for _, _, k in messages)
        print(
            f"scan: {scan.status}, examined {scan.examined:,}, joined {scan.joined:,}, complete {scan.complete}, "
            f"{len(groups)} groups; wall time {scan_s:.1f}s"
        )
        print(f"  calls: {by_api(meter, n)}")
        print(f"  groups as written: {setup.yes(groups == dict(expected))}  ({triage.causes_summary(scan)})")
        print(f"  consumer log: {scan.sources[1]['message']}")

        # Grouping CPU: the same join and grouping on the lines read, without the AWS calls.
        length = logjoin.window_ms(p.max_receive_count, p.visibility_timeout, p.function_timeout, 6 * 3600)
        sent = {m.message_id: int(m.sent_at.timestamp() * 1000) for m in scan.messages.all()}
        windows = logjoin.plan_windows(sent.values(), length, int(time.time() * 1000))
        read = logjoin.LogRead(max_calls=10_000)
        t0 = time.perf_counter()
        logjoin.read_failures(target, p.consumer_log_group, windows, read)
        read_s = time.perf_counter() - t0
        bodies = {mid: {"order": 0, "amount": 0, "requestId": rid} for mid, rid, _ in messages}
        examined = [
            grouping.Examined(mid, rid, sent.get(mid), 1, "", shape_signature(json.dumps(bodies[mid])))
            for mid, rid, _ in messages
        ]
        requests = {rid: [mid] for mid, rid, _ in messages}
        c0 = time.process_time()
        failures = logjoin.last_failures(read.lines, sent.keys(), requests)
        grouped = grouping.group_messages(examined, failures)
        cpu_s = time.process_time() - c0
        print(
            f"grouping CPU: {cpu_s:.2f}s for {n:,} messages and {len(read.lines):,} error lines "
            f"({len(grouped)} groups; target < 2 s: {setup.yes(cpu_s < 2)})"
        )

        # The naive join, on a sample, scaled to N.
        sample = random.Random(1).sample(messages, min(args.sample, n))
        start_ms, end_ms = windows[0][0], windows[-1][1]
        naive_s, naive_calls = naive_join(target, p.consumer_log_group, sample, start_ms, end_ms)
        scale = n / len(sample)
        win_calls = read.calls
        win_s = read_s + cpu_s
        print(
            f"join, windowed: {win_calls} FilterLogEvents calls for {len(windows)} window(s), "
            f"{read_s:.1f}s reading + {cpu_s:.2f}s mapping/grouping"
        )
        print(
            f"join, naive (one FilterLogEvents per message), run on {len(sample)} messages and scaled to {n:,}: "
            f"{naive_calls * scale:,.0f} calls, {naive_s * scale:,.0f}s (sample: {naive_calls} calls, {naive_s:.1f}s)"
        )
        print(
            f"windowed vs naive: {naive_calls * scale / max(1, win_calls):,.0f}x fewer calls, "
            f"{naive_s * scale / win_s:,.0f}x less time (emulator time, same run)"
        )
        ok = groups == dict(expected) and scan.status == "completed"
    return 0 if ok else 1


if __name__ == "__main__":
    with setup.time_limit(3600):
        sys.exit(main(ARGS))
