"""A fleet of pipelines for the overview's scale tests, written fast with bulk_create.

Every pipeline has a group and tags, live values and stored findings, as a sync leaves them. Out of
each hundred: one critical, one warning, one stale (its last sync an hour old), one disabled, one
never synced; the rest are OK.
"""

from __future__ import annotations

from datetime import timedelta

from pipelines.clock import now
from pipelines.models import AwsAccount, Health, Pipeline

GROUPS = ["payments", "search", "orders", "mail", ""]
TEAMS = ["core", "growth", "platform"]


def kind(i: int) -> str:
    """Which health pipeline number i is made with."""
    return {0: "critical", 1: "warning", 2: "stale", 3: "disabled", 4: "pending"}.get(i % 100, "ok")


def make_fleet(n: int, accounts: int = 5, start: int = 0, at=None) -> list[Pipeline]:
    at = at or now()
    accts = list(AwsAccount.objects.order_by("pk")[:accounts])
    for a in range(len(accts), accounts):
        accts.append(AwsAccount.objects.create(name=f"acct-{a:02d}", region="eu-west-1"))
    pipes = []
    for i in range(start, start + n):
        k = kind(i)
        findings = {
            "critical": [["critical", f"backlog {50000 + i:,} above 1,000", "backlog"]],
            "warning": [["warning", "oldest message 20 min above its 15 min SLA", "oldest_age"]],
        }.get(k, [])
        pipes.append(
            Pipeline(
                name=f"svc-{i:05d}",
                account=accts[i % accounts],
                queue_url=f"https://sqs.eu-west-1.amazonaws.com/123456789012/q{i:05d}",
                queue_name=f"queue-{i:05d}",
                group=GROUPS[i % len(GROUPS)],
                tags={"team": TEAMS[i % len(TEAMS)], **({"pci": ""} if i % 7 == 0 else {})},
                enabled=k != "disabled",
                health=Health.OK if k in ("ok", "stale") else Health(k) if k != "disabled" else Health.OK,
                health_reasons=findings,
                last_sync_at=None if k == "pending" else at - timedelta(hours=1 if k == "stale" else 0, seconds=i % 50),
                backlog=(50000 + i) if k == "critical" else i % 900,
                backlog_threshold=1000,
                in_flight=i % 30,
                dlq_url=f"https://sqs.eu-west-1.amazonaws.com/123456789012/q{i:05d}-dlq",
                dlq_depth=i % 5,
                oldest_age=60 + i % 600,
                retention_period=345600,
                function_name=f"fn-{i:05d}",
                drain_rate=(i % 11) - 5,
                time_to_loss_known=True,
                recent_invocations=100 + i % 50,
                sparkline=[(i + h) % 700 for h in range(24)],
            )
        )
    Pipeline.objects.bulk_create(pipes, batch_size=1000)
    return list(Pipeline.objects.filter(name__in=[p.name for p in pipes]).order_by("name"))
