"""URL configuration: the admin is the operations UI; the site root sends people there.

/metrics (Prometheus) and /healthz (load balancers, uptime checks) sit at the root, outside the admin;
every path is listed in `pipelines.ui.urls`.
"""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from pipelines.ui.urls import root_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    *root_urls,
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
