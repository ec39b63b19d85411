"""/api/v1/traces/: look up one request by its id (over one pipeline, or every enabled pipeline the user
may trace) with the trace page's function, and read a stored lookup back."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from pipelines import access
from pipelines.api.base import StrictSerializer, acting, errors, pipeline_for, require_any, token_allows
from pipelines.api.incidents import PipelineRefSerializer
from pipelines.models import TraceLookup, TraceVerdict
from pipelines.trace import lookup
from pipelines.trace.views import MAX_HOURS, TraceForm, readable, run_lookup


class TraceRequestSerializer(StrictSerializer):
    id = serializers.CharField(
        max_length=1024, help_text="An API Gateway request id, an SQS message id or a correlation id."
    )
    pipeline = serializers.IntegerField(
        required=False, allow_null=True, help_text="Empty: every pipeline you may trace."
    )
    hours = serializers.IntegerField(required=False, default=lookup.DEFAULT_HOURS, min_value=1, max_value=MAX_HOURS)


class TraceSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    pipeline = PipelineRefSerializer(allow_null=True)
    verdict = serializers.ChoiceField(choices=TraceVerdict.choices)
    headline = serializers.SerializerMethodField()
    result = serializers.DictField(source="summary", help_text="The timeline, sources, DLQs searched and calls made.")

    class Meta:
        model = TraceLookup
        fields = (
            "id",
            "url",
            "ident",
            "pipeline",
            "username",
            "created_at",
            "window_start",
            "window_end",
            "verdict",
            "headline",
            "calls_made",
            "result",
        )

    def get_url(self, obj) -> str:
        return reverse("api:trace", args=[obj.pk], request=self.context.get("request"))

    def get_headline(self, obj) -> str:
        return str((obj.summary or {}).get("headline", ""))


class TraceList(APIView):
    @extend_schema(
        operation_id="traces_create",
        summary="Look up a request",
        description="Searches the API access log, the consumer's log and (with the peek capability; token scope "
        "`peek`) the DLQs, within the window. Needs the trace capability (scope `trace`). Audited.",
        request=TraceRequestSerializer,
        responses={201: TraceSerializer, **errors(400, 404)},
    )
    def post(self, request):
        data = TraceRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        pipeline = pipeline_for(request, d["pipeline"], access.TRACE) if d.get("pipeline") else None
        if pipeline is None:
            require_any(request, access.TRACE)
        form = TraceForm({"id": d["id"], "pipeline": pipeline.pk if pipeline else "", "hours": d["hours"]})
        if not form.is_valid():
            raise exceptions.ValidationError({k: list(v) for k, v in form.errors.items()})
        entry = run_lookup(
            request.user,
            form.cleaned_data["id"],
            pipeline,
            d["hours"],
            may_scan=token_allows(request, access.PEEK),
            **acting(request),
        )
        return Response(TraceSerializer(entry, context={"request": request}).data, status=status.HTTP_201_CREATED)


class TraceDetail(APIView):
    @extend_schema(
        operation_id="traces_retrieve",
        summary="A stored lookup",
        description="Your own lookups; everyone's with the global permission to view trace lookups.",
        responses={200: TraceSerializer, **errors(404)},
    )
    def get(self, request, pk: int):
        entry = TraceLookup.objects.select_related("pipeline").filter(pk=pk).first()
        if entry is None or not readable(request, entry):
            raise exceptions.NotFound()
        if not token_allows(request, access.TRACE):
            raise exceptions.PermissionDenied()
        return Response(TraceSerializer(entry, context={"request": request}).data)
