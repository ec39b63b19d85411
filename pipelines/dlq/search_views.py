"""The DLQ search pages: search a DLQ live, act on what a search (or a triage group) selects — redrive,
delete, export — and edit & resend one message.

Searching receives the DLQ's messages (up to DLQ_SEARCH_MAX, for at most 15 seconds), so it is a POST
that needs `peek_dlq` and is audited; a GET only shows the form, filled in from the query string
(the triage page links here with ?scan=<id>&group=<signature>). The actions on a selection go
through the existing DLQ tasks (dry run, rate, one active task per DLQ, double-submit token, the
task page); the search travels to them as its query string in a hidden field and is parsed again
there. Each permission is checked on the pipeline (`pipelines.access`); deleting a selection needs
`delete_dlq_messages`, edit & resend `redrive_dlq` and `view_message_bodies`.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, QueryDict
from django.shortcuts import redirect
from django.urls import reverse

from pipelines import access, clock
from pipelines.dlq import edit, peek, queues, service
from pipelines.dlq.filters import Filter
from pipelines.dlq.forms import BODIES_NEEDED, SearchForm, new_token
from pipelines.dlq.queues import RedriveError
from pipelines.dlq.selection import PARAMS, Search, parse_search
from pipelines.dlq.views import (
    BODIES_PERM,
    DELETE_PERM,
    PEEK_PERM,
    REDRIVE_PERM,
    TRACE_PERM,
    DlqViews,
    display_message,
    trace_url,
)
from pipelines.models import AuditAction, AuditEntry, Pipeline

#: Why a scan stopped short, in words for the page.
STOPPED = {
    peek.STOP_CAP: "it examined as many messages as a search may (DLQ_SEARCH_MAX)",
    peek.STOP_TIME: "its time ran out",
    peek.STOP_IN_FLIGHT: "other readers held some messages",
    peek.STOP_UNDELIVERED: "SQS counted messages it did not deliver (in a FIFO queue: behind held ones)",
    peek.STOP_DELAYED: "some messages were delayed",
    peek.STOP_ERROR: "a call failed",
}


def export_line(m: peek.PeekedMessage) -> str:
    """One message of an export, as a JSON line (binary attribute values are given by size only)."""
    return json.dumps(
        {
            "message_id": m.id,
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
            "receive_count": m.receive_count,
            "message_group_id": m.group_id or None,
            "attributes": {
                name: {"data_type": kind, "value": None if kind.startswith("Binary") else value}
                | ({"size": m.attribute_sizes.get(name, 0)} if kind.startswith("Binary") else {})
                for name, kind, value in m.attributes
            },
            "body": m.body,
        },
        ensure_ascii=False,
    )


def _may_edit(request, pipeline: Pipeline) -> bool:
    """Edit & resend reads the body and sends a message: REDRIVE and BODIES on the pipeline."""
    return access.can(request, REDRIVE_PERM, pipeline) and access.can(request, BODIES_PERM, pipeline)


class SearchViews(DlqViews):
    """Search, export, delete-a-selection and edit & resend, sharing the DLQ pages' helpers."""

    def _form(self, request, pipeline: Pipeline, data=None, initial=None) -> SearchForm:
        bodies = access.can(request, BODIES_PERM, pipeline)
        return SearchForm(data, initial=initial, pipeline=pipeline, can_read_bodies=bodies)

    def _scan(self, request, pipeline: Pipeline, search: Search, cap: int, action: AuditAction, **extra):
        """Receive the DLQ keeping what the search selects; audited, failed or not."""
        try:
            result = peek.scan(pipeline, cap, keep=search.matches_shown)
        except RedriveError as exc:  # no DLQ: nothing was received
            result = peek.Scan(stopped=peek.STOP_ERROR, error=str(exc))
        AuditEntry.record(
            action,
            request.user,
            pipeline,
            remote_addr=request.META.get("REMOTE_ADDR"),
            queue_url=pipeline.dlq_url,
            criteria=search.describe(),
            examined=result.examined,
            matched=len(result.messages),
            complete=result.complete,
            message_ids=[m.id for m in result.messages],
            error=result.error,
            **extra,
        )
        return result

    def _search_page(self, request, pipeline: Pipeline, form: SearchForm, **context):
        return self._render(
            request,
            "search.html",
            pipeline,
            f"Search the DLQ of {pipeline.name}",
            form=form,
            search_max=settings.DLQ_SEARCH_MAX,
            can_edit=_may_edit(request, pipeline),
            **context,
        )

    @staticmethod
    def _group_note(pipeline: Pipeline, initial: dict) -> str:
        """The linked triage group in words (a database read only: nothing is received)."""
        if not initial.get("group"):
            return ""
        try:
            search = parse_search({"scan": initial.get("scan", ""), "group": initial["group"]}, pipeline)
        except RedriveError as exc:
            return str(exc)
        return search.describe()

    def search(self, request, pk: int):
        """GET: the form (filled in from the query string). POST: run it (a receive: peek_dlq, audited)."""
        pipeline = self._pipeline(request, pk)
        if request.method != "POST":
            initial = {name: request.GET.get(name, "") for name in PARAMS if request.GET.get(name)}
            form = self._form(request, pipeline, initial=initial)
            return self._search_page(request, pipeline, form, group=self._group_note(pipeline, initial))
        if not access.can(request, PEEK_PERM, pipeline):
            raise PermissionDenied
        form = self._form(request, pipeline, request.POST)
        if not form.is_valid():
            return self._search_page(request, pipeline, form)
        search = form.cleaned_data["search"]
        bodies, can_trace = access.can(request, BODIES_PERM, pipeline), access.can(request, TRACE_PERM, pipeline)
        at = clock.now()
        result = self._scan(
            request, pipeline, search, settings.DLQ_SEARCH_MAX, AuditAction.DLQ_SEARCH, bodies_shown=bodies
        )
        if result.error:
            messages.error(request, result.error)
        shown = [
            display_message(m, bodies, trace_url(pipeline, m, at) if can_trace else "", pipeline.request_id_attribute)
            for m in result.messages
        ]
        return self._search_page(
            request,
            pipeline,
            form,
            search=search,
            result=result,
            shown=shown,
            stopped=STOPPED.get(result.stopped, ""),
            carried=search.query(),
        )

    def export(self, request, pk: int):
        """POST: the messages a search selects as JSON lines (bodies included: peek_dlq and
        view_message_bodies), at most DLQ_EXPORT_MAX examined; audited."""
        pipeline = self._pipeline(request, pk)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not (access.can(request, PEEK_PERM, pipeline) and access.can(request, BODIES_PERM, pipeline)):
            raise PermissionDenied
        form = self._form(request, pipeline, request.POST)
        if not form.is_valid():
            return self._search_page(request, pipeline, form)
        search = form.cleaned_data["search"]
        result = self._scan(request, pipeline, search, settings.DLQ_EXPORT_MAX, AuditAction.DLQ_EXPORT)
        if result.error:
            messages.error(request, f"Nothing was exported: {result.error}")
            return self._search_page(request, pipeline, form)
        body = "".join(export_line(m) + "\n" for m in result.messages)
        response = HttpResponse(body, content_type="application/x-ndjson; charset=utf-8")
        name = f"{pipeline.name}-dlq-{clock.now():%Y%m%dT%H%M%SZ}.jsonl".replace(" ", "_")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        # What the file cannot say about itself: how much of the DLQ it covers.
        response["X-Opsboard-Examined"] = str(result.examined)
        response["X-Opsboard-Complete"] = "true" if result.complete else "false"
        return response

    def delete_selection(self, request, pk: int):
        """Delete what a search selects: POST with the search shows the typed confirmation; with
        `confirm` and the queue's name typed, starts a deletion task."""
        pipeline = self._pipeline(request, pk, DELETE_PERM)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        carried = request.POST.get("search", "")
        try:
            search = parse_search(QueryDict(carried), pipeline)
            if search.needs_bodies() and not access.can(request, BODIES_PERM, pipeline):
                raise RedriveError(BODIES_NEEDED)
        except RedriveError as exc:
            messages.error(request, f"{exc} Nothing was deleted.")
            return redirect(f"{reverse('admin:pipelines_pipeline_dlq_search', args=[pk])}?{carried}")
        info, problem = self._info(pipeline)
        queue_name = queues.queue_name(pipeline.dlq_url)
        error = ""
        if "confirm" in request.POST:
            if request.POST.get("confirm_name", "").strip() != queue_name:
                error = f"Type the queue name, {queue_name}, exactly to confirm. Nothing was deleted."
            else:
                try:
                    task, created = service.start_delete_selection(
                        pipeline,
                        request.user,
                        Filter.from_search(search),
                        request.POST.get("token", ""),
                        remote_addr=request.META.get("REMOTE_ADDR"),
                    )
                except RedriveError as exc:
                    self._refused(request, exc)
                else:
                    messages.success(
                        request,
                        f"Deletion #{task.pk} of the messages the search selects started."
                        if created
                        else "This form was already submitted; here is its task.",
                    )
                    return redirect(self._task_url(task))
        return self._render(
            request,
            "typed_confirm.html",
            pipeline,
            f"Delete messages from the DLQ of {pipeline.name}",
            action="delete_search",
            search_description=search.describe(),
            carried=carried,
            queue_name=queue_name,
            info=info,
            problem=problem,
            error=error,
            token=request.POST.get("token") or new_token(),
            post_url=reverse("admin:pipelines_pipeline_dlq_search_delete", args=[pk]),
        )

    def edit(self, request, pk: int, message_id: str):
        """Edit & resend one message (redrive_dlq and view_message_bodies). GET: a button; POST
        `load`: find the message and show its body; POST `send`: find it again, send the edited copy
        to the source queue, delete the original once sent."""
        pipeline = self._pipeline(request, pk)
        if not _may_edit(request, pipeline):
            raise PermissionDenied
        context = {"message_id": message_id, "loaded": False, "body": "", "was_json": False, "original": None}
        if request.method == "POST" and "send" in request.POST:
            done = self._send_edit(request, pipeline, message_id, request.POST.get("body", ""))
            if done:
                return redirect("admin:pipelines_pipeline_dlq", pk)
            context.update(loaded=True, body=request.POST.get("body", ""), was_json=request.POST.get("was_json") == "1")
        elif request.method == "POST":
            context.update(self._load(request, pipeline, message_id))
        return self._render(
            request, "edit.html", pipeline, f"Edit & resend a message of {pipeline.name}", marker=edit.MARKER, **context
        )

    def _find(self, request, pipeline: Pipeline, message_id: str) -> edit.Found | None:
        try:
            found = edit.find(pipeline, message_id, settings.DLQ_SEARCH_MAX)
        except RedriveError as exc:
            messages.error(request, str(exc))
            return None
        if found.error:
            messages.error(request, found.error)
        elif found.message is None:
            messages.error(
                request,
                f"Message {message_id} was not found among the {found.examined} message(s) examined: it left the "
                "DLQ, another reader holds it, or the DLQ holds more than a search examines.",
            )
        return found

    def _load(self, request, pipeline: Pipeline, message_id: str) -> dict:
        """Receive the message to show it (released at once), audited as a peek."""
        found = self._find(request, pipeline, message_id)
        if found is not None and found.message is not None:
            edit.let_go(pipeline, found.message)
        AuditEntry.record(
            AuditAction.DLQ_PEEK,
            request.user,
            pipeline,
            remote_addr=request.META.get("REMOTE_ADDR"),
            queue_url=pipeline.dlq_url,
            purpose="edit & resend",
            message_ids=[message_id] if found and found.message else [],
            received=found.examined if found else 0,
            bodies_shown=bool(found and found.message),
            error=found.error if found else "",
        )
        if found is None or found.message is None:
            return {}
        original = peek.peeked(found.message, pipeline.request_id_attribute)
        attributes = [{"name": n, "type": t, "value": v} for n, t, v in original.attributes]
        return {
            "loaded": True,
            "original": original,
            "attributes": attributes,
            "too_many": len([a for a in attributes if a["name"] != edit.MARKER]) >= edit.MAX_ATTRIBUTES,
            "body": edit.editable_body(original.body),
            "was_json": edit.json_value(original.body) is not None,
        }

    def _send_edit(self, request, pipeline: Pipeline, message_id: str, body: str) -> bool:
        """Find the message again and resend it edited; audited with the body's diff. True when sent."""
        found = self._find(request, pipeline, message_id)
        if found is None or found.message is None:
            return False
        marker = edit.marker_text(request.user.get_username(), clock.now(), message_id)
        audit = {"queue_url": pipeline.dlq_url, "destination_url": pipeline.queue_url, "message_id": message_id}
        try:
            outcome = edit.resend(pipeline, found.message, body, marker)
        except RedriveError as exc:  # refused before anything was sent
            outcome = edit.Outcome(False, False, str(exc))
        AuditEntry.record(
            AuditAction.DLQ_EDIT_RESEND,
            request.user,
            pipeline,
            remote_addr=request.META.get("REMOTE_ADDR"),
            **audit,
            sent=outcome.sent,
            deleted=outcome.deleted,
            new_message_id=outcome.new_id,
            marker=marker,
            diff=outcome.diff,
            outcome=outcome.text,
        )
        if not outcome.sent:
            messages.error(request, outcome.text)
            return False
        (messages.success if outcome.deleted else messages.warning)(request, outcome.text)
        return True
