"""The identity provider as opsboard reaches it: its endpoints, from discovery or from settings, and
HTTP requests to it through the outbound address policy.

The discovery document (`{OIDC_ISSUER}/.well-known/openid-configuration`) is fetched at first use and
kept for the life of the process; an OIDC_OP_*_ENDPOINT setting overrides the endpoint it names. The
document must name the configured issuer itself, or a provider answering at that address for another
issuer would be trusted.

Every request connects through `pipelines.outbound`: the address actually connected to is checked
after connect and before TLS, so a provider URL leading to a loopback, private or metadata address is
refused unless OUTBOUND_ALLOWED_NETWORKS lets it through.
"""

from __future__ import annotations

import threading
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from pipelines import outbound

DISCOVERY_PATH = "/.well-known/openid-configuration"


class ProviderError(Exception):
    """The provider could not be reached, or answered something opsboard cannot use; the message says which."""


@dataclass(frozen=True)
class Endpoints:
    issuer: str
    authorization: str
    token: str
    userinfo: str
    jwks: str


class _PeerChecked:
    # urllib3 opens its socket here: the policy judges the peer before TLS and before a byte is written.
    def _new_conn(self):
        sock = super()._new_conn()
        outbound.check_socket(sock)
        return sock


class _HTTPConnection(_PeerChecked, HTTPConnection):
    pass


class _HTTPSConnection(_PeerChecked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _PolicedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def session() -> requests.Session:
    """A requests session whose connections pass the outbound address policy. It ignores the
    environment's proxies (`proxy_refusal` reports them instead) and follows no redirects."""
    s = requests.Session()
    s.trust_env = False
    s.max_redirects = 0
    for prefix in ("http://", "https://"):
        s.mount(prefix, _PolicedAdapter())
    return s


def proxy_refusal(url: str) -> str:
    """Why `url` is not requested when the environment routes it through a proxy, or "" when it goes direct:
    through a proxy the policy would judge the proxy's address, not the provider's."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return ""
    return (
        f"The environment sends {parts.scheme} requests through a proxy ({parts.scheme.upper()}_PROXY), where the "
        f"outbound address policy cannot see the address reached; add {parts.hostname} to NO_PROXY."
    )


def request(method: str, url: str, **kwargs) -> requests.Response:
    """One request to the provider, with OIDC_TIMEOUT; ProviderError says what went wrong."""
    refusal = proxy_refusal(url)
    if refusal:
        raise ProviderError(refusal)
    try:
        with session() as s:
            return s.request(method, url, timeout=settings.OIDC_TIMEOUT, allow_redirects=False, **kwargs)
    except outbound.Refused as exc:
        raise ProviderError(str(exc)) from None
    except requests.RequestException as exc:
        host = urlsplit(url).netloc
        raise ProviderError(f"the identity provider at {host} could not be reached ({type(exc).__name__}).") from None


def get_json(url: str, **kwargs) -> dict:
    response = request("GET", url, **kwargs)
    if response.status_code != 200:
        raise ProviderError(f"{url} answered HTTP {response.status_code}.")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(f"{url} did not answer a JSON object.")
    return body


_lock = threading.Lock()
_discovered: dict[str, dict] = {}


def discovery(issuer: str) -> dict:
    """The issuer's discovery document, fetched once per process (a failure is not kept: the next login retries)."""
    with _lock:
        if issuer in _discovered:
            return _discovered[issuer]
    document = get_json(issuer + DISCOVERY_PATH)
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderError(
            f"the discovery document at {issuer} names the issuer {str(document.get('issuer'))[:200]!r}, not "
            f"OIDC_ISSUER ({issuer}); set OIDC_ISSUER to the provider's exact issuer identifier."
        )
    with _lock:
        _discovered[issuer] = document
    return document


def forget() -> None:
    """Drop the cached discovery documents (after the provider changed its configuration, and in tests)."""
    with _lock:
        _discovered.clear()


def endpoints() -> Endpoints:
    """The provider's endpoints: the OIDC_OP_*_ENDPOINT settings, else discovery."""
    explicit = {
        "authorization": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "token": settings.OIDC_OP_TOKEN_ENDPOINT,
        "userinfo": settings.OIDC_OP_USER_ENDPOINT,
        "jwks": settings.OIDC_OP_JWKS_ENDPOINT,
    }
    keys = {"authorization": "authorization_endpoint", "token": "token_endpoint"}
    keys.update(userinfo="userinfo_endpoint", jwks="jwks_uri")
    if not all(explicit.values()):
        document = discovery(settings.OIDC_ISSUER)
        for name, key in keys.items():
            if not explicit[name]:
                value = document.get(key)
                if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                    raise ProviderError(f"the provider's discovery document has no usable {key}.")
                explicit[name] = value
    return Endpoints(issuer=settings.OIDC_ISSUER, **explicit)
