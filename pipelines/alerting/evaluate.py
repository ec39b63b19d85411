"""Evaluating the rule table: incidents and health from the same findings.

The rule table (`rules.RULES`) is the one judge. Each evaluation turns a pipeline's row and recent
history into `Finding`s; the same objects move the pipeline's incidents and are stored on its row
as its health reasons (`Pipeline.store_findings`), and the health is the worst of them. The
overview, the pipeline page, incidents and `/metrics` all read those stored findings, so they
cannot disagree.

Each rule is evaluated when the data it reads arrives (`RuleDef.sources`): queue counts and sync
failures after the fast cycle, CloudWatch metrics after the metrics cycle, staleness again on the
clock. A rule not evaluated this time keeps the finding its last evaluation stored, and a pipeline
whose sync just failed has only its staleness rule evaluated: no data is not good news. A rule that
is switched off, or no longer applies to the pipeline, drops its finding at once.

An incident a person resolved while its rule still fired stays resolved for RESOLVE_HOLD: the
finding keeps showing in the health, but no new incident opens (and pages) unless it gets worse.

Costs per evaluation: four reads (stored findings, overrides, unresolved and hand-resolved incidents), three
more for the SLO burn-rate rules' windows when their source is evaluated (slo/windows.py), one bulk
write for the incidents still firing and one for the findings that changed, and one transaction per incident
that opens, escalates, is re-notified or resolves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from celery.exceptions import SoftTimeLimitExceeded

from pipelines import clock
from pipelines.alerting.history import Row, Trend
from pipelines.alerting.incidents import EvalReport, apply_finding, held_closed, resolve_disabled
from pipelines.alerting.rules import CLOCK, FAST, RULES, Context
from pipelines.models import UNRESOLVED, AlertRule, Incident, Pipeline, RuleKind
from pipelines.slo import burn, windows
from pipelines.slo.compute import BURN_WINDOWS

log = logging.getLogger(__name__)


def evaluate(
    pipelines: Iterable[Pipeline],
    at: datetime | None = None,
    history: dict[int, tuple[Trend, list[Row]]] | None = None,
    source: str = FAST,
    failed: Iterable[int] = (),
) -> EvalReport:
    """Evaluate the rules that read `source`'s data on these pipelines, move their incidents and
    store their findings (and so the pipelines' health).

    `history` is what `history.refresh` returned (trend and recent rows per pipeline); `failed` are
    pipelines whose sync just failed.
    """
    at = at or clock.now()
    pipes = [p for p in pipelines if p.enabled]
    report = EvalReport()
    if not pipes:
        return report
    history = history or {}
    failed = set(failed)
    ids = [p.pk for p in pipes]
    # Findings as stored now: another cycle may have evaluated its rules since these rows were read.
    stored = dict(Pipeline.objects.filter(pk__in=ids).values_list("pk", "health_reasons"))
    overrides = {(r.pipeline_id, r.kind): r for r in AlertRule.objects.filter(pipeline_id__in=ids)}
    current = {(i.pipeline_id, i.rule): i for i in Incident.objects.filter(pipeline_id__in=ids, status__in=UNRESOLVED)}
    held = held_closed(ids, at)
    slo = windows.load(ids, at, BURN_WINDOWS) if any(source in RULES[k].sources for k in burn.PAIRS) else {}
    changed: list[Pipeline] = []  # whose findings (and so health) this evaluation changed
    for p in pipes:
        p.health_reasons = stored.get(p.pk, p.health_reasons)
        trend, rows = history.get(p.pk, (None, []))
        backlog_limit = RULES[RuleKind.BACKLOG].config(p, overrides.get((p.pk, RuleKind.BACKLOG))).threshold
        ctx = Context(p, rows, trend, at, backlog_limit, slo.get(p.pk))
        findings = {rule: (severity, summary) for severity, summary, rule in p.findings() if rule}
        for kind, rule in RULES.items():
            cfg = rule.config(p, overrides.get((p.pk, kind)))
            judged = cfg.enabled and rule.applies(p)
            if not judged:
                findings.pop(kind.value, None)
            if source not in rule.sources or (p.pk in failed and kind != RuleKind.STALE):
                continue
            try:
                finding = rule.check(ctx, cfg) if judged else None
                hold = held.get((p.pk, kind.value))
                if finding is not None and current.get((p.pk, kind)) is None and hold is not None:
                    if finding.severity.rank >= hold.rank:
                        report.held.append(p.pk)  # resolved by a person lately: the finding shows, no page
                        findings[kind.value] = (finding.severity, finding.summary)
                        continue
                current[(p.pk, kind)] = apply_finding(p, kind, finding, current.get((p.pk, kind)), at, report, judged)
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:  # one broken rule must not stop the others, nor the sync
                log.exception("alert rule %s on %s failed", kind, p.name)
                report.errors.append(f"{p.name} {kind}: {exc}")
                continue
            if finding is None:
                findings.pop(kind.value, None)
            else:
                findings[kind.value] = (finding.severity, finding.summary)
        before = (p.health, p.health_reasons)
        p.store_findings([(severity, summary, rule) for rule, (severity, summary) in findings.items()])
        if (p.health, p.health_reasons) != before:
            changed.append(p)
        report.evaluated += 1
    # Incidents still firing: one bulk write (status untouched, so a concurrent resolve stands).
    Incident.objects.bulk_update(
        report.updated, ["summary", "value", "threshold", "last_seen_at", "severity"], batch_size=500
    )
    Pipeline.objects.bulk_update(changed, ["health", "health_reasons"], batch_size=500)
    return report


def evaluate_after_sync(
    pipelines: list[Pipeline], at: datetime, history, source: str, failed: Iterable[int] = ()
) -> EvalReport | None:
    """evaluate(), for the collectors: a failure here is logged and never fails the sync."""
    try:
        return evaluate(pipelines, at, history, source, failed)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        log.exception("alert evaluation after the %s cycle failed", source)
        return None


def evaluate_clock(at: datetime | None = None) -> EvalReport:
    """The staleness rule on every enabled pipeline (catches pipelines no cycle has synced lately),
    and the end of incidents on pipelines that were disabled."""
    at = at or clock.now()
    pipes = list(Pipeline.objects.filter(enabled=True).order_by("pk"))
    report = evaluate(pipes, at, {}, CLOCK)
    resolve_disabled(at, report)
    return report
