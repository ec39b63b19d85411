"""The single sign-on settings (OpenID Connect; docs/sso.md, pipelines/sso/), read from the environment.

Kept apart from settings.py, which applies them with `vars().update(settings_sso.read(...))`. Single
sign-on is on when OIDC_ISSUER (or a client id or an endpoint) is set. Endpoints come from the issuer's
discovery document, fetched at first use; an explicit OIDC_OP_*_ENDPOINT overrides the discovered one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

DEFAULT_PROVIDER_NAME = "single sign-on"
SIGN_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")
ENDPOINTS = (
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
)


def groups(raw: str) -> tuple[str, ...]:
    """Comma-separated identity-provider group names."""
    return tuple(dict.fromkeys(g.strip() for g in raw.split(",") if g.strip()))


def team_map(raw: str) -> dict[str, tuple[str, ...]]:
    """OIDC_TEAM_MAP: `idp-group=Team name;other-group=Other team` (a group may name several teams)."""
    out: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in raw.split(";"))):
        group, sep, team = (s.strip() for s in item.partition("="))
        if not sep or not group or not team:
            raise ImproperlyConfigured(
                f"OIDC_TEAM_MAP holds {item[:80]!r}, which is not `identity-provider group=opsboard team name`; "
                "separate pairs with semicolons, e.g. OIDC_TEAM_MAP=platform-oncall=Platform;payments-devs=Payments."
            )
        out[group] = (*out.get(group, ()), team)
    return out


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.hostname)


def read(env, _env, _bool) -> dict:
    """The OIDC_* and LOCAL_PASSWORDS settings, checked; `_env` and `_bool` are settings.py's readers."""
    s = {
        "OIDC_ISSUER": env.str("OIDC_ISSUER", default="").strip().rstrip("/"),
        **{name: env.str(name, default="").strip() for name in ENDPOINTS},
        "OIDC_RP_CLIENT_ID": env.str("OIDC_RP_CLIENT_ID", default="").strip(),
        "OIDC_RP_CLIENT_SECRET": env.str("OIDC_RP_CLIENT_SECRET", default=""),
        "OIDC_RP_SIGN_ALGO": env.str("OIDC_RP_SIGN_ALGO", default="RS256").strip(),
        "OIDC_RP_SCOPES": " ".join(env.str("OIDC_SCOPES", default="openid email profile groups").split()),
        "OIDC_GROUPS_CLAIM": env.str("OIDC_GROUPS_CLAIM", default="groups").strip() or "groups",
        "OIDC_PROVIDER_NAME": env.str("OIDC_PROVIDER_NAME", default="").strip() or DEFAULT_PROVIDER_NAME,
        "OIDC_LEEWAY_SECONDS": _env(env.int, "OIDC_LEEWAY_SECONDS", default=60),
        "OIDC_TIMEOUT": _env(env.float, "OIDC_TIMEOUT", default=10.0),
        # The callback refuses an ID token whose nonce is not the one this browser was given.
        "OIDC_USE_NONCE": True,
        "OIDC_USE_PKCE": _bool("OIDC_USE_PKCE", default=True),
        "OIDC_TEAM_MAP": team_map(env.str("OIDC_TEAM_MAP", default="")),
        "OIDC_OPERATOR_GROUPS": groups(env.str("OIDC_OPERATOR_GROUPS", default="")),
        "OIDC_SUPERUSER_GROUPS": groups(env.str("OIDC_SUPERUSER_GROUPS", default="")),
        # true: a first sign-in whose user name is an existing (non-superuser, unlinked) opsboard account's is
        # linked to it; false (the default) refuses it, so nobody takes over an account by taking its name.
        "OIDC_LINK_EXISTING_USERS": _bool("OIDC_LINK_EXISTING_USERS", default=False),
        # false: the login form refuses passwords and shows only the sign-in button (manage.py still works).
        "LOCAL_PASSWORDS": _bool("LOCAL_PASSWORDS", default=True),
    }
    s["OIDC_ENABLED"] = bool(s["OIDC_ISSUER"] or s["OIDC_RP_CLIENT_ID"] or any(s[n] for n in ENDPOINTS))
    if s["OIDC_ENABLED"]:
        check(s)
    if not s["LOCAL_PASSWORDS"] and not s["OIDC_ENABLED"]:
        raise ImproperlyConfigured(
            "LOCAL_PASSWORDS=false turns password login off, but single sign-on is not configured, so nobody could "
            "log in: set OIDC_ISSUER, OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET, or set LOCAL_PASSWORDS=true."
        )
    return s


def check(s: dict) -> None:
    """Refuse an incomplete or malformed single sign-on configuration with a sentence saying what to set."""
    if not _is_url(s["OIDC_ISSUER"]):
        raise ImproperlyConfigured(
            "Single sign-on is configured but OIDC_ISSUER is missing or not a URL: set it to the provider's issuer "
            "identifier (the `iss` of its ID tokens, e.g. https://login.example.com/realms/ops), whose "
            "/.well-known/openid-configuration opsboard reads."
        )
    if not s["OIDC_RP_CLIENT_ID"] or not s["OIDC_RP_CLIENT_SECRET"]:
        raise ImproperlyConfigured(
            "Single sign-on needs OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET: register opsboard as a confidential "
            "client at the provider (redirect URI: SITE_URL + /oidc/callback/) and set both."
        )
    if s["OIDC_RP_SIGN_ALGO"] not in SIGN_ALGORITHMS:
        raise ImproperlyConfigured(
            f"OIDC_RP_SIGN_ALGO is {s['OIDC_RP_SIGN_ALGO']!r}: use the provider's ID token signing algorithm, one of "
            f"{', '.join(SIGN_ALGORITHMS)} (RS256 is the default)."
        )
    if "openid" not in s["OIDC_RP_SCOPES"].split():
        raise ImproperlyConfigured("OIDC_SCOPES must include openid (default: openid email profile groups).")
    if not 0 <= s["OIDC_LEEWAY_SECONDS"] <= 300 or not 0 < s["OIDC_TIMEOUT"] <= 60:
        raise ImproperlyConfigured(
            "OIDC_LEEWAY_SECONDS must be a whole number of seconds from 0 to 300 (e.g. 60), and OIDC_TIMEOUT a "
            "number of seconds above 0 and at most 60 (e.g. 10)."
        )
    for name in ENDPOINTS:
        if s[name] and not _is_url(s[name]):
            raise ImproperlyConfigured(f"{name} is not an http(s) URL; fix it, or unset it to use discovery.")
