"""The DLQ pages on the admin site: peek, redrive, delete, purge, task progress, and the bulk action.

Every page checks its permission on the pipeline it shows (`pipelines.access`): a pipeline the user
may not view is a 404; peeking needs PEEK, bodies BODIES, a redrive REDRIVE, deleting or purging
messages DELETE."""

from __future__ import annotations

import math
from datetime import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from pipelines import access, clock
from pipelines.access.pages import pipeline_or_404
from pipelines.dlq import filters, peek, progress, queues, service
from pipelines.dlq.forms import BulkRedriveForm, RedriveForm, new_token
from pipelines.dlq.queues import RedriveError
from pipelines.models import FilterKind, Pipeline, RedriveTask

REDRIVE_PERM = access.REDRIVE
DELETE_PERM = access.DELETE
PEEK_PERM = access.PEEK
BODIES_PERM = access.BODIES
TRACE_PERM = access.TRACE
HISTORY_ROWS = 20
#: A trace link's window reaches this far before the message was first sent (clocks differ a little).
TRACE_MARGIN_SECONDS = 300


def trace_url(pipeline: Pipeline, m: peek.PeekedMessage, at: datetime) -> str:
    """The trace form filled in for a message: its request id (else its message id), its pipeline, and
    a window reaching back to when it was first sent. Following it runs nothing; the form does."""
    age = (at - m.sent_at).total_seconds() if m.sent_at else 0
    params = {
        "id": m.request_id or m.id,
        "pipeline": pipeline.pk,
        "hours": max(1, math.ceil((age + TRACE_MARGIN_SECONDS) / 3600)),
    }
    return f"{reverse('admin:trace')}?{urlencode(params)}"


def display_message(m: peek.PeekedMessage, bodies: bool, trace: str = "", request_id_attribute: str = "") -> dict:
    """What the page shows of a peeked message: its body and attribute values only to those allowed to
    read bodies (others see kinds and sizes, and the request-id attribute's value), and a link to its
    trace (`trace`) only to those allowed to trace."""
    attributes = (
        [{"name": n, "type": t, "value": v, "size": ""} for n, t, v in m.attributes]
        if bodies
        else m.masked_attributes(request_id_attribute)
    )
    return {
        "trace_url": trace,
        "id": m.id,
        "sent_at": m.sent_at,
        "receive_count": m.receive_count,
        "group_id": m.group_id,
        "request_id": m.request_id,
        "attributes": attributes,
        "size": m.size,
        "body": m.pretty_body() if bodies else None,
        "preview": None if bodies else m.masked_preview(),
    }


class DlqViews:
    """The DLQ pages of one pipeline admin; each view checks the permissions it needs itself."""

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.site = model_admin.admin_site

    # --- helpers ---

    def _pipeline(self, request, pk: int, perm: str = access.VIEW) -> Pipeline:
        """The pipeline if the user may view it (else 404) and holds `perm` on it (else 403)."""
        return pipeline_or_404(request, pk, perm)

    def _task(self, pipeline: Pipeline, task_id: int) -> RedriveTask:
        return get_object_or_404(RedriveTask, pk=task_id, pipeline=pipeline)

    def _render(self, request, template: str, pipeline: Pipeline, title: str, **context):
        ctx = {
            **self.site.each_context(request),
            "opts": Pipeline._meta,
            "title": title,
            "pipeline": pipeline,
            "can_redrive": access.can(request, REDRIVE_PERM, pipeline),
            "can_delete": access.can(request, DELETE_PERM, pipeline),
            "can_peek": access.can(request, PEEK_PERM, pipeline),
            "can_bodies": access.can(request, BODIES_PERM, pipeline),
            **context,
        }
        return TemplateResponse(request, f"admin/pipelines/redrive/{template}", ctx)

    @staticmethod
    def _info(pipeline: Pipeline) -> tuple[queues.QueueInfo | None, str]:
        try:
            return queues.dlq_info(pipeline), ""
        except RedriveError as exc:
            return None, str(exc)

    def _task_url(self, task: RedriveTask) -> str:
        return reverse("admin:pipelines_pipeline_dlq_task", args=[task.pipeline_id, task.pk])

    def _refused(self, request, exc: RedriveError) -> None:
        if exc.task is not None and exc.task.pipeline_id:
            messages.error(
                request,
                format_html('{} <a href="{}">Open task #{}</a>', str(exc), self._task_url(exc.task), exc.task.pk),
            )
        else:
            messages.error(request, str(exc))

    def _peek(self, request, pipeline: Pipeline, count: int) -> list[dict] | None:
        """Receive up to `count` messages to show them, and audit it, failed or not."""
        bodies, can_trace = access.can(request, BODIES_PERM, pipeline), access.can(request, TRACE_PERM, pipeline)
        at = clock.now()
        result = peek.audited_peek(
            pipeline, count, request.user, bodies=bodies, remote_addr=request.META.get("REMOTE_ADDR")
        )
        if result.error:
            messages.error(request, result.error)
            return None
        return [
            display_message(m, bodies, trace_url(pipeline, m, at) if can_trace else "", pipeline.request_id_attribute)
            for m in result.messages
        ]

    # --- pages ---

    def dlq(self, request, pk: int):
        """The DLQ: depth, the active task, history, and a peek at messages (POST: it is a receive, so
        it needs its own permission and is audited)."""
        pipeline = self._pipeline(request, pk)
        peeked, count = None, 10
        if request.method == "POST":
            if not access.can(request, PEEK_PERM, pipeline):
                raise PermissionDenied
            try:
                count = max(1, min(peek.PEEK_MAX, int(request.POST.get("count") or 10)))
            except ValueError:
                count = 10
            peeked = self._peek(request, pipeline, count)
        info, problem = self._info(pipeline) if pipeline.dlq_url else (None, "")
        history = []
        if pipeline.dlq_url:
            # Pipelines may share a DLQ: only the tasks of those the user may view.
            shared = access.visible(
                request, RedriveTask.objects.filter(source_url=pipeline.dlq_url), prefix="pipeline__"
            )
            history = list(shared.order_by("-created_at", "-pk")[:HISTORY_ROWS])
        active = next((t for t in history if t.is_active), None)
        return self._render(
            request,
            "dlq.html",
            pipeline,
            f"Dead-letter queue of {pipeline.name}",
            info=info,
            problem=problem,
            history=history,
            active=active,
            active_summary=progress.summary(active) if active else "",
            peeked=peeked,
            count=count,
            peek_max=peek.PEEK_MAX,
        )

    def redrive(self, request, pk: int):
        """The confirmation page: depth, destination, options; POST with `confirm` starts the task."""
        pipeline = self._pipeline(request, pk, REDRIVE_PERM)
        bodies = access.can(request, BODIES_PERM, pipeline)
        if request.method == "POST" and "confirm" in request.POST:
            form = RedriveForm(request.POST, pipeline=pipeline, can_read_bodies=bodies)
            if form.is_valid():
                d = form.cleaned_data
                try:
                    task, created = service.start_redrive(
                        pipeline,
                        request.user,
                        destination_url=d["destination_url"] if d["destination"] == "other" else "",
                        max_messages=d["max_messages"],
                        rate=d["rate"],
                        flt=d["filter"],
                        dry_run=d["dry_run"],
                        token=d["token"],
                        remote_addr=request.META.get("REMOTE_ADDR"),
                    )
                except RedriveError as exc:
                    self._refused(request, exc)
                else:
                    if not created:
                        messages.info(request, "This form was already submitted; here is the task it started.")
                    elif task.dry_run:
                        messages.success(request, f"Dry run #{task.pk} started: nothing will be moved.")
                    else:
                        messages.success(request, f"Redrive #{task.pk} started.")
                    return redirect(self._task_url(task))
        else:
            # A GET, "Redrive selected…" from the DLQ page (POST with the chosen message ids), or "Redrive
            # these…" from a search (POST with the search): a dry run first, unless unticked.
            ids = request.POST.getlist("ids") if request.method == "POST" else []
            search = request.POST.get("search", "") if request.method == "POST" else ""
            initial = {"token": new_token(), "destination": "source"}
            if ids:
                initial.update(filter_kind=FilterKind.MESSAGE_IDS, ids="\n".join(ids))
            if search:
                initial.update(filter_kind=FilterKind.SEARCH, search=search, dry_run=True)
            form = RedriveForm(initial=initial, pipeline=pipeline, can_read_bodies=bodies)
        info, problem = self._info(pipeline)
        engine, reason = service.choose_engine(pipeline.account)
        return self._render(
            request,
            "confirm.html",
            pipeline,
            f"Redrive the DLQ of {pipeline.name}",
            form=form,
            info=info,
            problem=problem,
            native_engine=engine == "native",
            engine_reason=reason,
        )

    def delete(self, request, pk: int):
        """Delete chosen messages: POST with ids shows the typed confirmation; with `confirm`, starts."""
        pipeline = self._pipeline(request, pk, DELETE_PERM)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        ids = filters.parse_ids(" ".join(request.POST.getlist("ids")))
        if not ids:
            messages.error(request, "Choose the messages to delete first (peek, then tick them).")
            return redirect("admin:pipelines_pipeline_dlq", pk)
        info, problem = self._info(pipeline)
        queue_name = queues.queue_name(pipeline.dlq_url)
        error = ""
        if "confirm" in request.POST:
            if request.POST.get("confirm_name", "").strip() != queue_name:
                error = f"Type the queue name, {queue_name}, exactly to confirm. Nothing was deleted."
            else:
                try:
                    task, created = service.start_delete(
                        pipeline,
                        request.user,
                        ids,
                        request.POST.get("token", ""),
                        remote_addr=request.META.get("REMOTE_ADDR"),
                    )
                except RedriveError as exc:
                    self._refused(request, exc)
                else:
                    messages.success(
                        request,
                        f"Deletion #{task.pk} of {len(ids)} message(s) started."
                        if created
                        else "This form was already submitted; here is its task.",
                    )
                    return redirect(self._task_url(task))
        return self._render(
            request,
            "typed_confirm.html",
            pipeline,
            f"Delete messages from the DLQ of {pipeline.name}",
            action="delete",
            ids=ids,
            queue_name=queue_name,
            info=info,
            problem=problem,
            error=error,
            token=request.POST.get("token") or new_token(),
            post_url=reverse("admin:pipelines_pipeline_dlq_delete", args=[pk]),
        )

    def purge(self, request, pk: int):
        """Purge the DLQ after the operator types its name."""
        pipeline = self._pipeline(request, pk, DELETE_PERM)
        if not pipeline.dlq_url:
            messages.error(request, f"{pipeline.name} has no dead-letter queue.")
            return redirect("admin:pipelines_pipeline_dlq", pk)
        queue_name = queues.queue_name(pipeline.dlq_url)
        error = ""
        if request.method == "POST":
            if request.POST.get("confirm_name", "").strip() != queue_name:
                error = f"Type the queue name, {queue_name}, exactly to confirm. Nothing was purged."
            else:
                try:
                    task = service.purge(
                        pipeline,
                        request.user,
                        request.POST.get("token", ""),
                        remote_addr=request.META.get("REMOTE_ADDR"),
                    )
                except RedriveError as exc:
                    self._refused(request, exc)
                else:
                    messages.success(
                        request,
                        f"Purged {queue_name} (task #{task.pk}). SQS may take up to a minute to finish deleting.",
                    )
                    return redirect("admin:pipelines_pipeline_dlq", pk)
        info, problem = self._info(pipeline)
        return self._render(
            request,
            "typed_confirm.html",
            pipeline,
            f"Purge the DLQ of {pipeline.name}",
            action="purge",
            queue_name=queue_name,
            info=info,
            problem=problem,
            error=error,
            token=request.POST.get("token") or new_token(),
            post_url=reverse("admin:pipelines_pipeline_dlq_purge", args=[pk]),
        )

    def task(self, request, pk: int, task_id: int):
        pipeline = self._pipeline(request, pk)
        task = self._task(pipeline, task_id)
        # A dry run's sample names messages (ids, request ids): for those who may peek at the DLQ.
        can_peek = access.can(request, PEEK_PERM, pipeline)
        sample = task.sample if task.dry_run and can_peek else []
        title = f"{task.get_operation_display()} #{task.pk} – {pipeline.name}"
        return self._render(
            request,
            "task.html",
            pipeline,
            title,
            task=task,
            progress=progress.progress(task),
            sample=sample,
            would_move=sum(1 for s in sample if s.get("matches")),
            can_peek=can_peek,
            can_cancel=access.can(request, service.cancel_perm(task), pipeline),
        )

    def progress(self, request, pk: int, task_id: int):
        pipeline = self._pipeline(request, pk)
        return JsonResponse(progress.progress(self._task(pipeline, task_id)))

    def cancel(self, request, pk: int, task_id: int):
        pipeline = self._pipeline(request, pk)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        task = self._task(pipeline, task_id)
        if not access.can(request, service.cancel_perm(task), pipeline):
            raise PermissionDenied
        if service.cancel(task, request.user, remote_addr=request.META.get("REMOTE_ADDR")):
            messages.success(
                request,
                f"Task #{task.pk} is cancelling: it stops after the current batch; messages "
                "not yet moved stay in the DLQ.",
            )
        else:
            messages.info(request, f"Task #{task.pk} is already {task.get_status_display().lower()}.")
        return redirect(self._task_url(task))


def redrive_action(model_admin, request, queryset):
    """The "Redrive DLQ" admin action: a confirmation page for the selected pipelines, then one task
    per DLQ (each to its own source queue). Returns a response to show, or None when done. Only the
    selected pipelines the user may redrive are redriven."""
    if not access.can(request, REDRIVE_PERM):
        raise PermissionDenied
    pipelines = list(access.visible(request, queryset.select_related("account"), REDRIVE_PERM))
    if "confirm" in request.POST:
        form = BulkRedriveForm(request.POST)
        if form.is_valid():
            started, refused = [], []
            for p in pipelines:
                if not p.dlq_url:
                    refused.append(f"{p.name}: no dead-letter queue.")
                    continue
                try:
                    task, _ = service.start_redrive(
                        p,
                        request.user,
                        max_messages=form.cleaned_data["max_messages"],
                        rate=form.cleaned_data["rate"],
                        token=f"{form.cleaned_data['token']}-{p.pk}",
                        remote_addr=request.META.get("REMOTE_ADDR"),
                    )
                except RedriveError as exc:
                    refused.append(f"{p.name}: {exc}")
                    continue
                started.append(task)
            if started:
                links = format_html_join(
                    ", ",
                    '<a href="{}">{} #{}</a>',
                    (
                        (
                            reverse("admin:pipelines_pipeline_dlq_task", args=[t.pipeline_id, t.pk]),
                            t.pipeline_name,
                            t.pk,
                        )
                        for t in started
                    ),
                )
                model_admin.message_user(
                    request, format_html("Started {} redrive(s): {}", len(started), links), messages.SUCCESS
                )
            for why in refused:
                model_admin.message_user(request, why, messages.ERROR)
            return None
    else:
        form = BulkRedriveForm(initial={"token": new_token()})
    rows = []
    for p in pipelines:
        info, problem = DlqViews._info(p) if p.dlq_url else (None, "no dead-letter queue")
        engine, reason = service.choose_engine(p.account, max_messages=None)
        rows.append({"pipeline": p, "info": info, "problem": problem, "engine": engine, "reason": reason})
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Pipeline._meta,
        "title": "Redrive the dead-letter queues of the selected pipelines",
        "rows": rows,
        "form": form,
        "selected": [p.pk for p in pipelines],
        "action": "redrive_dlq",
    }
    return TemplateResponse(request, "admin/pipelines/redrive/action_confirm.html", context)
