"""The authentication backend of single sign-on: turns the provider's callback into an opsboard user.

It builds on mozilla-django-oidc's backend (token request, user info, the code flow's shape) and does the
ID token's checks itself, since that library leaves some out: it decodes with audience checking off and
no issuer, catches only malformed-token errors (an expired token would escape as an exception), and
passes a token that carries no nonce when none was expected. Here an ID token is accepted only when

* it is signed with OIDC_RP_SIGN_ALGO by a key in the provider's JWKS (matched by `kid`);
* `iss` is OIDC_ISSUER; `aud` contains OIDC_RP_CLIENT_ID, and `azp` is the client id when the token
  has several audiences (or names an `azp` at all);
* `exp` is in the future and `iat`/`nbf` not in it, both within OIDC_LEEWAY_SECONDS of clock skew;
* `nonce` is the one this browser's login started with;
* the user info's `sub` is the ID token's.

Any refusal raises `LoginRefused` with a short reason (for the audit trail) and a sentence for the login
page; it is not Django's PermissionDenied, so a refused callback neither counts as a wrong password
for login throttling nor reaches the password-login audit.
"""

from __future__ import annotations

import hmac
import logging

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils.encoding import smart_str
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import absolutify
from requests.auth import HTTPBasicAuth

from pipelines.sso import provider, sync

logger = logging.getLogger(__name__)

METHOD = "oidc"


class LoginRefused(Exception):
    """A single sign-on login that did not verify: `reason` for the audit trail, `message` for the person."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


#: PyJWT's refusals, most specific first, as (reason, sentence).
_JWT_REFUSALS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "the provider's ID token has expired (check the server clocks)."),
    (jwt.InvalidAudienceError, "wrong_audience", "the ID token was issued to another client, not opsboard."),
    (jwt.InvalidIssuerError, "wrong_issuer", "the ID token was issued by another issuer than OIDC_ISSUER."),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the ID token is not valid yet (check the server clocks)."),
    (jwt.InvalidIssuedAtError, "not_yet_valid", "the ID token's issue time is unusable (check the server clocks)."),
    (jwt.MissingRequiredClaimError, "missing_claim", "the ID token lacks a required claim."),
    (jwt.InvalidSignatureError, "bad_signature", "the ID token's signature does not verify with the provider's keys."),
    (jwt.InvalidTokenError, "invalid_token", "the provider's ID token could not be read."),
)


def _unreachable(exc: provider.ProviderError) -> LoginRefused:
    return LoginRefused("provider_unreachable", f"opsboard could not use the identity provider: {exc}")


class OidcBackend(OIDCAuthenticationBackend):
    """Single sign-on's backend; `audit_method` names its logins in the audit trail."""

    audit_method = METHOD

    def __init__(self, *args, **kwargs):
        # The library reads endpoints from settings here; they come from discovery, at the callback.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, *, nonce=None, code_verifier=None):
        """Only the callback view calls with a nonce; a password login or any other caller gets None."""
        self.request = request
        if request is None or not settings.OIDC_ENABLED or not nonce:
            return None
        code, state = request.GET.get("code"), request.GET.get("state")
        if not code or not state:
            return None
        try:
            self.endpoints = provider.endpoints()
            token_info = self.get_token(self._token_payload(code, code_verifier))
            id_token, access_token = token_info.get("id_token"), token_info.get("access_token")
            payload = self.verify_token(id_token, nonce=nonce)
            claims = self.get_userinfo(access_token, id_token, payload)
        except provider.ProviderError as exc:
            raise _unreachable(exc) from None
        try:
            user = sync.user_for(claims, payload.get("iss") or settings.OIDC_ISSUER, request.META.get("REMOTE_ADDR"))
        except sync.ClaimsRefused as exc:
            raise LoginRefused(exc.reason, str(exc)) from None
        if not user.is_active:
            raise LoginRefused("inactive", f"the opsboard account {user.username} is deactivated.")
        return user

    def _token_payload(self, code: str, code_verifier: str | None) -> dict:
        payload = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": absolutify(self.request, reverse("oidc_authentication_callback")),
            "client_id": self.OIDC_RP_CLIENT_ID,
        }
        if code_verifier:
            payload["code_verifier"] = code_verifier
        return payload

    def _basic_auth(self) -> bool:
        """client_secret_basic (the standard's default) unless discovery says the provider only takes the post form."""
        if settings.OIDC_OP_TOKEN_ENDPOINT and settings.OIDC_OP_AUTHORIZATION_ENDPOINT:
            return True
        methods = provider.discovery(settings.OIDC_ISSUER).get("token_endpoint_auth_methods_supported")
        return not isinstance(methods, list) or "client_secret_basic" in methods or "client_secret_post" not in methods

    def get_token(self, payload):
        auth = None
        if self._basic_auth():
            auth = HTTPBasicAuth(self.OIDC_RP_CLIENT_ID, self.OIDC_RP_CLIENT_SECRET)
        else:
            payload = {**payload, "client_secret": self.OIDC_RP_CLIENT_SECRET}
        response = provider.request("POST", self.endpoints.token, data=payload, auth=auth)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            detail = f" ({str(error)[:100]})" if error else ""
            raise LoginRefused(
                "token_refused", f"the identity provider refused to issue a token: HTTP {response.status_code}{detail}."
            )
        return body

    def retrieve_matching_jwk(self, token):
        """The provider's signing key the token names (by `kid`), as a PyJWK."""
        header = jwt.get_unverified_header(token)
        keys = provider.get_json(self.endpoints.jwks).get("keys")
        kid = header.get("kid")
        for jwk in keys if isinstance(keys, list) else []:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            if kid is not None and smart_str(jwk.get("kid")) != smart_str(kid):
                continue
            if jwk.get("alg", header.get("alg")) != header.get("alg"):
                continue
            try:
                return jwt.PyJWK(jwk)
            except jwt.PyJWKError:
                continue
        raise LoginRefused(
            "bad_signature", "no key of the provider matches the one the ID token says it was signed with."
        )

    def verify_token(self, token, **kwargs):
        """The ID token's claims, once every check in the module docstring has passed."""
        if not isinstance(token, str) or not token:
            raise LoginRefused("invalid_token", "the provider's token answer carried no ID token.")
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise LoginRefused("invalid_token", "the provider's ID token could not be read.") from None
        if alg != self.OIDC_RP_SIGN_ALGO:
            raise LoginRefused(
                "bad_signature", f"the ID token is signed with {str(alg)[:20]}, not {self.OIDC_RP_SIGN_ALGO}."
            )
        payload = self._decode(token, self.retrieve_matching_jwk(token), alg)
        self._check_azp(payload)
        expected, found = kwargs.get("nonce"), payload.get("nonce")
        if not expected or not isinstance(found, str) or not hmac.compare_digest(found, expected):
            raise LoginRefused("nonce_mismatch", "the ID token was not issued for this sign-in (nonce mismatch).")
        return payload

    def _decode(self, token: str, key, alg: str) -> dict:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                leeway=settings.OIDC_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            for kind, reason, message in _JWT_REFUSALS:
                if isinstance(exc, kind):
                    raise LoginRefused(reason, message) from None
            raise

    def _check_azp(self, payload: dict) -> None:
        aud, azp = payload.get("aud"), payload.get("azp")
        several = isinstance(aud, list) and len(aud) > 1
        if (several or azp is not None) and azp != self.OIDC_RP_CLIENT_ID:
            raise LoginRefused("wrong_audience", "the ID token was issued to another party (azp is not opsboard).")

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims, with the user info endpoint's added (same subject only)."""
        if not access_token or not self.endpoints.userinfo:
            return payload
        info = provider.get_json(self.endpoints.userinfo, headers={"Authorization": f"Bearer {access_token}"})
        if str(info.get("sub")) != str(payload.get("sub")):
            raise LoginRefused(
                "subject_mismatch", "the provider's user info is about another subject than the ID token."
            )
        return {**payload, **info}
