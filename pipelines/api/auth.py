"""Who is calling: `Authorization: Bearer obt_…` (an `ApiToken`), or the session of a signed-in user
(the docs page; DRF's SessionAuthentication enforces CSRF on it).

A token acts as its user narrowed to its scopes: the view asks `pipelines.access.can(request, …)`,
which reads the token from `request.auth`. Its last use (time and address) is written at most once a
minute, so a busy script does not write a row per request.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from pipelines import clock
from pipelines.models import ApiToken
from pipelines.models.audit import remote_address

#: A token's last use is rewritten only when the stored one is older than this.
LAST_USED_EVERY = timedelta(minutes=1)
REALM = 'Bearer realm="opsboard"'


def touch(token: ApiToken, remote_addr: str | None) -> None:
    """Record the token's use now, unless it was recorded less than LAST_USED_EVERY ago (one UPDATE)."""
    at = clock.now()
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=at - LAST_USED_EVERY)
    ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=at, last_used_from=remote_address(remote_addr))


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`; no such header: not this scheme (the session may answer)."""

    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as: Authorization: Bearer obt_….")
        token = ApiToken.find(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("The API token is unknown, expired or revoked.")
        touch(token, request.META.get("REMOTE_ADDR"))
        return token.user, token

    def authenticate_header(self, request) -> str:
        return REALM


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The schema's security scheme for the token."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (obt_…) made in the admin under API tokens; it acts as its user, "
            "narrowed to its scopes.",
        }
