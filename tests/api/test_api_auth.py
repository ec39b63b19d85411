"""Tokens: a bad, expired or revoked one is a 401 with the Bearer challenge; a token's scopes narrow
its user; its last use is recorded at most once a minute. Errors are JSON; rate limits answer 429."""

from datetime import timedelta

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from pipelines import clock
from pipelines.models import ApiToken
from tests.api.conftest import check, make_user, token_client


@pytest.fixture
def ann(db):
    return make_user("ann", is_superuser=True)


def assert_401(response):
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["status"] == 401


def test_it_refuses_a_request_without_a_token(db):
    response = APIClient().get("/api/v1/pipelines/")
    assert_401(response)
    assert response.json()["error"]["code"] == "not_authenticated"


def test_it_refuses_an_unknown_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer obt_0123456789ab_nope")
    response = client.get("/api/v1/pipelines/")
    assert_401(response)
    assert response.json()["error"]["message"] == "The API token is unknown, expired or revoked."


def test_it_refuses_an_expired_token(ann):
    client = token_client(ann, ["view"])
    ApiToken.objects.filter(pk=client.token.pk).update(expires_at=clock.now() - timedelta(seconds=1))
    assert_401(client.get("/api/v1/pipelines/"))


def test_it_refuses_a_revoked_token(ann):
    client = token_client(ann, ["view"])
    assert client.get("/api/v1/pipelines/").status_code == 200
    client.token.revoke()
    assert_401(client.get("/api/v1/pipelines/"))


def test_it_refuses_a_token_of_a_deactivated_user(ann):
    client = token_client(ann, ["view"])
    ann.is_active = False
    ann.save()
    assert_401(client.get("/api/v1/pipelines/"))


def test_it_refuses_what_the_token_scopes_do_not_cover_even_for_a_superuser(ann, spec):
    client = token_client(ann, ["trace"])
    response = client.get("/api/v1/pipelines/")
    assert check(spec, response)["error"]["code"] == "permission_denied"
    assert response.status_code == 403


def test_it_records_the_tokens_last_use_at_most_once_a_minute(ann, monkeypatch):
    client = token_client(ann, ["view"])
    t0 = clock.now()
    monkeypatch.setattr(clock, "now", lambda: t0)
    client.get("/api/v1/pipelines/", REMOTE_ADDR="10.1.2.3")
    client.token.refresh_from_db()
    assert (client.token.last_used_at, client.token.last_used_from) == (t0, "10.1.2.3")
    monkeypatch.setattr(clock, "now", lambda: t0 + timedelta(seconds=30))
    client.get("/api/v1/pipelines/", REMOTE_ADDR="10.9.9.9")
    client.token.refresh_from_db()
    assert client.token.last_used_at == t0  # not rewritten within the minute
    monkeypatch.setattr(clock, "now", lambda: t0 + timedelta(seconds=61))
    client.get("/api/v1/pipelines/", REMOTE_ADDR="10.9.9.9")
    client.token.refresh_from_db()
    assert (client.token.last_used_at, client.token.last_used_from) == (t0 + timedelta(seconds=61), "10.9.9.9")


def test_it_names_unknown_fields_in_a_request_body(ann, spec):
    response = token_client(ann).post("/api/v1/silences/", {"pipeline": 1, "ends": "tomorrow"}, format="json")
    error = check(spec, response, "post")["error"]
    assert response.status_code == 400
    assert error["code"] == "invalid"
    assert "ends" in error["fields"]
    assert "Unknown field: ends" in error["fields"]["ends"][0]


def test_it_answers_bad_json_with_a_json_400(ann):
    response = token_client(ann).post("/api/v1/traces/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_it_answers_a_wrong_method_with_a_json_405(ann):
    response = token_client(ann).delete("/api/v1/pipelines/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_it_answers_an_unknown_api_url_with_a_json_404(ann):
    response = token_client(ann).get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "status": 404,
        "code": "not_found",
        "message": "No API endpoint at /api/v1/nothing-here/.",
        "fields": {},
    }


@override_settings(API_RATE="3/min")
def test_it_limits_each_token_to_the_api_rate(ann, spec):
    first, second = token_client(ann, ["view"]), token_client(ann, ["view"])
    assert [first.get("/api/v1/pipelines/").status_code for _ in range(3)] == [200] * 3
    response = first.get("/api/v1/pipelines/")
    assert response.status_code == 429
    assert check(spec, response)["error"]["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert second.get("/api/v1/pipelines/").status_code == 200  # another token has its own count


def test_it_checks_csrf_for_a_session_user(ann):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(ann)
    assert client.get("/api/v1/pipelines/").status_code == 200
    response = client.post("/api/v1/traces/", {"id": "abc"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
