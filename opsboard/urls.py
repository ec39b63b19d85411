"""URL configuration: the admin is the operations UI; the site root sends people there.

/metrics (Prometheus) and /healthz (load balancers, uptime checks) sit at the root, outside the admin.
"""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from pipelines import integrations

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", integrations.metrics, name="metrics"),
    path("healthz", integrations.healthz, name="healthz"),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
