"""The emulated SQS side of the fault tests, with plain boto3: a queue and its DLQ, filling, reading back."""

from __future__ import annotations

import json


def make_pipeline(sqs, name: str) -> tuple[str, str]:
    """A queue and its DLQ (RedrivePolicy, maxReceiveCount 5) in the emulator: (queue URL, DLQ URL)."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue_url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "180"})[
        "QueueUrl"
    ]
    return queue_url, dlq_url


def fill(sqs, url: str, count: int) -> set[str]:
    """`count` distinct messages (JSON bodies with an order number, one attribute); returns the bodies."""
    bodies = [json.dumps({"order": i, "note": "failed in the consumer"}) for i in range(count)]
    for i in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(n),
                    "MessageBody": body,
                    "MessageAttributes": {"requestId": {"DataType": "String", "StringValue": f"req-{i + n:05d}"}},
                }
                for n, body in enumerate(bodies[i : i + 10])
            ],
        )
    return set(bodies)


def drain(sqs, url: str) -> list[str]:
    """Every body in the queue (deleting them), duplicates included."""
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get("Messages", [])
        if not msgs:
            return out
        out += [m["Body"] for m in msgs]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(msgs)]
        )


def depth(sqs, url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs[n]) for n in names)
