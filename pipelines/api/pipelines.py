"""/api/v1/pipelines/: the list (health now, backlog, ages, DLQ depth, time to loss; filtered like the
overview), one pipeline, registering one by its queue URL (discovery runs, as in the admin), and its
history series (the pipeline page's chart data)."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.forms import modelform_factory
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from pipelines import access, clock
from pipelines.api.base import (
    Pages,
    StrictSerializer,
    acting,
    errors,
    pipeline_for,
    require_any,
    token_allows,
    visible,
)
from pipelines.api.errors import Conflict
from pipelines.models import ApiKind, AuditAction, AuditEntry, Health, Pipeline, Severity
from pipelines.registry.discovery import store_discovery
from pipelines.registry.forms import PipelineForm
from pipelines.registry.tags import TagError, parse_tag
from pipelines.ui import charts
from pipelines.ui.overview_query import SCOPES, Selection, filtered, in_scope, worst_first

REGISTER = "pipelines.add_pipeline"
#: The longest history one request reads (the pipeline page's longest named range).
MAX_HISTORY_HOURS = 30 * 24
#: What registering accepts besides the account and the queue URL; everything else is discovered.
REGISTER_FIELDS = (
    "name",
    "account",
    "queue_url",
    "group",
    "tags",
    "api_kind",
    "api_id",
    "api_stage",
    "api_log_group",
    "consumer_log_group",
    "request_id_attribute",
)
RegisterForm = modelform_factory(Pipeline, form=PipelineForm, fields=REGISTER_FIELDS)


class AccountRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class FindingSerializer(serializers.Serializer):
    severity = serializers.ChoiceField(choices=Severity.choices)
    summary = serializers.CharField()
    rule = serializers.CharField()


class PipelineSerializer(serializers.ModelSerializer):
    """A pipeline as the overview lists it: health as of now and what the last sync read."""

    url = serializers.SerializerMethodField()
    account = AccountRefSerializer()
    health = serializers.ChoiceField(choices=Health.choices, source="now_health", help_text="As of now.")
    findings = serializers.SerializerMethodField()
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True))
    time_to_loss = serializers.FloatField(
        allow_null=True, help_text="Seconds until the oldest message reaches the retention period, at the trend."
    )

    class Meta:
        model = Pipeline
        fields = (
            "id",
            "url",
            "name",
            "account",
            "group",
            "tags",
            "enabled",
            "health",
            "findings",
            "backlog",
            "in_flight",
            "delayed",
            "oldest_age",
            "oldest_age_sla",
            "backlog_threshold",
            "dlq_depth",
            "drain_rate",
            "time_to_loss",
            "time_to_loss_known",
            "retention_period",
            "queue_url",
            "dlq_url",
            "function_name",
            "last_sync_at",
            "last_error",
        )

    def get_url(self, obj) -> str:
        return reverse("api:pipeline", args=[obj.pk], request=self.context.get("request"))

    @extend_schema_field(FindingSerializer(many=True))
    def get_findings(self, obj) -> list[dict]:
        return [{"severity": str(sev), "summary": summary, "rule": rule} for sev, summary, rule in obj.findings()]


class PipelineDetailSerializer(PipelineSerializer):
    """One pipeline, with what discovery read of its queue, DLQ, consumer and API."""

    class Meta(PipelineSerializer.Meta):
        fields = (
            *PipelineSerializer.Meta.fields,
            "queue_arn",
            "is_fifo",
            "visibility_timeout",
            "dlq_arn",
            "max_receive_count",
            "dlq_retention_period",
            "dlq_threshold",
            "function_timeout",
            "reserved_concurrency",
            "batch_size",
            "maximum_concurrency",
            "report_batch_item_failures",
            "api_kind",
            "api_id",
            "api_stage",
            "api_name",
            "request_id_attribute",
            "discovered_at",
        )


class RegisteredSerializer(PipelineDetailSerializer):
    warnings = serializers.ListField(
        child=serializers.CharField(), source="discovery_warnings", help_text="What discovery found worth fixing."
    )

    class Meta(PipelineDetailSerializer.Meta):
        fields = (*PipelineDetailSerializer.Meta.fields, "warnings")


class PipelineFilterSerializer(StrictSerializer):
    """The list's filters: the overview's, as query parameters."""

    account = serializers.IntegerField(required=False, help_text="An account id.")
    group = serializers.CharField(required=False, max_length=100, help_text='A group; "-" for pipelines with none.')
    tag = serializers.CharField(required=False, max_length=200, help_text="key or key=value.")
    health = serializers.ChoiceField(
        required=False, choices=[*SCOPES, *Health.values], help_text="A health, or problems (critical, warning, stale)."
    )
    q = serializers.CharField(required=False, max_length=200, help_text="Part of the name or queue name.")
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=Pages.max_page_size)

    def validate_tag(self, value: str) -> str:
        try:
            parse_tag(value)
        except TagError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class RegisterSerializer(StrictSerializer):
    """Registering a pipeline: its queue URL and account; the rest is read from AWS."""

    name = serializers.CharField(max_length=100)
    account = serializers.IntegerField(help_text="The AWS account's id in opsboard.")
    queue_url = serializers.CharField(max_length=1024)
    group = serializers.CharField(required=False, allow_blank=True, max_length=100)
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    api_kind = serializers.ChoiceField(choices=ApiKind.choices, required=False, allow_blank=True)
    api_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    api_stage = serializers.CharField(required=False, allow_blank=True, max_length=128)
    api_log_group = serializers.CharField(required=False, allow_blank=True, max_length=512)
    consumer_log_group = serializers.CharField(required=False, allow_blank=True, max_length=512)
    request_id_attribute = serializers.CharField(required=False, max_length=256, default="requestId")


class HistoryQuerySerializer(StrictSerializer):
    hours = serializers.IntegerField(
        required=False, default=24, min_value=1, max_value=MAX_HISTORY_HOURS, help_text="How far back (default 24)."
    )


class HistorySerializer(serializers.Serializer):
    """The pipeline page's series: one list per metric, aligned with `t`; null is a gap."""

    pipeline = serializers.CharField()
    range = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bucket_seconds = serializers.IntegerField()
    source = serializers.CharField()
    t = serializers.ListField(child=serializers.DateTimeField())
    series = serializers.DictField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)))
    lines = serializers.DictField(child=serializers.IntegerField(allow_null=True))


def _query(request, serializer_class):
    params = serializer_class(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    return params.validated_data


def with_health(qs):
    return filtered(Selection(), clock.now(), qs)


class PipelineList(generics.ListAPIView):
    serializer_class = PipelineSerializer
    pagination_class = Pages

    def get_queryset(self):
        require_any(self.request, access.VIEW)
        f = _query(self.request, PipelineFilterSerializer)
        sel = Selection(
            q=f.get("q", ""),
            account=str(f.get("account", "")),
            group=f.get("group", ""),
            tag=f.get("tag", ""),
            health=f.get("health", ""),
        )
        qs = filtered(sel, clock.now(), visible(self.request, Pipeline.objects.select_related("account")))
        return worst_first(in_scope(qs, sel.health or "all"))

    @extend_schema(
        operation_id="pipelines_list",
        summary="List pipelines",
        description="Worst health first, then the largest backlog. Needs the view permission on each pipeline listed.",
        parameters=[PipelineFilterSerializer],
        responses={200: PipelineSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="pipelines_register",
        summary="Register a pipeline by its queue URL",
        description="Discovery reads the queue, its DLQ, its consumer and the API from AWS, as the admin's add form "
        "does. Needs the global permission to add pipelines and, with a token, the `register` scope.",
        request=RegisterSerializer,
        responses={201: RegisteredSerializer, **errors(400, 409)},
    )
    def post(self, request, *args, **kwargs):
        if not (token_allows(request, REGISTER) and access.is_global(request.user, REGISTER)):
            raise exceptions.PermissionDenied("Registering pipelines needs the global permission to add pipelines.")
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        form = RegisterForm(data={**data.validated_data})
        if not form.is_valid():
            raise exceptions.ValidationError(_form_errors(form))
        pipeline = form.save(commit=False)
        store_discovery(pipeline, form.discovery)
        try:
            with transaction.atomic():
                pipeline.save()
                AuditEntry.record(
                    AuditAction.PIPELINE_REGISTER,
                    request.user,
                    pipeline,
                    queue_url=pipeline.queue_url,
                    account=pipeline.account.name,
                    **acting(request),
                )
        except IntegrityError:
            raise Conflict("This queue or name was registered by someone else meanwhile.") from None
        fresh = with_health(Pipeline.objects.select_related("account")).get(pk=pipeline.pk)
        fresh.discovery_warnings = form.discovery.warnings
        return Response(RegisteredSerializer(fresh, context={"request": request}).data, status=status.HTTP_201_CREATED)


def _form_errors(form) -> dict:
    """A Django form's errors as a validation error's detail (its non-field errors as the message)."""
    return {name if name != "__all__" else "non_field_errors": list(msgs) for name, msgs in form.errors.items()}


class PipelineDetail(APIView):
    @extend_schema(
        operation_id="pipelines_retrieve",
        summary="One pipeline",
        responses={200: PipelineDetailSerializer, **errors(404)},
    )
    def get(self, request, pk: int):
        pipeline_for(request, pk)
        pipeline = with_health(Pipeline.objects.select_related("account")).get(pk=pk)
        return Response(PipelineDetailSerializer(pipeline, context={"request": request}).data)


class PipelineHistory(APIView):
    @extend_schema(
        operation_id="pipelines_history",
        summary="History series of one pipeline",
        description=f"Downsampled to at most {charts.MAX_POINTS} points per series; minute rows for short ranges, "
        f"hourly rollups beyond two days. At most {MAX_HISTORY_HOURS} hours.",
        parameters=[HistoryQuerySerializer],
        responses={200: HistorySerializer, **errors(400, 404)},
    )
    def get(self, request, pk: int):
        pipeline = pipeline_for(request, pk)
        hours = _query(request, HistoryQuerySerializer)["hours"]
        end = clock.now()
        return Response(charts.series(pipeline, end - timedelta(hours=hours), end, f"{hours}h"))
