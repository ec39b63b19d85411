"""The batch engine: receive up to 10 → `SendMessageBatch` to the destination → delete from the DLQ
only the entries whose send succeeded. It is what filters, maximums, dry runs and deletions need.

What it guarantees:

- A message leaves the DLQ only after SQS accepted it at the destination. Failed entries, and
  messages a filter did not select, stay in the DLQ: they are held invisible while the task scans
  (so one pass sees every message once) and made visible again when it ends.
- Counts are written to the row after every batch, before that batch's deletes, together with the
  ids just sent. A worker that dies is replaced by another (`runner.resume_stale_redrives`), which
  deletes without re-sending any message whose id was recorded as sent, so the only duplicates
  possible are one batch sent by a worker that died before recording it (and on a FIFO
  destination its deduplication id suppresses even those for five minutes).
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pipelines import aws
from pipelines.dlq import worker
from pipelines.dlq.filters import Filter
from pipelines.dlq.peek import peeked
from pipelines.dlq.queues import RedriveError, queue_info, queue_problem, release
from pipelines.dlq.worker import Run, retrying
from pipelines.models import (
    DRY_RUN_SAMPLE,
    DlqOperation,
    FilterKind,
    RedriveStatus,
)

#: SendMessageBatch payload per call; SQS allows more today, this is safe on every endpoint.
BATCH_BYTES = 256 * 1024
#: Empty receives in a row, while the queue still reports visible messages, before a scan ends
#: (counts are approximate; FIFO groups behind held messages are not delivered).
EMPTY_ROUNDS = 5
#: Batches in a row whose every entry failed before the task gives up on the destination.
FAILED_BATCHES_TO_ABORT = 3


def send_entry(n: int, message: dict[str, Any], fifo: bool, task_id: int) -> dict[str, Any]:
    """The SendMessageBatch entry that re-creates a received message at the destination."""
    entry: dict[str, Any] = {"Id": str(n), "MessageBody": message.get("Body") or ""}
    attrs = {
        name: {k: v for k, v in a.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, a in (message.get("MessageAttributes") or {}).items()
    }
    if attrs:
        entry["MessageAttributes"] = attrs
    system = message.get("Attributes") or {}
    if system.get("AWSTraceHeader"):
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId") or "opsboard-redrive"
        # Not the original deduplication id: SQS would drop the copy as a duplicate of the message
        # first sent less than five minutes ago. Stable per task and message, so a batch re-sent
        # after a worker restart is deduplicated instead.
        entry["MessageDeduplicationId"] = f"redrive-{task_id}-{message['MessageId']}"[:128]
    return entry


def entry_size(entry: dict[str, Any]) -> int:
    size = len(entry["MessageBody"].encode())
    for name, a in entry.get("MessageAttributes", {}).items():
        value = a.get("StringValue")
        size += (
            len(name)
            + len(a.get("DataType", ""))
            + (len(value.encode()) if value is not None else len(a.get("BinaryValue") or b""))
        )
    return size


def size_chunks(entries: list[dict[str, Any]], limit: int = BATCH_BYTES) -> list[list[dict[str, Any]]]:
    """Split entries into SendMessageBatch calls of at most 10 entries and `limit` bytes."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    total = 0
    for e in entries:
        size = entry_size(e)
        if current and (len(current) == 10 or total + size > limit):
            chunks.append(current)
            current, total = [], 0
        current.append(e)
        total += size
    if current:
        chunks.append(current)
    return chunks


class Pacer:
    """Keeps a run at `rate` messages per second on average (None: as fast as it goes)."""

    def __init__(self, rate: int | None):
        self.rate = rate
        self.start = worker.monotonic()
        self.count = 0

    def delay(self, moved: int) -> float:
        self.count += moved
        if not self.rate:
            return 0.0
        return max(0.0, self.start + self.count / self.rate - worker.monotonic())


def _send(run: Run, dest_url: str, entries: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Send entries (≤ 10). Returns (ok entry ids, failed entries). When the whole call fails even
    after retries, each entry is tried alone once, so one bad message does not hold back the others."""
    try:
        result = retrying(aws.send_message_batch, run.target, dest_url, entries)
        return result["ok"], result["failed"]
    except aws.AwsError as exc:
        if exc.is_missing or exc.is_denied:
            raise RedriveError(queue_problem(exc, dest_url, "the destination")) from exc
        if len(entries) == 1:
            return [], [{"Id": entries[0]["Id"], "Code": exc.code, "Message": str(exc), "SenderFault": False}]
    ok: list[str] = []
    failed: list[dict[str, Any]] = []
    for e in entries:
        try:
            result = aws.send_message_batch(run.target, dest_url, [e])  # botocore still retries it
        except aws.AwsError as exc:
            if exc.is_missing or exc.is_denied:
                raise RedriveError(queue_problem(exc, dest_url, "the destination")) from exc
            failed.append({"Id": e["Id"], "Code": exc.code, "Message": str(exc), "SenderFault": False})
            continue
        ok += result["ok"]
        failed += result["failed"]
    return ok, failed


def _delete(run: Run, ids_receipts: list[tuple[str, str]]) -> tuple[list[str], list[dict[str, Any]]]:
    ok: list[str] = []
    failed: list[dict[str, Any]] = []
    for i in range(0, len(ids_receipts), 10):
        chunk = ids_receipts[i : i + 10]
        entries = [(str(n), h) for n, (_, h) in enumerate(chunk)]
        by_entry = {str(n): mid for n, (mid, _) in enumerate(chunk)}
        try:
            result = retrying(aws.delete_message_batch, run.target, run.task.source_url, entries)
        except aws.AwsError as exc:
            failed += [{"MessageId": mid, "Code": exc.code, "Message": str(exc)} for mid, _ in chunk]
            continue
        ok += [by_entry[e] for e in result["ok"]]
        failed += [
            {"MessageId": by_entry[f["Id"]], "Code": f["Code"], "Message": f["Message"]} for f in result["failed"]
        ]
    return ok, failed


class BatchScan:
    """The batch engine's pass over the DLQ for one run."""

    def __init__(self, run: Run):
        self.run = run
        task = run.task
        self.task = task
        self.flt = Filter.from_task(task)
        self.fifo = task.source_url.endswith(".fifo")
        self.resumed = task.attempts > 1
        self.resume_deadline = worker.monotonic() + worker.HOLD_SECONDS + 5
        self.empty_rounds = 0
        self.failed_batches = 0
        self.abort = ""
        self.pacer = Pacer(task.rate)
        self.selected_ids: set[str] = set()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"redrive-{task.pk}-delete")
        self.pending: Future | None = None

    def budget(self) -> int | None:
        """How many more messages to examine (dry run) or select (None: no limit)."""
        t = self.task
        if t.dry_run:
            return max(0, min(t.max_messages or DRY_RUN_SAMPLE, DRY_RUN_SAMPLE) - t.examined)
        if t.filter_kind == FilterKind.MESSAGE_IDS:
            return max(0, len(self.flt.ids) - t.matched)
        if t.max_messages:
            return max(0, t.max_messages - t.matched)
        return None

    def drained(self) -> bool:
        """After an empty receive: is the DLQ done, as far as this task is concerned?"""
        info = queue_info(self.run.target, self.task.source_url, "the DLQ")
        foreign_in_flight = info.in_flight - len(self.run.held)
        if self.resumed and foreign_in_flight > 0 and worker.monotonic() < self.resume_deadline:
            # Messages the dead worker held come back when their hold runs out: wait for them.
            worker.sleep(1)
            return False
        if info.visible > 0:
            self.empty_rounds += 1
            if self.empty_rounds <= EMPTY_ROUNDS:
                return False
            self.run.note(
                f"SQS reported {info.visible} more message(s) but would not deliver them (in a FIFO "
                "queue: messages behind one this task left in the DLQ, in their group); they stay there."
            )
        if foreign_in_flight > 0:
            self.run.note(
                f"{foreign_in_flight} message(s) were in flight elsewhere (another reader, or a peek) "
                "and stay in the DLQ; redrive again to move them."
            )
        return True

    def loop(self) -> str:
        """Scan until done, cancelled or stopped; returns the final status.

        Each batch's delete runs while the next batch is received (it only has to follow the
        checkpoint); its outcome is applied before that next batch is checkpointed.
        """
        run = self.run
        if run.checkpoint() == RedriveStatus.CANCELLING:  # cancelled while its worker was away
            return RedriveStatus.CANCELLED
        while True:
            budget = self.budget()
            if budget == 0:
                return RedriveStatus.COMPLETED
            run.renew_holds()
            wait = 1 if self.empty_rounds else 0
            msgs = retrying(
                aws.receive_messages, run.target, self.task.source_url, min(10, budget or 10), worker.HOLD_SECONDS, wait
            )
            self.settle()
            if not msgs:
                if self.drained():
                    return RedriveStatus.COMPLETED
                if run.checkpoint() == RedriveStatus.CANCELLING:
                    return RedriveStatus.CANCELLED
                continue
            self.empty_rounds = 0
            to_delete, sent = self.process(msgs, budget)
            status = run.checkpoint()  # counts and sent ids are durable before anything is deleted
            self.start_delete(to_delete)
            if self.abort:
                raise RedriveError(self.abort)
            if status == RedriveStatus.CANCELLING:
                return RedriveStatus.CANCELLED
            if self.wait(self.pacer.delay(sent)) == RedriveStatus.CANCELLING:
                return RedriveStatus.CANCELLED

    def wait(self, seconds: float) -> str:
        """Sleep for the rate limit, beating and watching for a cancel meanwhile."""
        status = RedriveStatus.RUNNING
        while seconds > 0:
            step = min(seconds, 2.0)
            worker.sleep(step)
            seconds -= step
            status = self.run.checkpoint()
            if status == RedriveStatus.CANCELLING:
                break
        return status

    def process(self, msgs: list[dict[str, Any]], budget: int | None) -> tuple[list[tuple[str, str]], int]:
        """Examine a received batch. Returns the (message id, receipt) to delete and how many were sent."""
        run, task = self.run, self.task
        run.sent_now = []
        selected: list[dict[str, Any]] = []
        to_delete: list[tuple[str, str]] = []
        unexamined: list[tuple[str, str]] = []
        for m in msgs:
            mid = m["MessageId"]
            if mid in run.already_sent:
                # Sent by an earlier run that stopped before deleting it: finish the move, send nothing.
                to_delete.append((mid, m["ReceiptHandle"]))
                continue
            if mid in self.selected_ids:  # came back (a hold ran out): already counted
                run.hold(m)
                continue
            if budget is not None and budget <= 0:
                unexamined.append((mid, m["ReceiptHandle"]))
                continue
            matches = self.flt.matches(m)
            if task.dry_run:
                self.sample(m, matches)
                budget = None if budget is None else budget - 1
            if matches:
                selected.append(m)
                self.selected_ids.add(mid)
                if not task.dry_run and budget is not None:
                    budget -= 1
            else:
                task.skipped += 1
                run.hold(m)
        if unexamined:  # received beyond the limit: not examined, visible again at once
            release(run.target, task.source_url, unexamined)
        task.matched += len(selected)
        if task.dry_run:
            for m in selected:
                run.hold(m)
            return to_delete, 0
        if task.operation == DlqOperation.DELETE:
            return to_delete + [(m["MessageId"], m["ReceiptHandle"]) for m in selected], 0
        return to_delete + self.send(selected), len(selected)

    def send(self, selected: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Send the selected messages; returns the (id, receipt) of those SQS accepted."""
        run, task = self.run, self.task
        if not selected:
            return []
        entries = [send_entry(n, m, self.fifo, task.pk) for n, m in enumerate(selected)]
        by_entry = {e["Id"]: m for e, m in zip(entries, selected)}
        ok: list[str] = []
        failed: list[dict[str, Any]] = []
        for chunk in size_chunks(entries):
            if self.abort:
                failed += [{"Id": e["Id"], "Code": "", "Message": ""} for e in chunk]
                continue
            try:
                o, f = _send(run, task.destination_url, chunk)
            except RedriveError as exc:  # the destination is gone or denied: stop after this batch
                self.abort = str(exc)
                failed += [{"Id": e["Id"], "Code": "", "Message": ""} for e in chunk]
                continue
            ok += o
            failed += f
        for f in failed:
            m = by_entry[f["Id"]]
            run.hold(m)  # stays in the DLQ; visible again when the task ends
            task.failed += 1
            if f["Message"] or f["Code"]:
                task.add_error(f"not moved: {f['Code'] or 'error'}: {f['Message']}", message_id=m["MessageId"])
        self.failed_batches = self.failed_batches + 1 if failed and not ok else 0
        if self.failed_batches >= FAILED_BATCHES_TO_ABORT and not self.abort:
            self.abort = (
                f"Stopped after {FAILED_BATCHES_TO_ABORT} batches in a row could not be sent "
                f"({task.errors[-1]['message'] if task.errors else 'no reason given'})."
            )
        task.moved += len(ok)
        run.sent_now = [by_entry[i]["MessageId"] for i in ok]
        run.already_sent.update(run.sent_now)
        return [(by_entry[i]["MessageId"], by_entry[i]["ReceiptHandle"]) for i in ok]

    def start_delete(self, ids_receipts: list[tuple[str, str]]) -> None:
        """Delete from the DLQ in the background (the AWS calls only; `settle` applies the outcome)."""
        self.settle()
        if ids_receipts:
            ctx = contextvars.copy_context()  # the call meter goes along
            self.pending = self.pool.submit(ctx.run, _delete, self.run, ids_receipts)

    def settle(self) -> None:
        """Wait for the background delete, if any, and record its outcome."""
        if self.pending is None:
            return
        future, self.pending = self.pending, None
        ok, failed = future.result()
        task, run = self.task, self.run
        if task.operation == DlqOperation.DELETE:
            task.moved += len(ok)
            task.failed += len(failed)
        done = set(ok)
        run.undeleted = [i for i in run.undeleted if i not in done]
        for f in failed:
            if task.operation == DlqOperation.REDRIVE:
                # Already at the destination: remember it, so it is deleted (not re-sent) if seen again.
                run.undeleted.append(f["MessageId"])
                task.add_error(
                    f"sent but not deleted from the DLQ; it may be delivered twice: {f['Message']}",
                    message_id=f["MessageId"],
                )
            else:
                task.add_error(f"not deleted: {f['Message']}", message_id=f["MessageId"])

    def close(self) -> None:
        """Finish any delete in flight (it was checkpointed: it must happen), stop the thread."""
        try:
            self.settle()
        finally:
            self.pool.shutdown(wait=True)

    def sample(self, m: dict[str, Any], matches: bool) -> None:
        """A dry run's record of a message: ids and size, never the body."""
        p = peeked(m, self.task.pipeline.request_id_attribute)
        self.task.sample = [
            *self.task.sample,
            {
                "id": p.id,
                "sent_at": p.sent_at.isoformat(timespec="seconds") if p.sent_at else "",
                "request_id": p.request_id or "",
                "group_id": p.group_id,
                "size": p.size,
                "matches": matches,
            },
        ]


def run_batch(run: Run) -> None:
    scan = BatchScan(run)
    try:
        outcome = scan.loop()
    finally:
        scan.close()
    run.release_all()
    task = run.task
    if task.filter_kind == FilterKind.MESSAGE_IDS and task.matched < len(scan.flt.ids):
        run.note(
            f"{len(scan.flt.ids) - task.matched} of the chosen message(s) were not found in the DLQ (already gone?)."
        )
    run.finish(outcome)
