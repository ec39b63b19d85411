"""The API's URL map (namespace "api"), included at /api/ by the project's URLconf. Every path below
/api/ that names no endpoint is a JSON 404."""

from __future__ import annotations

from django.urls import path, re_path

from pipelines.api import dlq, docs, incidents, pipelines, silences, traces
from pipelines.api.errors import not_found

app_name = "api"

urlpatterns = [
    path("v1/schema/", docs.SchemaView.as_view(), name="schema"),
    path("v1/docs/", docs.DocsView.as_view(), name="docs"),
    path("v1/pipelines/", pipelines.PipelineList.as_view(), name="pipelines"),
    path("v1/pipelines/<int:pk>/", pipelines.PipelineDetail.as_view(), name="pipeline"),
    path("v1/pipelines/<int:pk>/history/", pipelines.PipelineHistory.as_view(), name="pipeline-history"),
    path("v1/pipelines/<int:pk>/dlq/peek/", dlq.Peek.as_view(), name="dlq-peek"),
    path("v1/pipelines/<int:pk>/dlq/redrive/", dlq.Redrive.as_view(), name="dlq-redrive"),
    path("v1/pipelines/<int:pk>/dlq/delete/", dlq.Delete.as_view(), name="dlq-delete"),
    path("v1/pipelines/<int:pk>/dlq/purge/", dlq.Purge.as_view(), name="dlq-purge"),
    path("v1/dlq-tasks/<int:pk>/", dlq.TaskDetail.as_view(), name="dlq-task"),
    path("v1/dlq-tasks/<int:pk>/cancel/", dlq.TaskCancel.as_view(), name="dlq-task-cancel"),
    path("v1/incidents/", incidents.IncidentList.as_view(), name="incidents"),
    path("v1/incidents/<int:pk>/", incidents.IncidentDetail.as_view(), name="incident"),
    path("v1/incidents/<int:pk>/acknowledge/", incidents.IncidentAcknowledge.as_view(), name="incident-acknowledge"),
    path("v1/incidents/<int:pk>/resolve/", incidents.IncidentResolve.as_view(), name="incident-resolve"),
    path("v1/traces/", traces.TraceList.as_view(), name="traces"),
    path("v1/traces/<int:pk>/", traces.TraceDetail.as_view(), name="trace"),
    path("v1/silences/", silences.SilenceList.as_view(), name="silences"),
    path("v1/silences/<int:pk>/end/", silences.SilenceEnd.as_view(), name="silence-end"),
    re_path(r"^.*$", not_found),
]
