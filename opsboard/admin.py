"""opsboard's admin site: the operations UI, with the pipeline overview as its landing page."""

from django.contrib import admin
from django.urls import path


class OpsboardAdminSite(admin.AdminSite):
    site_header = "opsboard"
    site_title = "opsboard"
    index_title = "Pipelines"

    def get_urls(self):
        from pipelines import incident_views, trace_views, views

        return [
            path("overview/rows/", self.admin_view(views.overview_rows), name="overview_rows"),
            path("trace/", self.admin_view(lambda r: trace_views.trace_page(r, self)), name="trace"),
            path("apps/", self.admin_view(super().index), name="apps"),
            *incident_views.admin_urls(self),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        from pipelines import views

        return views.overview(request, self, extra_context)
