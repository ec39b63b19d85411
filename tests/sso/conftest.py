"""Fixtures of the single sign-on tests: one provider for the module, opsboard configured against it."""

from __future__ import annotations

import pytest

from pipelines.sso import provider as sso_provider
from tests.sso.provider import running_provider

CLIENT_ID = "opsboard"
CLIENT_SECRET = "opsboard-test-secret"


@pytest.fixture(scope="module")
def idp():
    with running_provider() as p:
        yield p


@pytest.fixture
def sso(idp, settings):
    """opsboard configured for the provider: discovery from its issuer, the token endpoint through the proxy."""
    idp.tamper = None
    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER = idp.url
    settings.OIDC_OP_TOKEN_ENDPOINT = idp.token_url
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_PROVIDER_NAME = "Acme ID"
    settings.OIDC_TEAM_MAP = {"payments-devs": ("Payments",), "platform": ("Platform",)}
    settings.OIDC_OPERATOR_GROUPS = ("sre",)
    settings.OIDC_SUPERUSER_GROUPS = ()
    sso_provider.forget()
    yield idp
    sso_provider.forget()
