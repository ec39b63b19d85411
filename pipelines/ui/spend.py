"""What a pipeline costs in AWS, on its page (the Spend card, the 30-day chart's JSON) and on the
overview (the top spenders). The figures are pipelines.spend's; this module words them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.http import JsonResponse

from pipelines import clock
from pipelines.access.pages import pipeline_or_404
from pipelines.collection.cost import MONTH_SECONDS, monthly_cost
from pipelines.models import Pipeline
from pipelines.spend.formula import LABELS, Part
from pipelines.spend.history import Spend, spends

DAYS_PER_MONTH = MONTH_SECONDS / 86400
TOP = 5
#: What the spend figures read from a pipeline row.
SPEND_FIELDS = (
    "name",
    "account__region",
    "poll_interval",
    "queue_name",
    "dlq_url",
    "dlq_arn",
    "is_fifo",
    "function_name",
    "function_memory_mb",
    "function_architecture",
    "batch_size",
    "api_id",
    "api_kind",
    "api_stage",
    "api_name",
    "account__unsupported_statistics",
)


def money(part: Part, digits: int = 2) -> str:
    """$1.23; ≥ $1.23 when a part is unknown (a lower bound); unknown when nothing is known."""
    if part.amount is None:
        return "unknown"
    amount = f"${part.amount:,.{digits}f}" if part.amount >= 0.01 or not part.amount else f"${part.amount:.4f}"
    return amount if part.complete else f"≥ {amount}"


def polling_per_day(p: Pipeline) -> float:
    """opsboard's own calls for the pipeline, per day: the monthly estimate of collection.cost."""
    return monthly_cost(p, p.account.unsupported_statistics)["total"] / DAYS_PER_MONTH


def spend_for(pipelines: list[Pipeline], at: datetime) -> dict[int, Spend]:
    return spends(pipelines, at, {p.pk: polling_per_day(p) for p in pipelines})


@dataclass
class Card:
    spend: Spend
    month_to_date: str
    per_day: str
    per_thousand: str
    parts: list[tuple[str, str, str]]  # (service, month to date, why unknown)
    reasons: list[str]
    coverage: str


def card(spend: Spend) -> Card:
    mtd = spend.month_to_date
    parts = [(LABELS[k], money(p), p.why if not p.known else "") for k, p in mtd.parts.items()]
    coverage = (
        f"{spend.month_days_with_data} of {spend.month_days} days this month have readings"
        if spend.month_days_with_data < spend.month_days
        else ""
    )
    return Card(
        spend=spend,
        month_to_date=money(Part(mtd.amount, mtd.complete and spend.month_days_with_data > 0)),
        per_day=money(spend.per_day),
        per_thousand=money(spend.per_thousand, 4),
        parts=parts,
        reasons=mtd.reasons,
        coverage=coverage,
    )


def spend_json(request, pipeline_id: int):
    """The 30-day daily cost chart's data: per UTC day and service, null for a day without readings."""
    pipeline = pipeline_or_404(request, pipeline_id)
    at = clock.now()
    return JsonResponse(spend_for([pipeline], at)[pipeline.pk].chart())


def top_spenders(
    at: datetime, account_id: int | None = None, n: int = TOP, among: QuerySet | None = None
) -> list[tuple[Pipeline, str, str]]:
    """The `n` pipelines (of `among`, the ones the user may see) with the highest month-to-date
    estimate: (pipeline, month to date, per 1,000)."""
    pipes = (Pipeline.objects.all() if among is None else among).select_related("account").only(*SPEND_FIELDS)
    pipes = pipes.filter(enabled=True)
    if account_id is not None:
        pipes = pipes.filter(account_id=account_id)
    found = spend_for(list(pipes), at)
    ranked = sorted(
        (s for s in found.values() if s.month_to_date.amount is not None),
        key=lambda s: (-s.month_to_date.amount, s.pipeline.name),
    )[:n]
    return [(s.pipeline, card(s).month_to_date, money(s.per_thousand, 4)) for s in ranked]
