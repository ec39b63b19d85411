"""opsboard's admin site: the operations UI, with the pipeline overview as its landing page."""

from django.contrib import admin
from django.urls import path

from pipelines.ui import overview, urls


class OpsboardAdminSite(admin.AdminSite):
    site_header = "opsboard"
    site_title = "opsboard"
    index_title = "Pipelines"

    def get_urls(self):
        return [
            *urls.site_urls(self),
            path("apps/", self.admin_view(super().index), name="apps"),
            *super().get_urls(),
        ]

    def index(self, request, extra_context=None):
        return overview.overview(request, self, extra_context)
