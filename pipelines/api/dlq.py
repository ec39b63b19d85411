"""/api/v1/pipelines/{id}/dlq/… and /api/v1/dlq-tasks/…: peek (a receive: POST, audited; bodies only
for those who may read them), start a redrive (the redrive form's checks and the redrive service:
guards, dry run, rate, audit; 409 while another task is active on the DLQ), delete chosen messages and
purge (the delete capability and the queue name typed, as on the pages), a task's progress, cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from pipelines import access
from pipelines.api.base import StrictSerializer, acting, allowed, errors, get_visible, pipeline_for, require
from pipelines.api.errors import Conflict
from pipelines.api.incidents import NoBodySerializer, PipelineRefSerializer
from pipelines.dlq import peek, progress, queues, service
from pipelines.dlq.forms import RedriveForm, new_token
from pipelines.dlq.queues import RedriveError
from pipelines.models import DlqOperation, FilterKind, RedriveTask

#: The filters the API takes (a saved search is the search page's; it is not offered here).
API_FILTERS = [k.value for k in FilterKind if k != FilterKind.SEARCH]


class PeekRequestSerializer(StrictSerializer):
    count = serializers.IntegerField(required=False, default=10, min_value=1, max_value=peek.PEEK_MAX)


class AttributeSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    value = serializers.CharField(allow_null=True, help_text="Null unless bodies may be read (or the request-id one).")
    size = serializers.CharField(help_text="The value's size in words, when the value is hidden.")


class PeekedMessageSerializer(serializers.Serializer):
    id = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)
    receive_count = serializers.IntegerField(help_text="Including this peek's receive.")
    group_id = serializers.CharField()
    request_id = serializers.CharField(allow_null=True)
    size = serializers.IntegerField(help_text="The body's size in bytes.")
    attributes = AttributeSerializer(many=True)
    body = serializers.CharField(allow_null=True, help_text="Only with the permission to read bodies.")
    preview = serializers.CharField(allow_null=True, help_text="The body's kind and size, when the body is hidden.")


class PeekSerializer(serializers.Serializer):
    pipeline = PipelineRefSerializer()
    queue_url = serializers.CharField()
    examined = serializers.IntegerField()
    depth = serializers.IntegerField(allow_null=True)
    complete = serializers.BooleanField()
    stopped = serializers.CharField()
    bodies_shown = serializers.BooleanField()
    messages = PeekedMessageSerializer(many=True)


class RedriveRequestSerializer(StrictSerializer):
    """The redrive page's options."""

    destination_url = serializers.CharField(
        required=False, allow_blank=True, max_length=1024, help_text="Empty: back to the source queue."
    )
    max_messages = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=service.MAX_MESSAGES
    )
    rate = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=service.MAX_RATE, help_text="Messages per second."
    )
    dry_run = serializers.BooleanField(required=False, default=False, help_text="Sample and report; move nothing.")
    filter_kind = serializers.ChoiceField(required=False, allow_blank=True, choices=API_FILTERS)
    filter_attribute = serializers.CharField(required=False, allow_blank=True, max_length=256)
    filter_value = serializers.CharField(required=False, allow_blank=True, max_length=4096)
    ids = serializers.ListField(child=serializers.CharField(max_length=256), required=False, max_length=10_000)
    token = serializers.CharField(
        required=False,
        max_length=64,
        help_text="An idempotency key: a second request with the same one returns the first task (200).",
    )


class ProgressSerializer(serializers.Serializer):
    status = serializers.CharField()
    status_label = serializers.CharField()
    active = serializers.BooleanField()
    engine = serializers.CharField()
    dry_run = serializers.BooleanField()
    matched = serializers.IntegerField()
    moved = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    examined = serializers.IntegerField()
    total = serializers.IntegerField(allow_null=True)
    percent = serializers.IntegerField()
    summary = serializers.CharField()
    error_count = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.CharField(allow_blank=True))
    started_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class TaskSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    pipeline = PipelineRefSerializer(allow_null=True)
    progress = serializers.SerializerMethodField()
    sample = serializers.SerializerMethodField()

    class Meta:
        model = RedriveTask
        fields = (
            "id",
            "url",
            "pipeline",
            "operation",
            "status",
            "engine",
            "source_url",
            "destination_url",
            "dry_run",
            "max_messages",
            "rate",
            "filter_kind",
            "filter_attribute",
            "depth_at_start",
            "requested_by_name",
            "cancelled_by_name",
            "created_at",
            "progress",
            "sample",
        )

    def get_url(self, obj) -> str:
        return reverse("api:dlq-task", args=[obj.pk], request=self.context.get("request"))

    @extend_schema_field(
        serializers.ListField(
            child=serializers.DictField(),
            help_text="A dry run's sampled messages (ids, no bodies); empty without the peek capability.",
        )
    )
    def get_sample(self, obj) -> list:
        request = self.context.get("request")
        return obj.sample if request is not None and allowed(request, access.PEEK, obj.pipeline) else []

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj) -> dict:
        return progress.progress(obj)


def _message(m: peek.PeekedMessage, bodies: bool, request_id_attribute: str) -> dict:
    """A peeked message as the API shows it: the DLQ page's masking for those who may not read bodies."""
    attributes = (
        [{"name": n, "type": t, "value": v, "size": f"{m.attribute_sizes.get(n, 0)} bytes"} for n, t, v in m.attributes]
        if bodies
        else m.masked_attributes(request_id_attribute)
    )
    return {
        "id": m.id,
        "sent_at": m.sent_at,
        "receive_count": m.receive_count,
        "group_id": m.group_id,
        "request_id": m.request_id,
        "size": m.size,
        "attributes": attributes,
        "body": m.body if bodies else None,
        "preview": None if bodies else m.masked_preview(),
    }


class Peek(APIView):
    @extend_schema(
        operation_id="dlq_peek",
        summary="Peek at DLQ messages",
        description="A receive: each message's receive count goes up by one, so this is a POST, needs the peek "
        "capability (token scope `peek`) and is audited. Bodies and attribute values only with the bodies "
        "capability (scope `bodies`); otherwise `preview` says the body's kind and size.",
        request=PeekRequestSerializer,
        responses={200: PeekSerializer, **errors(400, 404, 409)},
    )
    def post(self, request, pk: int):
        pipeline = pipeline_for(request, pk, access.PEEK)
        data = PeekRequestSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        if not pipeline.dlq_url:
            raise Conflict(f"{pipeline.name} has no dead-letter queue.")
        bodies = allowed(request, access.BODIES, pipeline)
        result = peek.audited_peek(
            pipeline, data.validated_data["count"], request.user, bodies=bodies, **acting(request)
        )
        if result.error:
            raise Conflict(result.error)
        return Response(
            PeekSerializer(
                {
                    "pipeline": pipeline,
                    "queue_url": pipeline.dlq_url,
                    "examined": result.examined,
                    "depth": result.depth,
                    "complete": result.complete,
                    "stopped": result.stopped,
                    "bodies_shown": bodies,
                    "messages": [_message(m, bodies, pipeline.request_id_attribute) for m in result.messages],
                }
            ).data
        )


def _form_data(d: dict) -> dict:
    """The API's redrive options as the redrive form's fields."""
    return {
        "destination": "other" if (d.get("destination_url") or "").strip() else "source",
        "destination_url": d.get("destination_url") or "",
        "max_messages": d.get("max_messages") or "",
        "rate": d.get("rate") or "",
        "filter_kind": d.get("filter_kind") or "",
        "filter_attribute": d.get("filter_attribute") or "",
        "filter_value": d.get("filter_value") or "",
        "ids": "\n".join(d.get("ids") or []),
        "dry_run": "on" if d.get("dry_run") else "",
        "token": d.get("token") or new_token(),
    }


#: The form's field names that differ from the API's.
_FORM_TO_API = {"destination": "destination_url", "search": "filter_kind"}


class Redrive(APIView):
    @extend_schema(
        operation_id="dlq_redrive",
        summary="Start a redrive (or its dry run)",
        description="The redrive page's checks (queues exist, types match, the DLQ is not empty, content filters "
        "need the bodies capability) and the same service: recorded, audited, handed to a worker. Needs the redrive "
        "capability (token scope `redrive`). 409 while another task is active on this DLQ. 201 with the new task; "
        "200 with the earlier task when `token` was used already.",
        request=RedriveRequestSerializer,
        responses={201: TaskSerializer, 200: TaskSerializer, **errors(400, 404, 409)},
    )
    def post(self, request, pk: int):
        pipeline = pipeline_for(request, pk, access.REDRIVE)
        data = RedriveRequestSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        if not pipeline.dlq_url:
            raise Conflict(f"{pipeline.name} has no dead-letter queue.")
        form = RedriveForm(
            _form_data(data.validated_data),
            pipeline=pipeline,
            can_read_bodies=allowed(request, access.BODIES, pipeline),
        )
        if not form.is_valid():
            fields = {_FORM_TO_API.get(k, k): list(v) for k, v in form.errors.items() if k != "__all__"}
            raise exceptions.ValidationError({**fields, "non_field_errors": list(form.non_field_errors())})
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
                **acting(request),
            )
        except RedriveError as exc:
            raise _refused(exc) from None
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(TaskSerializer(task, context={"request": request}).data, status=code)


class DeleteRequestSerializer(StrictSerializer):
    ids = serializers.ListField(
        child=serializers.CharField(max_length=256),
        min_length=1,
        max_length=10_000,
        help_text="The message ids to delete (from a peek); every other message stays.",
    )
    confirm = serializers.CharField(
        max_length=80, help_text="The DLQ's queue name, typed: a deletion cannot be undone."
    )
    token = serializers.CharField(
        required=False,
        max_length=64,
        help_text="An idempotency key: a second request with the same one returns the first task (200).",
    )


class PurgeRequestSerializer(StrictSerializer):
    confirm = serializers.CharField(max_length=80, help_text="The DLQ's queue name, typed: a purge cannot be undone.")
    token = serializers.CharField(
        required=False,
        max_length=64,
        help_text="An idempotency key: a second request with the same one returns the first task (200).",
    )


def _destructive(request, pk: int, serializer_class) -> tuple:
    """The pipeline and the checked body of a delete or a purge: the delete capability, a DLQ, and its
    queue name typed in `confirm` (else 400, and nothing is touched)."""
    pipeline = pipeline_for(request, pk, access.DELETE)
    data = serializer_class(data=request.data or {})
    data.is_valid(raise_exception=True)
    if not pipeline.dlq_url:
        raise Conflict(f"{pipeline.name} has no dead-letter queue.")
    queue_name = queues.queue_name(pipeline.dlq_url)
    if data.validated_data["confirm"].strip() != queue_name:
        raise exceptions.ValidationError(
            {"confirm": [f"Type the DLQ's queue name, {queue_name}, exactly to confirm. Nothing was changed."]}
        )
    return pipeline, data.validated_data


def _refused(exc: RedriveError):
    """A service refusal: 409 when a task stands in the way (or failed), else 400."""
    if exc.task is not None:
        return Conflict(str(exc))
    return exceptions.ValidationError({"non_field_errors": [str(exc)]})


class Delete(APIView):
    @extend_schema(
        operation_id="dlq_delete",
        summary="Delete chosen messages from the DLQ",
        description="A worker scans the DLQ and deletes the messages with these ids; the others stay. Needs the "
        "delete capability (token scope `delete`) and the queue name typed in `confirm`; audited. 409 while another "
        "task is active on this DLQ. 201 with the new task; 200 with the earlier task when `token` was used already.",
        request=DeleteRequestSerializer,
        responses={201: TaskSerializer, 200: TaskSerializer, **errors(400, 404, 409)},
    )
    def post(self, request, pk: int):
        pipeline, d = _destructive(request, pk, DeleteRequestSerializer)
        try:
            task, created = service.start_delete(
                pipeline, request.user, list(dict.fromkeys(d["ids"])), d.get("token") or new_token(), **acting(request)
            )
        except RedriveError as exc:
            raise _refused(exc) from None
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(TaskSerializer(task, context={"request": request}).data, status=code)


class Purge(APIView):
    @extend_schema(
        operation_id="dlq_purge",
        summary="Purge the DLQ",
        description="One PurgeQueue call: every message in the DLQ is deleted (SQS allows one purge per queue per "
        "60 s). Needs the delete capability (token scope `delete`) and the queue name typed in `confirm`; audited "
        "when asked for. 201 with the finished task; 409 when SQS refuses or another task is active on this DLQ.",
        request=PurgeRequestSerializer,
        responses={201: TaskSerializer, 200: TaskSerializer, **errors(400, 404, 409)},
    )
    def post(self, request, pk: int):
        pipeline, d = _destructive(request, pk, PurgeRequestSerializer)
        token = d.get("token") or new_token()
        try:
            earlier = service.already_requested(token, request.user, pipeline, DlqOperation.PURGE)
            task = service.purge(pipeline, request.user, token, **acting(request))
        except RedriveError as exc:
            raise _refused(exc) from None
        code = status.HTTP_200_OK if earlier is not None else status.HTTP_201_CREATED
        return Response(TaskSerializer(task, context={"request": request}).data, status=code)


def _task(request, pk: int) -> RedriveTask:
    qs = RedriveTask.objects.select_related("pipeline")
    return get_visible(request, qs, "pipeline__", pk=pk)


class TaskDetail(APIView):
    @extend_schema(
        operation_id="dlq_tasks_retrieve",
        summary="A DLQ task and its progress",
        responses={200: TaskSerializer, **errors(404)},
    )
    def get(self, request, pk: int):
        task = _task(request, pk)
        require(request, access.VIEW, task.pipeline)
        return Response(TaskSerializer(task, context={"request": request}).data)


class TaskCancel(APIView):
    @extend_schema(
        operation_id="dlq_tasks_cancel",
        summary="Cancel a DLQ task",
        description="It stops after the current batch; messages not yet moved stay in the DLQ. Needs the capability "
        "that starts such a task (redrive, or delete for a deletion). 409 when the task had already finished.",
        request=NoBodySerializer,
        responses={200: TaskSerializer, **errors(400, 404, 409)},
    )
    def post(self, request, pk: int):
        NoBodySerializer(data=request.data or {}).is_valid(raise_exception=True)
        task = _task(request, pk)
        require(request, service.cancel_perm(task), task.pipeline)
        if not service.cancel(task, request.user, **acting(request)):
            task.refresh_from_db()
            raise Conflict(f"Task #{task.pk} is already {task.get_status_display().lower()}.")
        task.refresh_from_db()
        return Response(TaskSerializer(task, context={"request": request}).data)
