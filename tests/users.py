"""Staff users with chosen pipelines permissions, for the permission tests (the `as_user` fixture is
registered in conftest.py)."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client


def staff(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", "pw-for-tests-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="pipelines", codename__in=perms))
    return user


@pytest.fixture
def as_user(db):
    """A client logged in as a new staff user with the given permissions (`csrf=True` enforces CSRF checks)."""

    def _as(username, *perms, csrf=False):
        c = Client(enforce_csrf_checks=csrf)
        c.force_login(staff(username, *perms))
        return c

    return _as
