"""What beat and an operator do, for the shard tests' worker processes, run in a child process.

    python -m tests.collection.shard_driver <command> '<json parameters>'

It runs with `opsboard.settings` on the database and broker the test gives it (the same ones its
workers use), calls the product's own functions and prints one line of JSON. The test process reads
results with plain SQL.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from unittest import mock

import django


def register(accounts: dict[str, dict]) -> dict[str, list[int]]:
    """Accounts on given endpoints and their pipelines: {account: {"endpoint": url, "queues": {name: [url, dlq]}}}."""
    from pipelines.models import AwsAccount, Pipeline

    ids = {}
    for account_name, spec in accounts.items():
        account = AwsAccount.objects.create(name=account_name, region="us-east-1", endpoint_url=spec["endpoint"])
        pipes = [
            Pipeline(
                name=name,
                account=account,
                queue_url=queue_url,
                queue_name=name,
                dlq_url=dlq_url,
                dlq_arn=f"arn:aws:sqs:us-east-1:123456789012:{name}-dlq",
            )
            for name, (queue_url, dlq_url) in spec["queues"].items()
        ]
        ids[account_name] = [p.pk for p in Pipeline.objects.bulk_create(pipes)]
    return ids


def beat(kind: str, cycle: int | None = None) -> dict[str, int]:
    """Run beat's task for `kind` as it would run one second into cycle `cycle` (default: the next one,
    so the shards have a whole interval before their cycle ends whenever the test runs)."""
    from pipelines import clock, tasks
    from pipelines.collection import shards

    now = clock.now()
    cycle = shards.cycle_of(kind, now) + 1 if cycle is None else cycle
    at = shards.cycle_end(kind, cycle - 1) + timedelta(seconds=1)
    with mock.patch("pipelines.clock.now", return_value=at):
        queued = (tasks.fast_cycle if kind == "fast" else tasks.metrics_cycle)()
    return {"cycle": cycle, "queued": queued}


def requeue(kind: str, cycle: int) -> dict[str, int]:
    """Queue every shard of `cycle` once more, as a duplicated or redelivered message would."""
    from pipelines import tasks
    from pipelines.collection import shards

    task = tasks.fast_cycle_shard if kind == "fast" else tasks.metrics_cycle_shard
    planned = shards.plan(kind, cycle)
    for s in planned:
        task.apply_async(args=s.task_args, expires=shards.cycle_end(kind, cycle))
    return {"queued": len(planned)}


COMMANDS = {"register": register, "beat": beat, "requeue": requeue}


def main() -> None:
    django.setup()
    command, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(COMMANDS[command](**params)))


if __name__ == "__main__":
    main()
