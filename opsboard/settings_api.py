"""The REST API's framework and schema settings (pipelines/api, docs/api.md), applied by settings.py."""


def rest_framework(api_rate: str) -> dict:
    """Django REST framework's settings; each token (or session user) may make `api_rate` requests."""
    return {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "pipelines.api.auth.BearerTokenAuthentication",  # first: its challenge is the 401's WWW-Authenticate
            "rest_framework.authentication.SessionAuthentication",  # the docs page's user; CSRF enforced
        ],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "DEFAULT_THROTTLE_CLASSES": ["pipelines.api.throttles.TokenRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"api": api_rate},
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
        "EXCEPTION_HANDLER": "pipelines.api.errors.exception_handler",
        "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    }


SPECTACULAR_SETTINGS = {
    "TITLE": "opsboard API",
    "DESCRIPTION": "Pipelines, incidents, dead-letter queues, traces and silences. See docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "OAS_VERSION": "3.1.0",
    "ENUM_NAME_OVERRIDES": {"SeverityEnum": "pipelines.models.Severity", "ApiKindEnum": "pipelines.models.ApiKind"},
}
