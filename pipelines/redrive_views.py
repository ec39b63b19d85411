"""Admin views for dead-letter queues: browse (peek), redrive with a confirmation page, delete chosen
messages and purge with a typed confirmation, and task progress (a page and the JSON it polls).

Mounted under the pipeline admin by `admin_urls` (admin/pipelines/pipeline/<id>/dlq/…). Seeing the
DLQ needs the admin's view permission on pipelines; message bodies need
`pipelines.view_message_bodies`; anything that changes the DLQ needs `pipelines.redrive_dlq` and a
POST with its CSRF token. Every failure is a message on the page, never a server error.
"""

from __future__ import annotations

import secrets

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import redrive
from .models import FilterKind, Pipeline, RedriveTask
from .redrive import Filter, RedriveError

REDRIVE_PERM = "pipelines.redrive_dlq"
BODIES_PERM = "pipelines.view_message_bodies"
HISTORY_ROWS = 20
FILTER_CHOICES = [(k.value, k.label) for k in FilterKind]


def new_token() -> str:
    return secrets.token_urlsafe(24)


class RedriveForm(forms.Form):
    """The redrive options; `clean` builds the `Filter` (as cleaned_data["filter"])."""

    destination = forms.ChoiceField(
        choices=[("source", "The source queue"), ("other", "Another queue")], initial="source", widget=forms.RadioSelect
    )
    destination_url = forms.CharField(
        required=False, max_length=1024, label="Other queue URL", widget=forms.TextInput(attrs={"size": 70})
    )
    max_messages = forms.IntegerField(
        required=False, min_value=1, label="Max messages", help_text="Empty: all of them."
    )
    rate = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=redrive.MAX_RATE,
        label="Rate (messages/s)",
        help_text=f"Empty: as fast as SQS allows (at most {redrive.MAX_RATE}/s natively).",
    )
    filter_kind = forms.ChoiceField(choices=FILTER_CHOICES, required=False, label="Filter")
    filter_attribute = forms.CharField(required=False, max_length=256, label="Attribute name")
    filter_value = forms.CharField(required=False, max_length=4096, label="Value / text")
    ids = forms.CharField(
        required=False, label="Ids", widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), help_text="One per line."
    )
    dry_run = forms.BooleanField(
        required=False,
        label="Dry run",
        help_text=f"Sample up to {redrive.DRY_RUN_SAMPLE} messages and show which would move; move nothing.",
    )
    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, pipeline: Pipeline, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline = pipeline
        self.fields["destination"].choices = [
            ("source", f"The source queue: {pipeline.queue_name or pipeline.queue_url}"),
            ("other", "Another queue (URL)"),
        ]

    def clean(self):
        data = super().clean()
        if data.get("destination") == "other" and not (data.get("destination_url") or "").strip():
            self.add_error("destination_url", "Give the URL of the queue to move the messages to.")
        kind = data.get("filter_kind") or ""
        value = (data.get("filter_value") or "").strip() if kind != FilterKind.BODY else data.get("filter_value", "")
        ids = frozenset(redrive.parse_ids(data.get("ids") or ""))
        if kind == FilterKind.ATTRIBUTE:
            flt = Filter(kind, (data.get("filter_attribute") or "").strip(), value)
        elif kind == FilterKind.BODY:
            flt = Filter(kind, value=value)
        elif kind == FilterKind.REQUEST_IDS:
            flt = Filter(kind, self.pipeline.request_id_attribute, ids=ids)
        elif kind == FilterKind.MESSAGE_IDS:
            flt = Filter(kind, ids=ids)
        else:
            flt = Filter()
        try:
            flt.validate()
        except RedriveError as exc:
            self.add_error(
                "ids" if flt.ids or kind in (FilterKind.REQUEST_IDS, FilterKind.MESSAGE_IDS) else "filter_value",
                str(exc),
            )
        data["filter"] = flt
        return data


class BulkRedriveForm(forms.Form):
    """Options of the "Redrive DLQ" action on several pipelines (each to its own source queue)."""

    max_messages = forms.IntegerField(
        required=False, min_value=1, label="Max messages per DLQ", help_text="Empty: all of them."
    )
    rate = forms.IntegerField(required=False, min_value=1, max_value=redrive.MAX_RATE, label="Rate (messages/s)")
    token = forms.CharField(widget=forms.HiddenInput)


def display_message(m: redrive.PeekedMessage, bodies: bool) -> dict:
    """What the page shows of a peeked message; the body only to those allowed to read it."""
    return {
        "id": m.id,
        "sent_at": m.sent_at,
        "receive_count": m.receive_count,
        "group_id": m.group_id,
        "request_id": m.request_id,
        "attributes": m.attributes,
        "size": m.size,
        "is_json": m.json is not None,
        "body": m.pretty_body() if bodies else None,
        "preview": None if bodies else m.masked_preview(),
    }


class DlqViews:
    """The DLQ pages of one pipeline admin; each view checks the permissions it needs itself."""

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.site = model_admin.admin_site

    def urls(self) -> list:
        wrap = self.site.admin_view
        return [
            path("<int:pk>/dlq/", wrap(self.dlq), name="pipelines_pipeline_dlq"),
            path("<int:pk>/dlq/redrive/", wrap(self.redrive), name="pipelines_pipeline_dlq_redrive"),
            path("<int:pk>/dlq/delete/", wrap(self.delete), name="pipelines_pipeline_dlq_delete"),
            path("<int:pk>/dlq/purge/", wrap(self.purge), name="pipelines_pipeline_dlq_purge"),
            path("<int:pk>/dlq/tasks/<int:task_id>/", wrap(self.task), name="pipelines_pipeline_dlq_task"),
            path(
                "<int:pk>/dlq/tasks/<int:task_id>/progress/",
                wrap(self.progress),
                name="pipelines_pipeline_dlq_task_progress",
            ),
            path(
                "<int:pk>/dlq/tasks/<int:task_id>/cancel/", wrap(self.cancel), name="pipelines_pipeline_dlq_task_cancel"
            ),
        ]

    # --- helpers ---

    def _pipeline(self, request, pk: int) -> Pipeline:
        pipeline = get_object_or_404(Pipeline.objects.select_related("account"), pk=pk)
        if not self.model_admin.has_view_permission(request, pipeline):
            raise PermissionDenied
        return pipeline

    @staticmethod
    def _require_redrive(request) -> None:
        if not request.user.has_perm(REDRIVE_PERM):
            raise PermissionDenied

    def _task(self, pipeline: Pipeline, task_id: int) -> RedriveTask:
        return get_object_or_404(RedriveTask, pk=task_id, pipeline=pipeline)

    def _render(self, request, template: str, pipeline: Pipeline, title: str, **context):
        ctx = {
            **self.site.each_context(request),
            "opts": Pipeline._meta,
            "title": title,
            "pipeline": pipeline,
            "can_redrive": request.user.has_perm(REDRIVE_PERM),
            "can_bodies": request.user.has_perm(BODIES_PERM),
            **context,
        }
        return TemplateResponse(request, f"admin/pipelines/redrive/{template}", ctx)

    @staticmethod
    def _info(pipeline: Pipeline) -> tuple[redrive.QueueInfo | None, str]:
        try:
            return redrive.dlq_info(pipeline), ""
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

    # --- pages ---

    def dlq(self, request, pk: int):
        """The DLQ: depth, the active task, history, and a peek at messages (POST: it is a receive)."""
        pipeline = self._pipeline(request, pk)
        peeked, count = None, 10
        if request.method == "POST":
            try:
                count = max(1, min(redrive.PEEK_MAX, int(request.POST.get("count") or 10)))
            except ValueError:
                count = 10
            try:
                bodies = request.user.has_perm(BODIES_PERM)
                peeked = [display_message(m, bodies) for m in redrive.peek(pipeline, count)]
            except RedriveError as exc:
                messages.error(request, str(exc))
        info, problem = self._info(pipeline) if pipeline.dlq_url else (None, "")
        history = []
        if pipeline.dlq_url:
            history = list(
                RedriveTask.objects.filter(source_url=pipeline.dlq_url).order_by("-created_at", "-pk")[:HISTORY_ROWS]
            )
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
            peeked=peeked,
            count=count,
            peek_max=redrive.PEEK_MAX,
        )

    def redrive(self, request, pk: int):
        """The confirmation page: depth, destination, options; POST with `confirm` starts the task."""
        pipeline = self._pipeline(request, pk)
        self._require_redrive(request)
        if request.method == "POST" and "confirm" in request.POST:
            form = RedriveForm(request.POST, pipeline=pipeline)
            if form.is_valid():
                d = form.cleaned_data
                try:
                    task, created = redrive.start_redrive(
                        pipeline,
                        request.user,
                        destination_url=d["destination_url"] if d["destination"] == "other" else "",
                        max_messages=d["max_messages"],
                        rate=d["rate"],
                        flt=d["filter"],
                        dry_run=d["dry_run"],
                        token=d["token"],
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
            # A GET, or "Redrive selected…" from the DLQ page (POST with the chosen message ids).
            ids = request.POST.getlist("ids") if request.method == "POST" else []
            initial = {"token": new_token(), "destination": "source"}
            if ids:
                initial.update(filter_kind=FilterKind.MESSAGE_IDS, ids="\n".join(ids))
            form = RedriveForm(initial=initial, pipeline=pipeline)
        info, problem = self._info(pipeline)
        engine, reason = redrive.choose_engine(pipeline.account)
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
        pipeline = self._pipeline(request, pk)
        self._require_redrive(request)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        ids = redrive.parse_ids(" ".join(request.POST.getlist("ids")))
        if not ids:
            messages.error(request, "Choose the messages to delete first (peek, then tick them).")
            return redirect("admin:pipelines_pipeline_dlq", pk)
        info, problem = self._info(pipeline)
        queue_name = pipeline.dlq_url.rstrip("/").rsplit("/", 1)[-1]
        error = ""
        if "confirm" in request.POST:
            if request.POST.get("confirm_name", "").strip() != queue_name:
                error = f"Type the queue name, {queue_name}, exactly to confirm. Nothing was deleted."
            else:
                try:
                    task, created = redrive.start_delete(pipeline, request.user, ids, request.POST.get("token", ""))
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
        pipeline = self._pipeline(request, pk)
        self._require_redrive(request)
        if not pipeline.dlq_url:
            messages.error(request, f"{pipeline.name} has no dead-letter queue.")
            return redirect("admin:pipelines_pipeline_dlq", pk)
        queue_name = pipeline.dlq_url.rstrip("/").rsplit("/", 1)[-1]
        error = ""
        if request.method == "POST":
            if request.POST.get("confirm_name", "").strip() != queue_name:
                error = f"Type the queue name, {queue_name}, exactly to confirm. Nothing was purged."
            else:
                try:
                    task = redrive.purge(pipeline, request.user, request.POST.get("token", ""))
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
        sample = task.sample if task.dry_run else []
        title = f"{task.get_operation_display()} #{task.pk} – {pipeline.name}"
        return self._render(
            request,
            "task.html",
            pipeline,
            title,
            task=task,
            progress=task.progress(),
            sample=sample,
            would_move=sum(1 for s in sample if s.get("matches")),
        )

    def progress(self, request, pk: int, task_id: int):
        pipeline = self._pipeline(request, pk)
        return JsonResponse(self._task(pipeline, task_id).progress())

    def cancel(self, request, pk: int, task_id: int):
        pipeline = self._pipeline(request, pk)
        self._require_redrive(request)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        task = self._task(pipeline, task_id)
        if redrive.cancel(task, request.user):
            messages.success(
                request,
                f"Task #{task.pk} is cancelling: it stops after the current batch; messages "
                "not yet moved stay in the DLQ.",
            )
        else:
            messages.info(request, f"Task #{task.pk} is already {task.get_status_display().lower()}.")
        return redirect(self._task_url(task))


def admin_urls(model_admin):
    """URL patterns mounted under the pipeline admin (admin/pipelines/pipeline/...)."""
    return DlqViews(model_admin).urls()


def redrive_action(model_admin, request, queryset):
    """The "Redrive DLQ" admin action: a confirmation page for the selected pipelines, then one task
    per DLQ (each to its own source queue). Returns a response to show, or None when done."""
    if not request.user.has_perm(REDRIVE_PERM):
        raise PermissionDenied
    pipelines = list(queryset.select_related("account"))
    if "confirm" in request.POST:
        form = BulkRedriveForm(request.POST)
        if form.is_valid():
            started, refused = [], []
            for p in pipelines:
                if not p.dlq_url:
                    refused.append(f"{p.name}: no dead-letter queue.")
                    continue
                try:
                    task, _ = redrive.start_redrive(
                        p,
                        request.user,
                        max_messages=form.cleaned_data["max_messages"],
                        rate=form.cleaned_data["rate"],
                        token=f"{form.cleaned_data['token']}-{p.pk}",
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
        engine, reason = redrive.choose_engine(p.account, max_messages=None)
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
