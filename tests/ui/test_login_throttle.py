"""Login throttling: wrong passwords for one user name from one address lock that pair out for a while."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client, override_settings

LOGIN = "/admin/login/"


def attempt(client, username, password, ip="203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)


@pytest.fixture
def ops(db):
    return User.objects.create_superuser("ops", "ops@example.com", "right-password-1")


@pytest.mark.django_db
def test_after_five_wrong_passwords_even_the_right_one_is_refused(ops):
    client = Client()
    for _ in range(4):
        response = attempt(client, "ops", "guess")
        assert response.status_code == 200  # the login form again, with its error
    assert attempt(client, "ops", "guess").status_code == 429  # the fifth locks
    locked = attempt(client, "ops", "right-password-1")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed logins" in text and "5 wrong passwords" in text and "15 min" in text
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_lockout_holds_only_that_user_name_from_that_address(ops):
    User.objects.create_superuser("other", "other@example.com", "other-password-1")
    client = Client()
    for _ in range(5):
        attempt(client, "ops", "guess")
    assert attempt(Client(), "ops", "right-password-1", ip="198.51.100.9").status_code == 302
    assert attempt(Client(), "other", "other-password-1").status_code == 302


@pytest.mark.django_db
def test_a_right_password_before_the_limit_resets_the_count(ops):
    for _ in range(4):
        attempt(Client(), "ops", "guess")
    assert attempt(Client(), "ops", "right-password-1").status_code == 302
    for _ in range(4):
        attempt(Client(), "ops", "guess")
    assert attempt(Client(), "ops", "right-password-1").status_code == 302


@pytest.mark.django_db
@override_settings(AXES_COOLOFF_TIME=timedelta(minutes=15))
def test_the_lockout_ends_after_the_cool_off(ops):
    for _ in range(5):
        attempt(Client(), "ops", "guess")
    assert attempt(Client(), "ops", "right-password-1").status_code == 429
    # Sixteen minutes pass since the last failed attempt.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))
    assert attempt(Client(), "ops", "right-password-1").status_code == 302
