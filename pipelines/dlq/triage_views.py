"""The DLQ triage pages: a DLQ's failure groups from its latest scan (or an older one), the button that
starts a scan, and the scan's progress as JSON for the page's progress bar.

What a user sees follows what they may do: anyone who may view the pipeline sees the groups' titles and
counts; sample message ids need the permission to peek (a scan is a receive); the consumer's failure
lines, tracebacks and request-id links need the permission to trace, as on the trace page; each group
action shows only to users who hold the permission it needs — each permission on this pipeline
(`pipelines.access`; a pipeline the user may not view is a 404). A GET never starts a scan.
"""

from __future__ import annotations

import math
from datetime import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from pipelines import access, clock
from pipelines.access.pages import pipeline_or_404
from pipelines.dlq import peek, triage
from pipelines.dlq.queues import RedriveError
from pipelines.dlq.views import (
    BODIES_PERM,
    DELETE_PERM,
    PEEK_PERM,
    REDRIVE_PERM,
    TRACE_MARGIN_SECONDS,
    TRACE_PERM,
)
from pipelines.models import ACTIVE_TRIAGE_STATUSES, Pipeline, TriageGroup, TriageScan, TriageStatus

#: Older scans listed under the groups.
OLDER_SCANS = 20

#: Why a scan did not see the whole DLQ, in words (`TriageScan.stopped`).
STOPPED_WORDS = {
    peek.STOP_CAP: "it examined as many messages as a scan may (TRIAGE_SCAN_MAX)",
    peek.STOP_TIME: "it ran out of time (TRIAGE_SCAN_SECONDS)",
    peek.STOP_IN_FLIGHT: "other readers held some messages, which cannot be seen meanwhile",
    peek.STOP_UNDELIVERED: "SQS counted messages it did not deliver (in a FIFO queue: behind held ones)",
    peek.STOP_DELAYED: "some messages were delayed",
    peek.STOP_ERROR: "a call to SQS failed",
}


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def trend(group: TriageGroup, had_previous: bool) -> tuple[str, str]:
    """(words, direction) comparing a group with the same signature in the previous completed scan:
    ("new", "new"), ("was 1,250", "down"/"up") or ("still 1,200", "same"); nothing on a first scan."""
    if not had_previous:
        return "", ""
    if group.previous_count is None:
        return "new", "new"
    if group.previous_count == group.count:
        return f"still {group.count:,}", "same"
    return f"was {group.previous_count:,}", "up" if group.count > group.previous_count else "down"


def group_trace_url(pipeline: Pipeline, request_id: str, first_sent: datetime | None, at: datetime) -> str:
    """The trace form filled in for one of a group's requests, its window reaching back to the group's
    oldest message (following it runs nothing; the form does)."""
    age = (at - first_sent).total_seconds() if first_sent else 0
    hours = max(1, math.ceil((age + TRACE_MARGIN_SECONDS) / 3600))
    return f"{reverse('admin:trace')}?{urlencode({'id': request_id, 'pipeline': pipeline.pk, 'hours': hours})}"


def scan_words(scan: TriageScan) -> dict:
    """A scan's facts as the page states them."""
    stopped = STOPPED_WORDS.get(scan.stopped, scan.stopped)
    if scan.status != TriageStatus.COMPLETED:
        completeness = ""
    elif scan.complete:
        completeness = "Complete: every message in the DLQ was examined."
    else:
        left = f" {_count(scan.left, 'message', 'messages')} were not examined." if scan.left else ""
        completeness = f"Not the whole DLQ: {stopped or 'SQS still counted messages'}.{left}"
    return {
        "examined": scan.examined,
        "depth": scan.depth_at_start,
        "completeness": completeness,
        "failed_sources": [s for s in scan.sources or [] if not s.get("ok", True)],
        "cost": f"{_count(scan.sqs_calls, 'SQS call', 'SQS calls')}, "
        f"{_count(scan.log_calls, 'CloudWatch Logs call', 'CloudWatch Logs calls')}",
    }


def display_groups(pipeline: Pipeline, scan: TriageScan, groups: list[TriageGroup], user, at: datetime) -> list[dict]:
    """The groups as the page shows them to `user` (a user or a request): samples only to peekers, failure lines and trace
    links only to peekers who may also trace."""
    # Samples need the permission to peek; those from the consumer's log, the permission to trace too.
    can_peek = access.can(user, PEEK_PERM, pipeline)
    can_trace = can_peek and access.can(user, TRACE_PERM, pipeline)
    total = sum(g.count for g in groups)
    # As the engine compares: the completed scan before this one.
    had_previous = (
        TriageScan.objects.filter(pipeline=pipeline, status=TriageStatus.COMPLETED, created_at__lte=scan.created_at)
        .exclude(pk=scan.pk)
        .exists()
    )
    shown = []
    for g in groups:
        words, direction = trend(g, had_previous)
        avg = g.receive_avg
        shown.append(
            {
                "group": g,
                "anchor": f"group-{g.signature[:12]}",
                "share": triage.share(g.count, total),
                "bar": math.ceil(100 * g.count / total) if total else 0,
                "trend": words,
                "direction": direction,
                "receives": f"{g.receive_min}–{g.receive_max}" if g.receive_min != g.receive_max else g.receive_min,
                "receive_avg": f"{avg:.1f}" if avg is not None else "–",
                "search": urlencode({"scan": scan.pk, "group": g.signature}),
                "message_ids": g.sample_message_ids if can_peek else [],
                "request_ids": (
                    [{"id": r, "url": group_trace_url(pipeline, r, g.first_sent, at)} for r in g.request_ids]
                    if can_trace
                    else []
                ),
                "sample_error": g.sample_error if can_trace else "",
                "sample_traceback": g.sample_traceback if can_trace else "",
            }
        )
    return shown


class TriageViews:
    """The triage pages of one pipeline admin; each view checks the permissions it needs itself."""

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.site = model_admin.admin_site

    def _pipeline(self, request, pk: int) -> Pipeline:
        return pipeline_or_404(request, pk)

    def _scan(self, pipeline: Pipeline, scan_id: int) -> TriageScan:
        return get_object_or_404(TriageScan, pk=scan_id, pipeline=pipeline)

    def _render(self, request, pipeline: Pipeline, scan: TriageScan | None, groups: list[TriageGroup], latest: bool):
        at = clock.now()

        def may(perm: str) -> bool:
            return access.can(request, perm, pipeline)

        active = TriageScan.objects.filter(pipeline=pipeline, status__in=ACTIVE_TRIAGE_STATUSES).first()
        older = list(  # an active scan is in the progress box above the list
            TriageScan.objects.filter(pipeline=pipeline)
            .exclude(status__in=ACTIVE_TRIAGE_STATUSES)
            .annotate(group_count=Count("groups"))
            .order_by("-created_at", "-pk")[:OLDER_SCANS]
        )
        # On the latest page, a scan that failed after the last completed one says why.
        failed = older[0] if latest and older and older[0].status == TriageStatus.FAILED else None
        ctx = {
            **self.site.each_context(request),
            "opts": Pipeline._meta,
            "title": f"Triage of the DLQ of {pipeline.name}",
            "pipeline": pipeline,
            "scan": scan,
            "latest": latest,
            "facts": scan_words(scan) if scan else None,
            "groups": display_groups(pipeline, scan, groups, request, at) if scan else [],
            "summary": triage.causes_summary(groups) if groups else "",
            "search_url": reverse("admin:pipelines_pipeline_dlq_search", args=[pipeline.pk]),
            "active": active,
            "active_progress": progress_of(active) if active else None,
            "older": older,
            "failed": failed,
            "can_peek": may(PEEK_PERM),
            "can_trace": may(TRACE_PERM),
            "can_redrive": may(REDRIVE_PERM),
            "can_delete": may(DELETE_PERM),
            "can_export": may(PEEK_PERM) and may(BODIES_PERM),
        }
        return TemplateResponse(request, "admin/pipelines/triage/page.html", ctx)

    def page(self, request, pk: int):
        """GET: the latest scan and its groups. POST: start a scan (a receive: it needs the permission to
        peek; the engine audits it), then show its progress."""
        pipeline = self._pipeline(request, pk)
        if request.method == "POST":
            if not access.can(request, PEEK_PERM, pipeline):
                raise PermissionDenied
            try:
                scan = triage.start_scan(pipeline, request.user)
            except RedriveError as exc:
                messages.error(request, str(exc))
                return redirect("admin:pipelines_pipeline_dlq_triage", pipeline.pk)
            messages.success(request, f"Scan #{scan.pk} of the DLQ started.")
            return redirect("admin:pipelines_pipeline_dlq_triage_scan", pipeline.pk, scan.pk)
        if not pipeline.dlq_url:
            messages.error(request, f"{pipeline.name} has no dead-letter queue: there is nothing to triage.")
        scan, groups = triage.latest(pipeline)
        return self._render(request, pipeline, scan, list(groups), latest=True)

    def scan(self, request, pk: int, scan_id: int):
        """One scan, the latest or an older one, and its groups."""
        pipeline = self._pipeline(request, pk)
        scan = self._scan(pipeline, scan_id)
        return self._render(request, pipeline, scan, list(scan.groups.all()), latest=False)

    def progress(self, request, pk: int, scan_id: int):
        """A scan's progress for the page's bar (percent is null while the DLQ's depth is unknown)."""
        pipeline = self._pipeline(request, pk)
        return JsonResponse(progress_of(self._scan(pipeline, scan_id)))


def progress_of(scan: TriageScan) -> dict:
    return {
        "status": scan.status,
        "status_label": scan.status_choice.label,
        "colour": scan.status_choice.colour,
        "examined": scan.examined,
        "depth": scan.depth_at_start,
        "percent": scan.progress_percent(),
        "done": not scan.is_active,
    }
