"""Every API error as one JSON body: {"error": {"status", "code", "message", "fields"}}.

DRF's own exceptions, Django's Http404 and PermissionDenied, and anything unexpected (a 500, logged)
all pass through `exception_handler`; URLs under /api/ that name no endpoint answer `not_found`.
A 401 carries the Bearer challenge (WWW-Authenticate), a 429 how long to wait (Retry-After).
"""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

log = logging.getLogger(__name__)

#: The sentence each status says when the exception brought none of its own.
DEFAULT_MESSAGES = {
    400: "The request is not valid.",
    401: "Authenticate with an API token: Authorization: Bearer obt_…",
    403: "You do not have permission to do this.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "The request conflicts with the current state.",
    429: "Too many requests.",
    500: "Internal error; it was logged.",
}


class Conflict(exceptions.APIException):
    """The act is not possible in the object's current state (already resolved, another task active…)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = DEFAULT_MESSAGES[409]
    default_code = "conflict"


def body(status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"status": status_code, "code": code, "message": message, "fields": fields or {}}}


def _flatten(detail) -> list[str]:
    if isinstance(detail, dict):
        return [m for v in detail.values() for m in _flatten(v)]
    if isinstance(detail, list):
        return [m for v in detail for m in _flatten(v)]
    return [str(detail)]


def _validation(exc: exceptions.ValidationError) -> tuple[str, dict]:
    """The message and the per-field messages of a validation error."""
    detail = exc.detail
    if not isinstance(detail, dict):
        return " ".join(_flatten(detail)) or DEFAULT_MESSAGES[400], {}
    general = _flatten(detail.get("non_field_errors", []))
    fields = {name: _flatten(value) for name, value in detail.items() if name != "non_field_errors"}
    named = ", ".join(sorted(fields))
    message = " ".join(general) or (f"Check these fields: {named}." if named else DEFAULT_MESSAGES[400])
    return message, fields


def _code(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    if isinstance(exc, exceptions.ValidationError):
        return "invalid"
    return exc.default_code


def exception_handler(exc, context) -> Response:
    """DRF's EXCEPTION_HANDLER: the JSON body and headers for any exception a view raised."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        log.exception("API error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(body(500, "error", DEFAULT_MESSAGES[500]), status=500)
    if isinstance(exc, exceptions.ValidationError):
        message, fields = _validation(exc)
    else:
        message, fields = " ".join(_flatten(exc.detail)) or DEFAULT_MESSAGES.get(exc.status_code, ""), {}
    response = Response(body(exc.status_code, _code(exc), message, fields), status=exc.status_code)
    if getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        response["Retry-After"] = str(max(1, math.ceil(exc.wait)))
    return response


def not_found(request, *args, **kwargs) -> JsonResponse:
    """Any URL under /api/ that names no endpoint."""
    return JsonResponse(body(404, "not_found", f"No API endpoint at {request.path}."), status=404)


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    code = serializers.CharField(
        help_text="invalid, parse_error, not_authenticated, authentication_failed, permission_denied, not_found, "
        "method_not_allowed, conflict, throttled, unsupported_media_type, error."
    )
    message = serializers.CharField(help_text="What went wrong, in a sentence.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per request field, its messages (400 only; empty otherwise).",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
