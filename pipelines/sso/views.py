"""The two pages of single sign-on: the start (sends the browser to the provider) and the callback (the
provider sends it back with a code).

Every failure ends on the admin login page with a sentence saying what went wrong, and is written to
the audit trail as a refused login (method "oidc" and a short reason); none is a server error. A
successful login goes through `django.contrib.auth.login`, whose signal writes the login entry.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.contrib import auth, messages
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from pipelines.models import AuditAction, AuditEntry, AuditThrough
from pipelines.sso import provider
from pipelines.sso.backend import METHOD, LoginRefused

logger = logging.getLogger(__name__)

BACKEND = "pipelines.sso.backend.OidcBackend"
STATES = "oidc_states"
NEXT = "oidc_login_next"


def refuse(request, reason: str, message: str, audited: bool = True) -> HttpResponseRedirect:
    """Audit a refused single sign-on login and show why on the login page. An answer to no sign-in
    this browser started (anybody can send one) is logged but not audited, so it cannot flood the trail."""
    logger.warning("single sign-on refused (%s): %s", reason, message)
    if audited:
        _audit_refusal(request, reason, message)
    messages.error(request, f"Sign-in with {settings.OIDC_PROVIDER_NAME} failed: {message}")
    return HttpResponseRedirect(reverse("admin:login"))


def _audit_refusal(request, reason: str, message: str) -> None:
    AuditEntry.record(
        AuditAction.LOGIN_FAILED,
        None,
        through=AuditThrough.UI,
        remote_addr=request.META.get("REMOTE_ADDR"),
        method=METHOD,
        reason=reason,
        message=message[:300],
    )


class Start(OIDCAuthenticationRequestView):
    """POST from the login page's button: a fresh state, nonce and PKCE verifier kept in the session, and a
    redirect to the provider's authorization endpoint. POST because it writes the session."""

    http_method_names = ["post"]

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def post(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider.endpoints().authorization
        except provider.ProviderError as exc:
            return refuse(request, "provider_unreachable", f"opsboard could not use the identity provider: {exc}")
        return self.get(request)  # the library's start, reading `next` from the query string


def _pop_state(request, state: str) -> dict | None:
    """This browser's pending login for `state` (compared in constant time), removed so it serves once."""
    pending = request.session.get(STATES)
    if not isinstance(pending, dict):
        return None
    for key in list(pending):
        if hmac.compare_digest(str(key), state):
            entry = pending.pop(key)
            request.session[STATES] = pending
            return entry if isinstance(entry, dict) else None
    return None


def callback(request):
    """GET from the provider: verify, log in, go where the login started (the admin index by default)."""
    if not settings.OIDC_ENABLED:
        raise Http404("Single sign-on is not configured.")
    if request.method != "GET":
        return refuse(request, "bad_callback", "the provider's answer did not come back as a link.")
    error = request.GET.get("error")
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    started = bool(request.session.get(STATES))  # this browser has a sign-in under way
    entry = _pop_state(request, state) if state else None
    if error:
        detail = request.GET.get("error_description", "")[:200]
        return refuse(
            request,
            "provider_error",
            f"the provider answered {error[:60]}{': ' + detail if detail else ''}.",
            audited=started,
        )
    if entry is None:
        return refuse(
            request,
            "state_mismatch",
            "this answer does not belong to a sign-in this browser started; sign in again.",
            audited=started,
        )
    if not code:
        return refuse(request, "bad_callback", "the provider's answer carried no authorization code.")
    try:
        user = auth.authenticate(request, nonce=entry.get("nonce"), code_verifier=entry.get("code_verifier"))
    except LoginRefused as exc:
        return refuse(request, exc.reason, exc.message)
    if user is None:
        return refuse(request, "refused", "the login was refused.")
    auth.login(request, user, backend=BACKEND)
    next_url = request.session.pop(NEXT, None)
    return HttpResponseRedirect(next_url or reverse("admin:index"))
