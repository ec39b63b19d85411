"""The operator UI's URL map, in one place: the admin site's own pages, the pages under each
pipeline, and the endpoints at the site root.

The paths are part of the product: bookmarks and links in sent notifications point at them, so
they do not change when the code behind them moves.
"""

from __future__ import annotations

from django.urls import path

from pipelines.dlq.search_views import SearchViews
from pipelines.dlq.triage_views import TriageViews
from pipelines.dlq.views import DlqViews
from pipelines.sso import urls as sso_urls
from pipelines.trace.views import trace_page
from pipelines.ui import healthz, incidents, overview, pagerduty, pipeline_page, prometheus, slo, spend


def site_urls(site) -> list:
    """Pages on the admin site itself (admin/…)."""
    view = site.admin_view
    return [
        path("overview/rows/", view(overview.overview_rows), name="overview_rows"),
        path("overview/spenders/", view(overview.top_spenders), name="overview_spenders"),
        path("trace/", view(lambda request: trace_page(request, site)), name="trace"),
        path("incidents/strip/", view(incidents.strip), name="incident_strip"),
        path("incidents/<int:incident_id>/acknowledge/", view(incidents.acknowledge), name="incident_acknowledge"),
        path("incidents/<int:incident_id>/resolve/", view(incidents.resolve), name="incident_resolve"),
    ]


def pipeline_urls(model_admin) -> list:
    """Pages under the pipeline admin (admin/pipelines/pipeline/…)."""
    view = model_admin.admin_site.admin_view
    dlq = DlqViews(model_admin)
    search = SearchViews(model_admin)
    triage = TriageViews(model_admin)
    return [
        path(
            "<int:pipeline_id>/dashboard/",
            view(lambda request, pipeline_id: pipeline_page.pipeline_dashboard(request, pipeline_id, model_admin)),
            name="pipelines_pipeline_dashboard",
        ),
        path("<int:pipeline_id>/series.json", view(pipeline_page.series_json), name="pipelines_pipeline_series"),
        path(
            "<int:pipeline_id>/slo/",
            view(lambda request, pipeline_id: slo.slo_page(request, pipeline_id, model_admin)),
            name="pipelines_pipeline_slo",
        ),
        path("<int:pipeline_id>/spend.json", view(spend.spend_json), name="pipelines_pipeline_spend"),
        path("<int:pk>/dlq/", view(dlq.dlq), name="pipelines_pipeline_dlq"),
        path("<int:pk>/dlq/redrive/", view(dlq.redrive), name="pipelines_pipeline_dlq_redrive"),
        path("<int:pk>/dlq/delete/", view(dlq.delete), name="pipelines_pipeline_dlq_delete"),
        path("<int:pk>/dlq/purge/", view(dlq.purge), name="pipelines_pipeline_dlq_purge"),
        path("<int:pk>/dlq/search/", view(search.search), name="pipelines_pipeline_dlq_search"),
        path("<int:pk>/dlq/search/export/", view(search.export), name="pipelines_pipeline_dlq_search_export"),
        path("<int:pk>/dlq/search/delete/", view(search.delete_selection), name="pipelines_pipeline_dlq_search_delete"),
        path(
            "<int:pk>/dlq/messages/<str:message_id>/edit/",
            view(search.edit),
            name="pipelines_pipeline_dlq_message_edit",
        ),
        path("<int:pk>/dlq/triage/", view(triage.page), name="pipelines_pipeline_dlq_triage"),
        path("<int:pk>/dlq/triage/<int:scan_id>/", view(triage.scan), name="pipelines_pipeline_dlq_triage_scan"),
        path(
            "<int:pk>/dlq/triage/<int:scan_id>/progress.json",
            view(triage.progress),
            name="pipelines_pipeline_dlq_triage_progress",
        ),
        path("<int:pk>/dlq/tasks/<int:task_id>/", view(dlq.task), name="pipelines_pipeline_dlq_task"),
        path(
            "<int:pk>/dlq/tasks/<int:task_id>/progress/",
            view(dlq.progress),
            name="pipelines_pipeline_dlq_task_progress",
        ),
        path("<int:pk>/dlq/tasks/<int:task_id>/cancel/", view(dlq.cancel), name="pipelines_pipeline_dlq_task_cancel"),
    ]


#: At the site root, outside the admin: Prometheus scrapes, load-balancer probes and PagerDuty's webhooks.
root_urls = [
    path("metrics", prometheus.metrics, name="metrics"),
    path("healthz", healthz.healthz, name="healthz"),
    path("integrations/pagerduty/<int:channel_id>/", pagerduty.webhook, name="pagerduty_webhook"),
    *sso_urls.urlpatterns,  # single sign-on: oidc/authenticate/, oidc/callback/ (the redirect URI)
]
