"""Helpers for the audit tests: the one entry an act wrote, and a superuser's client from a known address."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from pipelines.models import AuditEntry

ADDRESS = "198.51.100.7"


def only(action) -> AuditEntry:
    """The single entry of `action`, failing if the act wrote none or more than one."""
    entries = list(AuditEntry.objects.filter(action=action))
    assert len(entries) == 1, [(e.action, e.detail) for e in AuditEntry.objects.all()]
    return entries[0]


def who(entry: AuditEntry) -> tuple:
    return entry.action, entry.through, entry.username, entry.pipeline_name, entry.remote_addr


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", "pw-for-tests-1")


@pytest.fixture
def root(superuser):
    """A superuser's client whose requests come from ADDRESS."""
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(superuser)
    return client
