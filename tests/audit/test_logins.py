"""Logins on the audit trail: who logged in, how and from where; a refused login with the user name
tried, never the password."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from pipelines.models import AuditAction, AuditEntry
from pipelines.ui import logins
from tests.audit.support import only

LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def audited_logins():
    """The suite turns the login receiver off elsewhere (tests/conftest.py); here it is on."""
    logins.connect()


@pytest.fixture
def ops(db):
    return User.objects.create_superuser("ops", "ops@example.com", "right-Passw0rd-1")


def attempt(username, password):
    return Client().post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR="::ffff:203.0.113.9"
    )


def test_it_audits_a_login_with_its_method_and_address(ops):
    assert attempt("ops", "right-Passw0rd-1").status_code == 302
    entry = only(AuditAction.LOGIN)
    assert (entry.user, entry.username, entry.remote_addr, entry.through) == (ops, "ops", "203.0.113.9", "ui")
    assert entry.detail == {"method": "password"}


def test_it_audits_a_refused_login_with_the_name_tried_and_not_the_password(ops):
    assert attempt("ops", "wrong-Passw0rd-2").status_code == 200
    attempt("nobody-here", "another-Guess-3")
    entries = AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED).order_by("pk")
    assert [(e.user, e.remote_addr, e.detail) for e in entries] == [
        (None, "203.0.113.9", {"username": "ops"}),
        (None, "203.0.113.9", {"username": "nobody-here"}),
    ]
    stored = json.dumps([e.detail for e in AuditEntry.objects.all()])
    assert "wrong-Passw0rd-2" not in stored and "another-Guess-3" not in stored
    assert not AuditEntry.objects.filter(action=AuditAction.LOGIN).exists()


def test_it_names_how_another_backend_logged_someone_in():
    assert logins.login_method("django.contrib.auth.backends.ModelBackend") == "password"
    assert logins.login_method("pipelines.access.TeamBackend") == "pipelines.access.TeamBackend"
    assert logins.login_method("no.such.Backend") == "no.such.Backend"
