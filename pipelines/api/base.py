"""What every API view shares: finding an object through its pipeline (404 when the user cannot see
it, 403 when the user or the token may not do the act), strict request bodies, the audit's facts,
and the error responses each endpoint declares in the schema."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination

from pipelines import access
from pipelines.api.errors import ErrorSerializer
from pipelines.models import ApiToken, AuditThrough, Pipeline

_ERROR_WORDS = {
    400: "The request is not valid (`fields` names each field's problem, unknown fields included).",
    401: "No token, or a token that is unknown, expired or revoked.",
    403: "Not permitted: the user lacks the permission on this pipeline, or the token lacks the scope.",
    404: "Not found, or not visible to this user.",
    409: "Not possible in the current state.",
    429: "Rate limit reached: retry after Retry-After seconds.",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an endpoint for its schema: 401, 403 and 429 always, plus `statuses`."""
    return {
        s: OpenApiResponse(ErrorSerializer, description=_ERROR_WORDS[s]) for s in sorted({401, 403, 429, *statuses})
    }


def token_allows(request, perm: str) -> bool:
    token = request.auth
    return not isinstance(token, ApiToken) or token.allows(perm)


def allowed(request, perm: str, pipeline: Pipeline | None) -> bool:
    """`perm` on `pipeline` for the user and the token; on no pipeline (an account-wide silence, a task
    whose pipeline was deleted) only the global role holds it."""
    if pipeline is None:
        return token_allows(request, perm) and access.is_global(request.user, perm)
    return access.can(request, perm, pipeline)


def require(request, perm: str, pipeline: Pipeline | None = None) -> None:
    if not allowed(request, perm, pipeline):
        raise exceptions.PermissionDenied()


def require_any(request, perm: str) -> None:
    """`perm` on at least one pipeline (a list), and the token's scope for it."""
    if not access.can(request, perm):
        raise exceptions.PermissionDenied()


def visible(request, qs: QuerySet, prefix: str = "") -> QuerySet:
    """What the user may see (VIEW), whatever the token's scopes: the scopes decide 403, not 404."""
    return access.visible(request.user, qs, access.VIEW, prefix)


def get_visible(request, qs: QuerySet, prefix: str = "", **lookup):
    return get_object_or_404(visible(request, qs, prefix), **lookup)


def pipeline_for(request, pk: int, perm: str = access.VIEW) -> Pipeline:
    """The pipeline `pk`: 404 unless the user sees it, 403 unless `perm` is allowed on it."""
    pipeline = get_visible(request, Pipeline.objects.select_related("account"), pk=pk)
    require(request, perm, pipeline)
    return pipeline


def acting(request) -> dict:
    """The audit facts of an act through the API: who is the caller, from where, how."""
    return {"remote_addr": request.META.get("REMOTE_ADDR"), "through": AuditThrough.API}


class StrictSerializer(serializers.Serializer):
    """A request body that refuses fields it does not know (a typo must not be silently ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            known = {name for name, f in self.fields.items() if not f.read_only}
            unknown = sorted(set(data) - known)
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field: {name}. Known: {', '.join(sorted(known)) or 'none'}."] for name in unknown}
                )
        return super().to_internal_value(data)


class Pages(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_paginated_response_schema(self, schema: dict) -> dict:
        """DRF's page schema, with the neighbours' links nullable as OpenAPI 3.1 writes it."""
        link = {"type": ["string", "null"], "format": "uri"}
        return {
            "type": "object",
            "required": ["count", "results"],
            "properties": {"count": {"type": "integer"}, "next": link, "previous": link, "results": schema},
        }
