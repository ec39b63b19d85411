"""Shared fixtures: an emulated AWS over real HTTP, and helpers to build pipelines in it.

The database is whatever DATABASE_URL says (Postgres in CI) or the embedded SQLite default; Redis is
used where CELERY_BROKER_URL / LOCK_REDIS_URL point at one.
"""

import os

import pytest

from opsboard_demo.emulator import FaultProxy, MotoServer
from opsboard_demo.provision import PipelineSpec, provision
from pipelines import aws
from tests.redrive_support import eager, fast, volume_account, volume_register, volume_server  # noqa: F401
from tests.users import as_user  # noqa: F401

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def unaudited_logins():
    """Test clients log in (force_login) before nearly every test, and logins are audited: outside
    tests/audit (which connects it again) the login receiver is off, so the trail holds only the acts
    a test is about."""
    from django.contrib.auth.signals import user_logged_in

    from pipelines.ui import logins

    user_logged_in.disconnect(dispatch_uid=logins.LOGIN_UID)
    yield
    logins.connect()


@pytest.fixture(scope="session", autouse=True)
def one_live_request_at_a_time():
    """On SQLite, the live server's requests take turns (see tests.browser.OneRequestAtATime)."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        settings.MIDDLEWARE = ["tests.browser.OneRequestAtATime", *settings.MIDDLEWARE]
    yield


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = MotoServer(log_path=str(tmp_path_factory.mktemp("moto") / "moto.log")).start()
    # Anything that builds a client without an explicit endpoint also lands on the emulator.
    os.environ["AWS_ENDPOINT_URL"] = server.url
    yield server
    server.stop()


@pytest.fixture
def emulator(moto_server):
    """A fresh, empty emulated AWS for each test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def target(emulator):
    return aws.Target(region=REGION, endpoint_url=emulator.url)


@pytest.fixture
def account(db, emulator):
    from pipelines.models import AwsAccount

    return AwsAccount.objects.create(name="emulated", region=REGION, endpoint_url=emulator.url)


@pytest.fixture
def build(target):
    """Build a pipeline's AWS resources: build("orders", api=True) -> Provisioned."""

    def _build(name, **kwargs):
        return provision(target, PipelineSpec(name=name, **kwargs))

    return _build


@pytest.fixture
def register(account, build):
    """Build a pipeline in the emulator and register it in opsboard through discovery."""
    from pipelines.models import Pipeline
    from pipelines.registry.discovery import discover, store_discovery

    def _register(name, account_=None, **kwargs):
        acct = account_ or account
        made = build(name, **kwargs)
        found = discover(acct.target(), made.queue_url, "rest" if made.api_id else "", made.api_id, made.api_stage)
        p = Pipeline(
            name=name,
            account=acct,
            api_id=made.api_id,
            api_kind="rest" if made.api_id else "",
            api_stage=made.api_stage,
            api_log_group=made.api_log_group,
        )
        store_discovery(p, found)
        p.save()
        return p

    return _register


@pytest.fixture
def fault_proxy(emulator):
    with FaultProxy(emulator.url) as proxy:
        yield proxy


@pytest.fixture
def proxied_account(db, fault_proxy):
    from pipelines.models import AwsAccount

    return AwsAccount.objects.create(name="proxied", region=REGION, endpoint_url=fault_proxy.url)


@pytest.fixture
def page(live_server):
    """A page in headless Chromium, against the live test server."""
    from playwright.sync_api import sync_playwright

    from tests.browser import ARGS, CHROMIUM, SHOTS

    # Playwright's sync API runs an event loop in this thread; the ORM calls in the tests are safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 900})
            pg.set_default_timeout(20_000)
            yield pg
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
