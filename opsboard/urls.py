"""URL configuration: the admin is the operations UI; the site root sends people there.

/metrics (Prometheus) and /healthz (load balancers, uptime checks) sit at the root, outside the admin;
every page's path is listed in `pipelines.ui.urls`. The REST API sits under /api/, its paths listed in
`pipelines.api.urls` (a layer above the UI's).
"""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from pipelines.ui.urls import root_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    *root_urls,
    path("api/", include("pipelines.api.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
