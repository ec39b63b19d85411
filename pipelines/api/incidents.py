"""/api/v1/incidents/: the list (by status and pipeline), one incident, and its two transitions, the
same compare-and-set functions the incident strip's buttons call (409 when someone got there first)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines import access
from pipelines.alerting import incidents as transitions
from pipelines.api.base import (
    Pages,
    StrictSerializer,
    acting,
    errors,
    require,
    require_any,
    visible,
)
from pipelines.api.errors import Conflict
from pipelines.models import Incident, IncidentStatus


class PipelineRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class IncidentSerializer(serializers.ModelSerializer):
    pipeline = PipelineRefSerializer()

    class Meta:
        model = Incident
        fields = (
            "id",
            "pipeline",
            "rule",
            "severity",
            "peak_severity",
            "status",
            "summary",
            "value",
            "threshold",
            "opened_at",
            "last_seen_at",
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
            "resolved_by",
        )


class IncidentFilterSerializer(StrictSerializer):
    status = serializers.ChoiceField(
        required=False, choices=[*IncidentStatus.values, "unresolved"], help_text="unresolved: open or acknowledged."
    )
    pipeline = serializers.IntegerField(required=False, help_text="A pipeline id.")
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=Pages.max_page_size)


class NoBodySerializer(StrictSerializer):
    """An act that takes no options: an empty JSON object, or no body."""


def _incidents(request):
    return visible(request, Incident.objects.select_related("pipeline"), "pipeline__")


class IncidentList(generics.ListAPIView):
    serializer_class = IncidentSerializer
    pagination_class = Pages

    def get_queryset(self):
        require_any(self.request, access.VIEW)
        params = IncidentFilterSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        f = params.validated_data
        qs = _incidents(self.request).order_by("-opened_at", "-pk")
        if f.get("status") == "unresolved":
            qs = qs.exclude(status=IncidentStatus.RESOLVED)
        elif f.get("status"):
            qs = qs.filter(status=f["status"])
        if "pipeline" in f:
            qs = qs.filter(pipeline_id=f["pipeline"])
        return qs

    @extend_schema(
        operation_id="incidents_list",
        summary="List incidents",
        description="Newest first; only those of pipelines the user may view.",
        parameters=[IncidentFilterSerializer],
        responses={200: IncidentSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class IncidentDetail(APIView):
    @extend_schema(
        operation_id="incidents_retrieve", summary="One incident", responses={200: IncidentSerializer, **errors(404)}
    )
    def get(self, request, pk: int):
        incident = get_object_or_404(_incidents(request), pk=pk)
        require(request, access.VIEW, incident.pipeline)
        return Response(IncidentSerializer(incident).data)


class IncidentTransition(APIView):
    """POST acknowledge (open → acknowledged) or resolve (open or acknowledged → resolved)."""

    verb = ""

    def post(self, request, pk: int):
        NoBodySerializer(data=request.data or {}).is_valid(raise_exception=True)
        incident = get_object_or_404(_incidents(request), pk=pk)
        require(request, access.ACKNOWLEDGE, incident.pipeline)
        act = transitions.acknowledge if self.verb == "acknowledge" else transitions.resolve
        if not act(incident, by=request.user.get_username(), user=request.user, **acting(request)):
            incident.refresh_from_db()
            who = incident.resolved_by or incident.acknowledged_by
            raise Conflict(
                f"Incident #{incident.pk} is {incident.get_status_display().lower()}"
                f"{f' (by {who})' if who else ''}: it cannot be {self.verb}d now."
            )
        incident.refresh_from_db()
        return Response(IncidentSerializer(incident).data)


def _transition(verb: str, words: str):
    @extend_schema(
        operation_id=f"incidents_{verb}",
        summary=words,
        description="Needs the acknowledge capability on the incident's pipeline (token scope `acknowledge`). "
        "409 when the incident is not in a state this applies to.",
        request=NoBodySerializer,
        responses={200: IncidentSerializer, **errors(400, 404, 409)},
    )
    def post(self, request, pk: int):
        return IncidentTransition.post(self, request, pk)

    return type(f"Incident{verb.title()}", (IncidentTransition,), {"verb": verb, "post": post})


IncidentAcknowledge = _transition("acknowledge", "Acknowledge an open incident")
IncidentResolve = _transition("resolve", "Resolve an open or acknowledged incident")
