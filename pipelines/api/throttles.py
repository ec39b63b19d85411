"""The API's rate limit: API_RATE requests per token (per user on a session), counted in the "api"
cache, which is Redis when one is configured so every web process shares the counts."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

from pipelines.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "api"

    def __init__(self):
        self.cache = caches["api"]
        super().__init__()

    def get_rate(self) -> str:
        return settings.API_RATE  # read per request, so a changed setting needs no reload

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return f"throttle-{self.scope}-{ident}"
