"""The API's test world: pipelines in the emulator, users in each role, clients with tokens, and a
check that every response matches the published schema."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import caches
from drf_spectacular.generators import SchemaGenerator
from openapi_schema_validator import OAS31Validator
from rest_framework.test import APIClient

from pipelines.models import ApiToken, Pipeline, Team, TokenScope
from tests.redrive_support import fill

ALL_SCOPES = list(TokenScope.values)
#: Each role: how the user gets its permissions.
ROLES = ("superuser", "operator", "member", "viewer", "outsider")


@dataclass
class World:
    orders: Pipeline  # owned by the team "money"
    other: Pipeline  # owned by nobody
    users: dict[str, User] = field(default_factory=dict)


def make_user(name: str, **extra) -> User:
    return User.objects.create_user(name, f"{name}@example.com", "pw-for-tests-1", is_staff=True, **extra)


@pytest.fixture
def world(register, target) -> World:
    """orders (with 3 DLQ messages) owned by a team; other owned by none; a user per role."""
    orders, other = register("orders"), register("other")
    fill(target, orders.dlq_url, 3)
    fill(target, other.dlq_url, 2)
    w = World(orders=orders, other=other)
    w.users["superuser"] = make_user("root", is_superuser=True)
    w.users["operator"] = make_user("olga")
    w.users["operator"].groups.add(Group.objects.get(name="operator"))
    w.users["member"] = make_user("mia")
    money = Team.objects.create(name="money", capabilities=["view", "peek", "trace", "redrive", "acknowledge"])
    money.members.add(w.users["member"])
    money.pipelines.add(orders)
    w.users["viewer"] = make_user("vic")
    lookers = Team.objects.create(name="lookers", capabilities=["view"])
    lookers.members.add(w.users["viewer"])
    lookers.pipelines.add(orders)
    w.users["outsider"] = make_user("otto")
    return w


def token_client(user: User, scopes=None, **kwargs) -> APIClient:
    token, raw = ApiToken.issue(user, "tests", list(scopes or ALL_SCOPES), **kwargs)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.token = token
    client.raw = raw
    return client


@pytest.fixture
def client_for(world):
    """client_for(role, scopes=None): an API client with a token of that role's user."""
    return lambda role, scopes=None: token_client(world.users[role], scopes)


@pytest.fixture(autouse=True)
def fresh_throttle():
    caches["api"].clear()
    yield
    caches["api"].clear()


# --- the schema, and responses checked against it ---------------------------------------------------


@pytest.fixture(scope="session")
def spec() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operation(spec: dict, path: str, method: str) -> dict:
    for template, ops in spec["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return ops[method.lower()]
    raise AssertionError(f"{method} {path} is not in the schema")


def check(spec: dict, response, method: str = "get") -> dict:
    """Assert that `response` is one the schema declares for its operation, body included; its JSON."""
    path = response.wsgi_request.path
    op = _operation(spec, path, method)
    status = str(response.status_code)
    assert status in op["responses"], (
        f"{method.upper()} {path} answered {status}, not declared: {response.content[:300]}"
    )
    declared = op["responses"][status]
    body = response.json()
    schema = declared["content"]["application/json"]["schema"]
    OAS31Validator({**schema, "components": spec["components"]}).validate(body)
    return body
