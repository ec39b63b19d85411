"""Incidents: the stretch of time a rule fires on a pipeline, moved by compare-and-set.

A firing rule opens one incident per pipeline and rule (a partial unique index makes a concurrent
second opening fail, and the loser joins the winner's incident); while it keeps firing the
incident is updated, escalated (and notified) when its severity passes the worst it has been, and
re-notified every ALERT_RENOTIFY_MINUTES while nobody has acknowledged it; once the rule has been
quiet for RESOLVE_AFTER the incident is resolved. Each transition is a compare-and-set whose
notifications are queued in the same transaction, so exactly one worker notifies it and a state
change is never recorded without its notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from pipelines import clock
from pipelines.alerting import deliveries
from pipelines.alerting.rules import Finding
from pipelines.models import (
    UNRESOLVED,
    AuditAction,
    AuditEntry,
    AuditThrough,
    Incident,
    IncidentStatus,
    NotifyEvent,
    Pipeline,
    RuleKind,
    Severity,
)

RESOLVE_AFTER = timedelta(minutes=5)  # a rule quiet this long resolves its incident (no flapping)
#: An incident a person resolved while its rule still fired stays resolved this long: the rule's
#: finding still shows in the health, but no new incident opens (and pages) unless it gets worse.
RESOLVE_HOLD = timedelta(minutes=60)
#: Who resolved an incident when its pipeline was disabled (not a person: no hold).
DISABLED_BY = "(pipeline disabled)"


def _notify(incident: Incident, event: str) -> None:
    """Queue the notifications, inside the transaction of the state change that caused them: both
    commit or neither does (and the next evaluation tries again)."""
    deliveries.enqueue(incident, event)


def _audit(action: AuditAction, incident: Incident, by: str, user, remote_addr: str | None, through) -> None:
    AuditEntry.record(
        action,
        user,
        incident.pipeline,
        remote_addr=remote_addr,
        through=through,
        incident=incident.pk,
        rule=incident.rule,
        severity=incident.severity,
        by=by,
    )


def acknowledge(
    incident: Incident,
    by: str,
    *,
    user=None,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> bool:
    """Open → acknowledged by `by` (a person, or "PagerDuty"), the paging channels told and the act
    audited (as done by `user`, None for a process), in one transaction. Compare-and-set: False (and
    nothing sent or audited) if it was not open."""
    with transaction.atomic():
        if not incident.acknowledge(by=by):
            return False
        _notify(incident, NotifyEvent.ACKNOWLEDGED)
        _audit(AuditAction.INCIDENT_ACKNOWLEDGE, incident, by, user, remote_addr, through)
    return True


def resolve(
    incident: Incident,
    by: str,
    *,
    user=None,
    remote_addr: str | None = None,
    through: AuditThrough = AuditThrough.UI,
) -> bool:
    """Open or acknowledged → resolved by `by` (a person), the channels that take resolves told (a
    paging service's own incident would stay open otherwise) and the act audited, in one transaction.
    Compare-and-set: False (and nothing sent or audited) if it was resolved already. The evaluator's
    own resolves (the rule went quiet) are not people's acts and are not audited."""
    with transaction.atomic():
        if not incident.resolve(by=by):
            return False
        _notify(incident, NotifyEvent.RESOLVED)
        _audit(AuditAction.INCIDENT_RESOLVE, incident, by, user, remote_addr, through)
    return True


@dataclass
class EvalReport:
    """What one evaluation did (counts per transition)."""

    evaluated: int = 0
    opened: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    reminded: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # pipelines whose firing rule a person's resolve holds closed
    updated: list[Incident] = field(default_factory=list)  # still firing: written in bulk at the end

    def as_dict(self) -> dict:
        return {
            "evaluated": self.evaluated,
            "opened": len(self.opened),
            "escalated": len(self.escalated),
            "reminded": len(self.reminded),
            "resolved": len(self.resolved),
            "errors": self.errors,
        }


def _open(p: Pipeline, kind: RuleKind, f: Finding, at: datetime, report: EvalReport) -> Incident | None:
    """Open an incident; None when another worker opened it first (the caller then updates that one)."""
    try:
        with transaction.atomic():
            inc = Incident.objects.create(
                pipeline=p,
                rule=kind,
                severity=f.severity,
                peak_severity=f.severity,
                summary=f.summary[:500],
                value=f.value,
                threshold=f.threshold,
                opened_at=at,
                last_seen_at=at,
                last_notified_at=at,
                notifications=1,
            )
            _notify(inc, NotifyEvent.OPENED)
    except IntegrityError:
        return None
    report.opened.append(inc.pk)
    return inc


def _transition(live, event: str, inc: Incident, changes: dict, report_list: list[int]) -> bool:
    """Compare-and-set `changes` on `live` (a queryset of this incident in its expected state) and,
    if this worker won, notify in the same transaction. True when it won."""
    with transaction.atomic():
        if live.update(**changes) != 1:
            return False
        inc.refresh_from_db()
        _notify(inc, event)
    report_list.append(inc.pk)
    return True


def _update(inc: Incident, f: Finding, at: datetime, report: EvalReport) -> None:
    live = Incident.objects.filter(pk=inc.pk, status__in=UNRESOLVED)
    fields = {
        "summary": f.summary[:500],
        "value": f.value,
        "threshold": f.threshold,
        "last_seen_at": at,
        "severity": f.severity,
    }
    peak = Severity(inc.peak_severity or inc.severity)
    if f.severity.rank < peak.rank:
        # Worse than it has ever been: escalate, and whoever moves the peak notifies.
        _transition(
            live.filter(peak_severity=inc.peak_severity),
            NotifyEvent.ESCALATED,
            inc,
            {**fields, "peak_severity": f.severity, "last_notified_at": at, "notifications": F("notifications") + 1},
            report.escalated,
        )
        return
    renotify = timedelta(minutes=settings.ALERT_RENOTIFY_MINUTES)
    if inc.status == IncidentStatus.OPEN and inc.last_notified_at is not None and at - inc.last_notified_at >= renotify:
        _transition(
            live.filter(status=IncidentStatus.OPEN, last_notified_at=inc.last_notified_at),
            NotifyEvent.REMINDER,
            inc,
            {**fields, "last_notified_at": at, "notifications": F("notifications") + 1},
            report.reminded,
        )
        return
    # Still firing, nothing to tell anyone: record what it looks like now (in bulk, at the end).
    for name, value in fields.items():
        setattr(inc, name, value)
    report.updated.append(inc)


def _resolve(inc: Incident, at: datetime, report: EvalReport, by: str = "") -> None:
    """Resolve and notify (or find another worker did: either way it is no longer open)."""
    _transition(
        Incident.objects.filter(pk=inc.pk, status__in=UNRESOLVED),
        NotifyEvent.RESOLVED,
        inc,
        {"status": IncidentStatus.RESOLVED, "resolved_at": at, "resolved_by": by},
        report.resolved,
    )


def apply_finding(
    p: Pipeline,
    kind: RuleKind,
    f: Finding | None,
    inc: Incident | None,
    at: datetime,
    report: EvalReport,
    judged: bool = True,
) -> Incident | None:
    """Move the incident of one rule on one pipeline; returns it while it stays unresolved.
    `judged=False`: the rule is switched off or does not apply, so an incident it left open ends
    now rather than after RESOLVE_AFTER."""
    if f is None:
        if inc is not None and (not judged or at - inc.last_seen_at >= RESOLVE_AFTER):
            _resolve(inc, at, report)
            return None
        return inc
    if inc is None:
        opened = _open(p, kind, f, at, report)
        if opened is not None:
            return opened
        inc = Incident.objects.filter(pipeline=p, rule=kind, status__in=UNRESOLVED).first()
        if inc is None:  # opened and resolved by others in between
            return None
    _update(inc, f, at, report)
    return inc


def resolve_disabled(at: datetime | None = None, report: EvalReport | None = None) -> int:
    """Resolve (and notify) the incidents of disabled pipelines: nobody watches them any more."""
    at, report = at or clock.now(), report or EvalReport()
    before = len(report.resolved)
    for inc in Incident.objects.filter(pipeline__enabled=False, status__in=UNRESOLVED):
        _resolve(inc, at, report, by=DISABLED_BY)
    return len(report.resolved) - before


def held_closed(pipeline_ids: list[int], at: datetime) -> dict[tuple[int, str], Severity]:
    """(pipeline, rule) → the worst severity of an incident a person resolved within RESOLVE_HOLD
    (one query). While held, the rule opens no new incident unless its finding is worse than that."""
    held: dict[tuple[int, str], Severity] = {}
    rows = (
        Incident.objects.filter(pipeline_id__in=pipeline_ids, status=IncidentStatus.RESOLVED)
        .filter(resolved_at__gt=at - RESOLVE_HOLD)
        .exclude(resolved_by__in=["", DISABLED_BY])
        .values_list("pipeline_id", "rule", "peak_severity", "severity")
    )
    for pid, rule, peak, severity in rows:
        worst = Severity(peak or severity)
        if (pid, rule) not in held or worst.rank < held[(pid, rule)].rank:
            held[(pid, rule)] = worst
    return held


def hold_ends(incident: Incident) -> datetime | None:
    """When a hand-resolved incident's hold ends (None for one the evaluator resolved)."""
    if incident.resolved_at is None or incident.resolved_by in ("", DISABLED_BY):
        return None
    return incident.resolved_at + RESOLVE_HOLD
