"""A real OpenID Connect provider for the single sign-on tests (oidc-provider-mock, a Flask app on
127.0.0.1 in a thread), and a small proxy in front of its token endpoint that can rewrite the ID token it
hands out: re-signed with the provider's own key but with a wrong audience, issuer, expiry or nonce, or
signed with a key the provider never published.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import flask
import jwt
import oidc_provider_mock
import requests
import werkzeug.serving
from cryptography.hazmat.primitives.asymmetric import rsa

#: Rewrites one ID token's claims; returns the claims to sign and, optionally, another private key.
Tamper = Callable[[dict], tuple[dict, object | None]]


@dataclass
class Provider:
    url: str
    token_url: str  # the proxy's token endpoint
    keys: dict = field(default_factory=dict)
    tamper: Tamper | None = None

    def set_user(self, sub: str, **claims) -> None:
        """Give the provider's user `sub` these claims (they go into the ID token and the user info)."""
        requests.put(f"{self.url}/users/{sub}", json=claims, timeout=5).raise_for_status()

    def private_pem(self) -> bytes:
        return self.keys["jwk"].as_pem(is_private=True)

    def kid(self) -> str | None:
        return self.keys["jwk"].as_dict().get("kid")


def foreign_key():
    """A key the provider never published."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _rewrite(provider: Provider, id_token: str) -> str:
    claims = jwt.decode(id_token, options={"verify_signature": False})
    claims, key = provider.tamper(dict(claims))
    headers = {"kid": provider.kid()} if provider.kid() else {}
    return jwt.encode(claims, key or provider.private_pem(), algorithm="RS256", headers=headers)


def _proxy_handler(provider: Provider):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            target = urlsplit(provider.url)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            conn.request("POST", self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            if answer.status == 200 and provider.tamper is not None:
                token = json.loads(data)
                token["id_token"] = _rewrite(provider, token["id_token"])
                data = json.dumps(token).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


@contextmanager
def running_provider(**options):
    """The provider and its token proxy, both on 127.0.0.1, for the length of the block."""
    app = oidc_provider_mock.app(require_nonce=True, **options)
    provider = Provider(url="", token_url="")

    @app.before_request
    def capture_key():
        # The provider's signing key, so the proxy can sign tokens the provider itself would accept.
        provider.keys.setdefault("jwk", flask.g.oidc_provider_mock_storage.jwk)

    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(provider))
    provider.url = f"http://127.0.0.1:{server.server_port}"
    provider.token_url = f"http://127.0.0.1:{proxy.server_port}/oauth2/token"
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}) for s in (server, proxy)]
    for t in threads:
        t.start()
    try:
        requests.get(provider.url + "/.well-known/openid-configuration", timeout=5).raise_for_status()
        yield provider
    finally:
        for s in (server, proxy):
            s.shutdown()
            s.server_close()
        for t in threads:
            t.join(5)


def expired(claims: dict) -> tuple[dict, None]:
    now = int(time.time())
    return {**claims, "iat": now - 3600, "exp": now - 600}, None
