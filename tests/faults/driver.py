"""Operator actions for the fault tests, run in a child process on the test's private services.

    python -m tests.faults.driver <command> '<json parameters>'

It runs with `opsboard.settings` and the environment the test gives it (DATABASE_URL, the broker),
calls the product's own functions, as the admin views do, and prints one line of JSON. The test
process itself never opens this database through Django: it reads results with plain SQL.
"""

from __future__ import annotations

import json
import sys

import django


def register(endpoint: str, region: str, queues: dict[str, str]) -> dict[str, int]:
    """An account on the emulator and one pipeline per queue URL, through discovery (the add form's path)."""
    from pipelines.models import AwsAccount, Pipeline
    from pipelines.registry.discovery import discover

    account, _ = AwsAccount.objects.get_or_create(name="faults", defaults={"region": region, "endpoint_url": endpoint})
    ids = {}
    for name, url in queues.items():
        p = Pipeline(name=name, account=account)
        p.apply_discovery(discover(account.target(), url).fields)
        p.save()
        ids[name] = p.pk
    return ids


def redrive(pipeline: str, rate: int | None = None) -> dict[str, int]:
    """Start a redrive of the pipeline's whole DLQ as the DLQ page's button does: checked, recorded,
    handed to a worker through the broker."""
    from pipelines.dlq import service
    from pipelines.models import Pipeline

    task, created = service.start_redrive(Pipeline.objects.get(name=pipeline), rate=rate)
    assert created
    return {"task": task.pk}


COMMANDS = {"register": register, "redrive": redrive}


def main() -> None:
    django.setup()
    command, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(COMMANDS[command](**params)))


if __name__ == "__main__":
    main()
