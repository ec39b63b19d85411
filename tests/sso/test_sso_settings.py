"""Single sign-on's settings: read from the environment, and a bad configuration stops with a sentence
saying what to set (checked in-process on settings_sso.read, and once end to end through manage.py)."""

from __future__ import annotations

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured

from opsboard import settings_sso
from opsboard.settings import _bool, _env
from tests.test_settings import run_manage

GOOD = {
    "OIDC_ISSUER": "https://login.example.com/realms/ops/",
    "OIDC_RP_CLIENT_ID": "opsboard",
    "OIDC_RP_CLIENT_SECRET": "s3cret",
}
ALL = [
    "OIDC_ISSUER",
    "OIDC_RP_CLIENT_ID",
    "OIDC_RP_CLIENT_SECRET",
    "OIDC_RP_SIGN_ALGO",
    "OIDC_SCOPES",
    "OIDC_TEAM_MAP",
    "OIDC_OPERATOR_GROUPS",
    "OIDC_SUPERUSER_GROUPS",
    "OIDC_LEEWAY_SECONDS",
    "OIDC_PROVIDER_NAME",
    "LOCAL_PASSWORDS",
    *settings_sso.ENDPOINTS,
]


def read(monkeypatch, **values):
    for name in ALL:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return settings_sso.read(environ.Env(), _env, _bool)


def test_it_is_off_with_nothing_set(monkeypatch):
    s = read(monkeypatch)
    assert not s["OIDC_ENABLED"] and s["LOCAL_PASSWORDS"] and s["OIDC_PROVIDER_NAME"] == "single sign-on"


def test_it_reads_a_full_configuration_with_its_defaults(monkeypatch):
    s = read(
        monkeypatch,
        **GOOD,
        OIDC_TEAM_MAP="payments-devs=Payments; platform = Platform team;ops=Payments",
        OIDC_OPERATOR_GROUPS="sre, oncall",
        LOCAL_PASSWORDS="false",
    )
    assert s["OIDC_ENABLED"] and s["OIDC_ISSUER"] == "https://login.example.com/realms/ops"
    assert (s["OIDC_RP_SIGN_ALGO"], s["OIDC_RP_SCOPES"], s["OIDC_GROUPS_CLAIM"]) == (
        "RS256",
        "openid email profile groups",
        "groups",
    )
    assert s["OIDC_TEAM_MAP"] == {"payments-devs": ("Payments",), "platform": ("Platform team",), "ops": ("Payments",)}
    assert s["OIDC_OPERATOR_GROUPS"] == ("sre", "oncall") and s["LOCAL_PASSWORDS"] is False


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"OIDC_RP_CLIENT_ID": "opsboard", "OIDC_RP_CLIENT_SECRET": "x"}, "OIDC_ISSUER is missing"),
        ({"OIDC_OP_TOKEN_ENDPOINT": "https://idp/token"}, "OIDC_ISSUER is missing"),
        ({"OIDC_ISSUER": "login.example.com"}, "OIDC_ISSUER is missing or not a URL"),
        ({"OIDC_ISSUER": "https://idp.example"}, "needs OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET"),
        ({**GOOD, "OIDC_RP_SIGN_ALGO": "HS256"}, "OIDC_RP_SIGN_ALGO is 'HS256'"),
        ({**GOOD, "OIDC_SCOPES": "email profile"}, "OIDC_SCOPES must include openid"),
        ({**GOOD, "OIDC_TEAM_MAP": "payments-devs"}, "OIDC_TEAM_MAP holds 'payments-devs'"),
        ({**GOOD, "OIDC_LEEWAY_SECONDS": "3600"}, "OIDC_LEEWAY_SECONDS must be"),
        ({**GOOD, "OIDC_LEEWAY_SECONDS": "soon"}, "OIDC_LEEWAY_SECONDS is malformed"),
        ({**GOOD, "OIDC_OP_JWKS_ENDPOINT": "/jwks"}, "OIDC_OP_JWKS_ENDPOINT is not an http(s) URL"),
        ({"LOCAL_PASSWORDS": "false"}, "nobody could log in"),
        ({"LOCAL_PASSWORDS": "nope"}, "LOCAL_PASSWORDS is malformed"),
    ],
)
def test_it_stops_on_a_bad_configuration_with_what_to_set(monkeypatch, values, words):
    with pytest.raises(ImproperlyConfigured, match=None) as caught:
        read(monkeypatch, **values)
    assert words in str(caught.value)


def test_manage_py_stops_with_the_sentence():
    res = run_manage("check", env_overrides={"DEBUG": "true", "OIDC_ISSUER": "https://idp.example"})
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "needs OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET" in res.stderr


def test_manage_py_commands_work_with_passwords_off():
    res = run_manage("check", env_overrides={"DEBUG": "true", **GOOD, "LOCAL_PASSWORDS": "false"})
    assert res.returncode == 0, res.stderr
