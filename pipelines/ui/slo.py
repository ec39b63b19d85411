"""One pipeline's SLO page: each objective's compliance, error budget, burn and coverage over the
rolling window, and the burn-rate rules with why each fires (or not). The API objectives are rows
where an API is discovered, and one "no API" line where not.

The figures are computed on request from the history (slo/windows.py: three queries, and three more
for the budget chart's hourly counts); the burn-rate
findings are the rule table's, as stored by its last evaluation (the same sentence as the incident).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.template.response import TemplateResponse
from django.urls import reverse

from pipelines import clock
from pipelines.access.pages import pipeline_or_404
from pipelines.alerting.rules import RULES
from pipelines.models import Pipeline
from pipelines.slo import burn
from pipelines.slo.compute import API_AVAILABILITY, API_LATENCY, Objective, budget_series
from pipelines.slo.windows import hourly, objectives_for

#: The burn windows the objectives table shows (the pairs' table shows every window).
SHOWN_BURNS = (60, 6 * 60, 3 * 24 * 60)
API_OBJECTIVES = (API_AVAILABILITY, API_LATENCY)


def _pct(v: float | None, digits: int = 2) -> str:
    return "unknown" if v is None else f"{v:.{digits}f} %"


def _burn(v: float | None) -> str:
    return "unknown" if v is None else f"{burn.figure(v)}×"


@dataclass
class ObjectiveView:
    """One objective's figures as the page prints them."""

    o: Objective

    @property
    def compliance(self) -> str:
        return _pct(self.o.compliance, 3)

    @property
    def budget(self) -> str:
        if not self.o.known:
            return "unknown"
        left, total = self.o.budget_left, self.o.budget_total
        return f"{self.o.budget_left_pct:.0f} % ({left:,.1f} of {total:,.1f} {self.o.unit} left)"

    @property
    def overspent(self) -> bool:
        return self.o.known and self.o.budget_left < 0

    @property
    def burns(self) -> list[tuple[str, str]]:
        return [(burn.span(w), _burn(self.o.burns.get(w))) for w in SHOWN_BURNS]

    @property
    def coverage(self) -> str:
        return f"{self.o.coverage_days:.1f} of {self.o.window_days:g} days measured"


def pair_rows(p: Pipeline, objectives: list[Objective], findings: dict[str, tuple[str, str]]) -> list[dict]:
    """Each burn-rate rule: its threshold (with the pipeline's override), both windows' burn per
    objective, and the finding the rule table stored (why it fires)."""
    overrides = {r.kind: r for r in p.alert_rules.all()}
    out = []
    for kind, pair in burn.PAIRS.items():
        cfg = RULES[kind].config(p, overrides.get(kind))
        per_objective = [
            (o.title, _burn(o.burns.get(pair.long)), _burn(o.burns.get(pair.short))) for o in objectives if o.applies
        ]
        out.append(
            {
                "label": kind.label,
                "enabled": cfg.enabled,
                "threshold": f"{cfg.threshold:g}×",
                "long": burn.span(pair.long),
                "short": burn.span(pair.short),
                "severity": pair.severity,
                "objectives": per_objective,
                "finding": findings.get(kind.value),
            }
        )
    return out


def slo_page(request, pipeline_id: int, model_admin):
    p = pipeline_or_404(request, pipeline_id)
    at = clock.now()
    objectives = objectives_for([p], at, with_burns=True)[p.pk]
    findings = {rule: (severity, summary) for severity, summary, rule in p.findings() if rule in burn.PAIRS}
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Pipeline._meta,
        "title": f"{p.name}: SLOs",
        "pipeline": p,
        "at": at,
        # Without an API its two objectives are one "no API" line, not two rows of unknowns.
        "objectives": [ObjectiveView(o) for o in objectives if o.applies or o.name not in API_OBJECTIVES],
        "no_api": not p.has_api,
        "shown_burns": [burn.span(w) for w in SHOWN_BURNS],
        "pairs": pair_rows(p, objectives, findings),
        "dashboard_url": reverse("admin:pipelines_pipeline_dashboard", args=[p.pk]),
        # The budget chart's lines (slo.js draws them): hour → percent of the budget left after it.
        "budget_series": json.dumps(budget_series(p, hourly(p, at))),
    }
    return TemplateResponse(request, "admin/pipelines/slo.html", context)
