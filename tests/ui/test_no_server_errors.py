"""No input an operator can send gives a server error: every query parameter of the operator pages, and
the forms that refuse bad values before anything reaches AWS, answer a page, a redirect or a 4xx.

The pipeline here has no DLQ, consumer or API, so no view has an AWS call to make; a guard fails the test
if one is made anyway. Forms that would act on AWS with valid input (a trace lookup, a redrive, a delete)
are sent only input they refuse first.
"""

from datetime import UTC, timedelta, timezone

import botocore.client
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelines.clock import now
from pipelines.models import AwsAccount, Incident, Pipeline, RuleKind, Severity
from pipelines.trace import logs

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

#: Text a browser can send: any character but lone surrogates, which cannot be encoded in a URL.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
EDGES = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1e309",
        "nan",
        "99999999999999999999",
        "9" * 400,
        "custom",
        "1h",
        "30d",
        "0001-01-01T00:00+14:00",
        "0001-01-01T00:00",
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59.999999",
        "2026-02-30T08:00",
        "Pacific/Kiritimati",
        "Asia/Tokyo",
        "America",
        "../../etc/passwd",
        "UTC/",
        "\x00",
        "٣",
        '" ?ERROR "',
        "{ $.x = 1 }",
    ]
)
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14)), None])
MOMENTS = st.datetimes(timezones=OFFSETS).map(lambda d: d.isoformat())
VALUES = st.one_of(TEXT, EDGES, MOMENTS, st.integers().map(str))
PARAM = st.one_of(st.none(), VALUES)


def query(**params) -> dict:
    """The query string of one request: the parameters given a value (None: left out)."""
    return {k: v for k, v in params.items() if v is not None}


@pytest.fixture
def no_aws(monkeypatch):
    """Fail on any AWS API call: these pages must answer without one."""

    def refuse(self, operation, params):
        raise AssertionError(f"AWS was called: {operation}")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)


@pytest.fixture
def site(db, no_aws):
    """A superuser's client, one pipeline without a DLQ, consumer or API, and an open incident on it."""
    user = User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1")
    client = Client()
    client.force_login(user)
    account = AwsAccount.objects.create(name="acct", region="us-east-1")
    pipeline = Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        queue_name="orders",
        retention_period=345600,
        last_sync_at=now(),
    )
    incident = Incident.objects.create(
        pipeline=pipeline,
        rule=RuleKind.BACKLOG,
        severity=Severity.WARNING,
        opened_at=now() - timedelta(minutes=10),
        summary="orders: backlog",
    )
    return {"client": client, "pipeline": pipeline, "incident": incident}


def assert_answered(response):
    assert response.status_code < 500, response.content[:500]


def _is_valid_id(value: str) -> bool:
    try:
        logs.clean_id(value)
    except logs.TraceInputError:
        return False
    return True


INVALID_IDS = st.one_of(VALUES, st.text(min_size=129, max_size=1100)).filter(lambda v: not _is_valid_id(v))


# --- GET: query parameters ---------------------------------------------------------------------------


@FUZZ
@given(account=PARAM, health=PARAM, other=PARAM)
def test_it_answers_any_overview_filter(site, account, health, other):
    params = query(account=account, health=health, q=other)
    assert_answered(site["client"].get(reverse("admin:index"), params))
    assert_answered(site["client"].get(reverse("admin:overview_rows"), params))


TIMES = st.one_of(st.none(), MOMENTS, VALUES)
ZONES = st.one_of(st.none(), st.timezone_keys(), VALUES)


@FUZZ
@given(range_=PARAM, start=TIMES, end=TIMES, tz=ZONES)
@example(range_="custom", start="0001-01-01T00:00+14:00", end=None, tz=None)
@example(range_=None, start="2026-01-01T00:00", end="9999-12-31T23:59-14:00", tz=None)
@example(range_="custom", start="0001-01-01T00:00", end=None, tz="Asia/Tokyo")
@example(range_="custom", start="0001-01-01T00:00Z", end="0001-06-01T00:00Z", tz=None)
def test_it_answers_any_chart_range(site, range_, start, end, tz):
    url = reverse("admin:pipelines_pipeline_series", args=[site["pipeline"].pk])
    response = site["client"].get(url, query(range=range_, start=start, end=end, tz=tz))
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert response.json()["error"].endswith((".", ")"))


@FUZZ
@given(range_=PARAM)
def test_it_answers_any_range_on_the_pipeline_page(site, range_):
    url = reverse("admin:pipelines_pipeline_dashboard", args=[site["pipeline"].pk])
    assert_answered(site["client"].get(url, query(range=range_)))


@FUZZ
@given(ident=PARAM, pipeline=PARAM, hours=PARAM, lookup=PARAM)
def test_it_answers_any_trace_link(site, ident, pipeline, hours, lookup):
    params = query(id=ident, pipeline=pipeline, hours=hours)
    assert_answered(site["client"].get(reverse("admin:trace"), params))
    if lookup is not None:
        assert_answered(site["client"].get(reverse("admin:trace"), {**params, "lookup": lookup}))


@FUZZ
@given(account=PARAM, health=PARAM, nxt=PARAM)
def test_it_answers_any_incident_strip_query(site, account, health, nxt):
    url = reverse("admin:incident_strip")
    assert_answered(site["client"].get(url, query(account=account, health=health, next=nxt)))


@FUZZ
@given(name=TEXT, value=PARAM)
def test_it_answers_any_query_on_the_dlq_pages(site, name, value):
    pk = site["pipeline"].pk
    params = query(**{name or "x": value})
    for page in ("pipelines_pipeline_dlq", "pipelines_pipeline_dlq_redrive", "pipelines_pipeline_dlq_purge"):
        assert_answered(site["client"].get(reverse(f"admin:{page}", args=[pk]), params))


# --- POST: forms that refuse before calling AWS ------------------------------------------------------


@FUZZ
@given(ident=INVALID_IDS, pipeline=PARAM, hours=PARAM)
def test_it_refuses_any_invalid_trace_form_with_a_page(site, ident, pipeline, hours):
    response = site["client"].post(reverse("admin:trace"), query(id=ident, pipeline=pipeline, hours=hours))
    assert response.status_code == 200  # the form again, with its errors; nothing was looked up


@FUZZ
@given(count=PARAM)
def test_it_answers_any_peek_count(site, count):
    url = reverse("admin:pipelines_pipeline_dlq", args=[site["pipeline"].pk])
    assert_answered(site["client"].post(url, query(count=count)))


@FUZZ
@given(
    destination=PARAM,
    destination_url=PARAM,
    rate=PARAM,
    filter_kind=PARAM,
    filter_attribute=PARAM,
    filter_value=PARAM,
    ids=PARAM,
    dry_run=PARAM,
    token=PARAM,
)
def test_it_answers_any_redrive_form(site, **fields):
    # max_messages is left out: its checks are another finding's.
    url = reverse("admin:pipelines_pipeline_dlq_redrive", args=[site["pipeline"].pk])
    assert_answered(site["client"].post(url, {**query(**fields), "confirm": "1"}))
    assert_answered(site["client"].post(url, query(ids=fields["ids"])))


@FUZZ
@given(ids=PARAM, confirm_name=PARAM, token=PARAM, confirm=st.booleans())
def test_it_answers_any_delete_or_purge_form(site, ids, confirm_name, token, confirm):
    pk = site["pipeline"].pk
    fields = {**query(ids=ids, confirm_name=confirm_name, token=token), **({"confirm": "1"} if confirm else {})}
    assert_answered(site["client"].post(reverse("admin:pipelines_pipeline_dlq_delete", args=[pk]), fields))
    assert_answered(site["client"].post(reverse("admin:pipelines_pipeline_dlq_purge", args=[pk]), fields))


#: Any `next`: a path, a bare word such as "0" (once reversed as a view name: a server error), or junk.
NEXT_VALUES = st.one_of(st.none(), VALUES, VALUES.map(lambda v: "/" + v))


@FUZZ
@given(nxt=NEXT_VALUES, verb=st.sampled_from(["acknowledge", "resolve"]))
@example(nxt="0", verb="acknowledge")
def test_it_answers_any_next_address_on_the_incident_buttons(site, nxt, verb):
    url = reverse(f"admin:incident_{verb}", args=[site["incident"].pk])
    assert_answered(site["client"].post(url, query(next=nxt)))
