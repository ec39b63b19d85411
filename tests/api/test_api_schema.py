"""The published schema is valid OpenAPI, needs a signed-in user or a token, and its docs page works
offline (Swagger UI from opsboard's own static files) without showing anything to a stranger."""

from openapi_spec_validator import validate
from rest_framework.test import APIClient

from tests.api.conftest import make_user, token_client


def test_it_publishes_a_valid_openapi_schema(spec):
    validate(spec)
    assert "/api/v1/pipelines/" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_it_declares_json_errors_on_every_operation(spec):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status in ("401", "403", "429"):
                assert status in op["responses"], f"{method} {path} lacks {status}"
                assert op["responses"][status]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }


def test_it_serves_the_schema_only_to_a_caller_it_knows(db):
    anonymous = APIClient().get("/api/v1/schema/")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    response = token_client(make_user("ann"), ["view"]).get("/api/v1/schema/")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_it_sends_a_stranger_from_the_docs_page_to_the_login(client, db):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_shows_the_docs_page_from_local_files_to_a_signed_in_user(client, db):
    client.force_login(make_user("ann"))
    page = client.get("/api/v1/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200
    assert "/api/v1/schema/" in script.content.decode()
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
