"""Shared helpers for the DLQ tests: eager Celery, filling a queue, reading a queue back, and a
quicker emulator for the tests (and the benchmark) that move hundreds or thousands of messages.

(Its fixtures are registered in conftest.py; the test_redrive_* modules import its helpers.)
"""

import json
import sys

import pytest

from opsboard_demo.emulator import LOOPBACK, MotoServer
from pipelines import aws
from pipelines.dlq import worker


@pytest.fixture
def eager():
    """Celery tasks run in-process, as with CELERY_TASK_ALWAYS_EAGER=true."""
    from opsboard.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def fast(monkeypatch):
    """No real waiting for rate limits and retry backoff: the engine's clock jumps ahead instead.
    Returns the list of what would have been slept."""
    import time

    slept = []
    skipped = [0.0]

    def sleep(seconds):
        slept.append(seconds)
        skipped[0] += seconds

    monkeypatch.setattr(worker, "sleep", sleep)
    monkeypatch.setattr(worker, "monotonic", lambda: time.monotonic() + skipped[0])
    return slept


def original(i: int, fifo: bool = False, groups: int = 7, marker: str = "") -> dict:
    """The i-th test message: a JSON body, three attributes of each kind, a group when FIFO."""
    entry = {
        "Id": f"m{i}",
        "MessageBody": json.dumps({"order": i, "note": marker or "ok", "text": "ü∑ " * (i % 5)}),
        "MessageAttributes": {
            "requestId": {"DataType": "String", "StringValue": f"req-{i:05d}"},
            "attempt": {"DataType": "Number", "StringValue": str(i % 4)},
            "blob": {"DataType": "Binary", "BinaryValue": bytes([i % 256, 0, 255])},
        },
    }
    if fifo:
        entry["MessageGroupId"] = f"g{i % groups}"
        entry["MessageDeduplicationId"] = f"orig-{i}"
    return entry


def fill(target, queue_url: str, count: int, fifo: bool = False, marker=lambda i: "") -> list[dict]:
    """Put `count` messages straight into a queue (SendMessageBatch); returns the entries sent."""
    sqs = aws.client(target, "sqs")
    sent = [original(i, fifo, marker=marker(i)) for i in range(count)]
    for i in range(0, count, 10):
        resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=sent[i : i + 10])
        assert not resp.get("Failed"), resp
    return sent


def key(body: str, attributes: dict, group: str = "") -> tuple:
    """A message's identity for comparison: body, attributes (type and value), group."""
    attrs = tuple(
        sorted(
            (name, a["DataType"], a.get("StringValue"), bytes(a["BinaryValue"]) if "BinaryValue" in a else None)
            for name, a in (attributes or {}).items()
        )
    )
    return body, attrs, group


def key_of_entry(entry: dict) -> tuple:
    return key(entry["MessageBody"], entry["MessageAttributes"], entry.get("MessageGroupId", ""))


def read_all(target, queue_url: str) -> list[dict]:
    """Every message in a queue, in the order SQS delivered them, deleting each once read (a FIFO
    queue delivers no more of a group while some of it is in flight)."""
    sqs = aws.client(target, "sqs")
    out = []
    while True:
        msgs = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=300,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not msgs:
            return out
        out.extend(msgs)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(msgs)],
        )


def key_of_message(m: dict) -> tuple:
    return key(m["Body"], m.get("MessageAttributes") or {}, (m.get("Attributes") or {}).get("MessageGroupId", ""))


def counts(target, queue_url: str) -> dict:
    return aws.queue_counts(target, queue_url)


# --- a quicker emulator for volume runs -------------------------------------------------------------

#: moto does work proportional to a queue's depth on every call, with a large constant: it reads
#: the clock through datetime arithmetic (~12 µs) for every message, counts the queue's messages
#: three times whenever it looks up any queue attribute (once per message sent), and for every
#: message received looks up the retention period that way. A call on a queue of 1,000 messages
#: takes about half a second; real SQS does not slow down with depth. This bootstrap gives moto
#: the same clock through time.time(), the three counts in one pass, and the retention period read
#: directly, before anything imports it. What SQS calls answer is unchanged; only their speed is.
QUICK_MOTO_BOOT = """
import sys, time
import moto.core.utils as utils
_unix_time = utils.unix_time
utils.unix_time = lambda dt=None: time.time() if dt is None else _unix_time(dt)
from moto.sqs import models as m

def _counts(queue):
    now = time.time() * 1000
    visible = not_visible = delayed = 0
    for msg in queue._messages:
        is_visible, is_delayed = now > msg.visible_at, now < msg.delayed_until
        visible += is_visible and not is_delayed
        not_visible += not is_visible
        delayed += is_delayed
    return visible, not_visible, delayed

_attributes = m.Queue.attributes.fget

def attributes(self):
    self._quick_counts = _counts(self)
    try:
        return _attributes(self)
    finally:
        self._quick_counts = None

def counted(index, original):
    def get(self):
        cached = getattr(self, "_quick_counts", None)
        return cached[index] if cached else original.fget(self)
    return property(get)

m.Queue.approximate_number_of_messages = counted(0, m.Queue.approximate_number_of_messages)
m.Queue.approximate_number_of_messages_not_visible = counted(1, m.Queue.approximate_number_of_messages_not_visible)
m.Queue.approximate_number_of_messages_delayed = counted(2, m.Queue.approximate_number_of_messages_delayed)
m.Queue.attributes = property(attributes)

def retained(self, queue_name, message):
    queue = self.get_queue(queue_name)
    return queue.message_retention_period + message.sent_timestamp / 1000 > time.time()

m.SQSBackend.is_message_valid_based_on_retention_period = retained
from moto.server import main
main(sys.argv[1:])
"""


class QuickMotoServer(MotoServer):
    """`MotoServer` (moto in server mode, real HTTP on loopback), sped up as QUICK_MOTO_BOOT says."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", QUICK_MOTO_BOOT, "-H", LOOPBACK, "-p", str(self.port)]


@pytest.fixture(scope="session")
def volume_server(tmp_path_factory):
    server = QuickMotoServer(log_path=str(tmp_path_factory.mktemp("moto-volume") / "moto.log")).start()
    yield server
    server.stop()


@pytest.fixture
def volume_account(db, volume_server):
    """An account on its own emulator, for tests that move a thousand messages."""
    from pipelines.models import AwsAccount

    volume_server.reset()
    return AwsAccount.objects.create(name="volume", region="us-east-1", endpoint_url=volume_server.url)


@pytest.fixture
def volume_register(volume_account):
    from opsboard_demo.provision import PipelineSpec, provision
    from pipelines.models import Pipeline
    from pipelines.registry.discovery import discover

    def _register(name, **kwargs):
        made = provision(volume_account.target(), PipelineSpec(name=name, **kwargs))
        p = Pipeline(name=name, account=volume_account)
        p.apply_discovery(discover(volume_account.target(), made.queue_url).fields)
        p.save()
        return p

    return _register
