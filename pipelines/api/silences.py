"""/api/v1/silences/: the list (by state and pipeline), adding one on a pipeline (the admin's form and
its checks), and ending one now (the model's compare-and-set; 409 when it had ended already)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines import access, clock
from pipelines.alerting.silence_forms import SilenceForm
from pipelines.api.base import (
    Pages,
    StrictSerializer,
    acting,
    errors,
    pipeline_for,
    require,
    require_any,
    visible,
)
from pipelines.api.errors import Conflict
from pipelines.api.incidents import NoBodySerializer, PipelineRefSerializer
from pipelines.models import AuditAction, AuditEntry, RuleKind, Silence, SilenceState

ADD = "pipelines.add_silence"
CHANGE = "pipelines.change_silence"


class SilenceSerializer(serializers.ModelSerializer):
    pipeline = PipelineRefSerializer(allow_null=True)
    state = serializers.SerializerMethodField()
    covers = serializers.CharField(source="matchers")

    class Meta:
        model = Silence
        fields = (
            "id",
            "pipeline",
            "account",
            "rule",
            "starts_at",
            "ends_at",
            "reason",
            "state",
            "covers",
            "created_by",
            "created_at",
        )

    def get_state(self, obj) -> SilenceState:
        return obj.state()


class SilenceFilterSerializer(StrictSerializer):
    state = serializers.ChoiceField(required=False, choices=SilenceState.choices)
    pipeline = serializers.IntegerField(required=False)
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=Pages.max_page_size)


class SilenceCreateSerializer(StrictSerializer):
    pipeline = serializers.IntegerField(help_text="The pipeline to silence (needs the acknowledge capability on it).")
    rule = serializers.ChoiceField(
        required=False, allow_blank=True, choices=RuleKind.choices, help_text="Empty: every rule."
    )
    starts_at = serializers.DateTimeField(required=False, help_text="Default: now.")
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=500)


def _silences(request):
    return visible(request, Silence.objects.select_related("pipeline", "account"), "pipeline__")


class SilenceList(generics.ListAPIView):
    serializer_class = SilenceSerializer
    pagination_class = Pages

    def get_queryset(self):
        require_any(self.request, access.VIEW)
        params = SilenceFilterSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        f, at = params.validated_data, clock.now()
        qs = _silences(self.request)
        if "pipeline" in f:
            qs = qs.filter(pipeline_id=f["pipeline"])
        state = f.get("state")
        if state == SilenceState.ACTIVE:
            qs = qs.filter(starts_at__lte=at, ends_at__gt=at)
        elif state == SilenceState.UPCOMING:
            qs = qs.filter(starts_at__gt=at)
        elif state == SilenceState.EXPIRED:
            qs = qs.filter(ends_at__lte=at)
        return qs

    @extend_schema(
        operation_id="silences_list",
        summary="List silences",
        parameters=[SilenceFilterSerializer],
        responses={200: SilenceSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="silences_create",
        summary="Silence a pipeline",
        description="Incidents still open, nobody is paged until `ends_at`. Needs the acknowledge capability on "
        "the pipeline (token scope `acknowledge`). Audited.",
        request=SilenceCreateSerializer,
        responses={201: SilenceSerializer, **errors(400, 404)},
    )
    def post(self, request, *args, **kwargs):
        data = SilenceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        pipeline = pipeline_for(request, d["pipeline"], ADD)
        form = SilenceForm(
            {
                "pipeline": pipeline.pk,
                "rule": d.get("rule", ""),
                "starts_at": d.get("starts_at") or clock.now(),
                "ends_at": d["ends_at"],
                "reason": d["reason"],
            }
        )
        if not form.is_valid():
            raise exceptions.ValidationError(
                {k if k != "__all__" else "non_field_errors": list(v) for k, v in form.errors.items()}
            )
        silence = form.save(commit=False)
        silence.created_by = request.user.get_username()
        silence.save()
        AuditEntry.record_object(
            AuditAction.OBJECT_ADD, request.user, silence, fields=sorted(form.changed_data), **acting(request)
        )
        return Response(SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)


class SilenceEnd(APIView):
    @extend_schema(
        operation_id="silences_end",
        summary="End a silence now",
        description="An upcoming one never starts. Needs the acknowledge capability on its pipeline. 409 when it "
        "had ended already.",
        request=NoBodySerializer,
        responses={200: SilenceSerializer, **errors(400, 404, 409)},
    )
    def post(self, request, pk: int):
        NoBodySerializer(data=request.data or {}).is_valid(raise_exception=True)
        silence = get_object_or_404(_silences(request), pk=pk)
        require(request, CHANGE, silence.pipeline)
        if not silence.expire():
            raise Conflict(f"Silence #{silence.pk} had already ended.")
        AuditEntry.record_object(
            AuditAction.OBJECT_CHANGE, request.user, silence, fields=["ends_at"], **acting(request)
        )
        return Response(SilenceSerializer(silence).data)
