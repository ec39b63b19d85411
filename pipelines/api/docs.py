"""The schema (/api/v1/schema/, for a signed-in user or a token) and its docs page (/api/v1/docs/).

The page is Swagger UI from drf-spectacular-sidecar's files, served by opsboard (no CDN), its start
script a separate file so the Content-Security-Policy needs no inline script. It holds no data: a
visitor who is not signed in is sent to the login page, and the schema it loads needs the session.
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny, IsAuthenticated


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema: JSON, or YAML with ?format=yaml."""

    renderer_classes = [OpenApiJsonRenderer, OpenApiYamlRenderer]
    permission_classes = [IsAuthenticated]


class DocsView(SpectacularSwaggerSplitView):
    permission_classes = [AllowAny]
    url_name = "api:schema"
    throttle_classes = []  # a page and its script: what counts is the schema and the calls made from it

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return super().get(request, *args, **kwargs)
