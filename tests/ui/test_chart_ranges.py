"""Chart ranges an operator can trust: time zones, shareable custom ranges, a default that fits the
history a pipeline has, charts only for the parts a pipeline has, sparklines that say what they cover."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from pipelines.models import AwsAccount, MetricRollup, MetricSample, Pipeline
from pipelines.ui import charts, overview

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# --- parse_range ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start",
    ["2026-11-26T06:00-05:00", "2026-11-26T11:00Z", "2026-11-26T16:30+05:30", "2026-11-26T11:00:00.000+00:00"],
)
def test_it_reads_custom_times_with_their_offset(start):
    a, b, name = charts.parse_range("custom", start, None, T)
    assert (a, b, name) == (datetime(2026, 11, 26, 11, 0, tzinfo=UTC), T, "custom")
    assert a.utcoffset() == timedelta(0)


def test_a_plus_sign_turned_into_a_space_by_a_hand_typed_url_still_reads_as_an_offset():
    a, _, _ = charts.parse_range("custom", "2026-11-26T16:30 05:30", None, T)
    assert a == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)


def test_it_reads_times_without_an_offset_in_the_named_zone():
    # 06:00 in New York in November is 11:00 UTC; in July (daylight saving) 06:00 is 10:00 UTC.
    a, b, _ = charts.parse_range("custom", "2026-11-26T06:00", "2026-11-26T06:30", T, tz="America/New_York")
    assert (a, b) == (datetime(2026, 11, 26, 11, 0, tzinfo=UTC), datetime(2026, 11, 26, 11, 30, tzinfo=UTC))
    a, _, _ = charts.parse_range("custom", "2026-07-01T06:00", "2026-07-01T07:00", T, tz="America/New_York")
    assert a == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    # An explicit offset wins over the zone; without either, UTC (what older links meant).
    a, _, _ = charts.parse_range("custom", "2026-11-26T06:00+00:00", None, T, tz="America/New_York")
    assert a.hour == 6
    a, _, _ = charts.parse_range("custom", "2026-11-26T06:00", None, T)
    assert a == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def test_it_reads_unix_seconds_and_milliseconds():
    start = int((T - timedelta(hours=2)).timestamp())
    a, b, _ = charts.parse_range("custom", str(start), str(start + 3600), T)
    assert (a, b - a) == (T - timedelta(hours=2), timedelta(hours=1))
    a, _, _ = charts.parse_range("custom", str(start * 1000), None, T)
    assert a == T - timedelta(hours=2)


@pytest.mark.parametrize(
    ("args", "kwargs", "sentence"),
    [
        (("custom", None, None), {}, "Enter the start of the custom range"),
        (("custom", "yesterday", None), {}, "could not read the start 'yesterday'"),
        (("custom", "2026-11-20T08:00", "soon"), {}, "could not read the end 'soon'"),
        (("custom", "2026-13-40T08:00", None), {}, "is not a real date and time"),
        (("custom", "2026-11-20T08:00", None), {"tz": "Mars/Olympus_Mons"}, "Unknown time zone 'Mars/Olympus_Mons'"),
        (("custom", "2026-11-27T08:00Z", None), {}, "starts after now"),
        (("custom", "99999999999999999999", None), {}, "is not a real date and time"),
        (("custom", "2026-11-21T08:00-05:00", "2026-11-21T08:00-04:00"), {}, "start before it ends"),
        (("forever", None, None), {}, "Unknown range 'forever'"),
    ],
)
def test_bad_custom_ranges_say_what_to_do(args, kwargs, sentence):
    with pytest.raises(ValueError, match=sentence):
        charts.parse_range(*args, T, **kwargs)


def test_an_unknown_zone_is_refused_even_for_a_named_range():
    with pytest.raises(ValueError, match="Unknown time zone"):
        charts.parse_range("6h", None, None, T, tz="Not/AZone")


# --- the page and its JSON -------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    return client


@pytest.fixture
def pipeline(db):
    account = AwsAccount.objects.create(name="acct", region="us-east-1")
    return Pipeline.objects.create(
        name="orders",
        account=account,
        queue_url="http://h/123456789012/orders",
        queue_name="orders",
        retention_period=345600,
        last_sync_at=T,
    )


def history(p, hours, end=T):
    MetricSample.objects.bulk_create(
        [MetricSample(pipeline=p, minute=end - timedelta(minutes=m), visible=m) for m in range(int(hours * 60))]
    )


def test_the_series_json_reads_an_offset_and_a_zone(staff_client, pipeline, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    history(pipeline, 2)
    url = reverse("admin:pipelines_pipeline_series", args=[pipeline.pk])
    # The last local hour of a New York browser, sent with its offset: data, in UTC.
    data = staff_client.get(url, {"range": "custom", "start": "2026-11-26T06:00-05:00"}).json()
    assert data["start"] == "2026-11-26T11:00:00+00:00" and data["end"] == T.isoformat()
    assert data["range"] == "custom" and any(v is not None for v in data["series"]["visible"])
    data = staff_client.get(url, {"range": "custom", "start": "2026-11-26T06:00", "tz": "America/New_York"}).json()
    assert data["start"] == "2026-11-26T11:00:00+00:00"
    bad = staff_client.get(url, {"range": "custom", "start": "2026-11-26T06:00", "tz": "Atlantis"})
    assert bad.status_code == 400 and "Unknown time zone 'Atlantis'" in bad.json()["error"]


@pytest.mark.parametrize(("hours", "expected"), [(0, "24h"), (0.5, "1h"), (4, "6h"), (20, "24h"), (72, "24h")])
def test_the_page_opens_on_the_range_that_fits_the_history(staff_client, pipeline, hours, expected, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    history(pipeline, hours)
    page = staff_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])).content.decode()
    assert f'data-range="{expected}"' in page
    assert charts.default_range(pipeline, T) == expected
    asked = staff_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk]), {"range": "7d"})
    assert 'data-range="7d"' in asked.content.decode()


def test_only_hourly_rollups_left_still_count_as_history(pipeline):
    MetricRollup.objects.create(pipeline=pipeline, hour=T - timedelta(days=20), visible_max=3)
    assert charts.default_range(pipeline, T) == "24h"
    MetricRollup.objects.all().delete()
    MetricRollup.objects.create(pipeline=pipeline, hour=T - timedelta(hours=3), visible_max=3)
    assert charts.default_range(pipeline, T) == "6h"


def test_lambda_and_api_charts_are_left_out_when_the_pipeline_has_no_consumer_or_api(staff_client, pipeline):
    url = reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])
    page = staff_client.get(url).content.decode()
    assert "chart-backlog" in page and "chart-age" in page and "chart-throughput" in page
    assert "chart-lambda" not in page and "chart-duration" not in page and "chart-api" not in page
    pipeline.function_name, pipeline.api_id = "orders-consumer", "abc123"
    pipeline.save()
    page = staff_client.get(url).content.decode()
    assert "chart-lambda" in page and "chart-duration" in page and "chart-api" in page


# --- sparklines ------------------------------------------------------------------------------------


def points(svg):
    return [float(xy.split(",")[0]) for xy in svg.split('points="')[1].split('"')[0].split()]


def test_a_short_history_fills_the_sparkline_and_says_how_long_it_is():
    four_hours = [None] * 20 + [10, 20, 30, 40]
    svg = overview.sparkline_svg(four_hours, 50, "#000")
    xs = points(svg)
    assert xs[0] <= 2 and xs[-1] >= 118, "four hours span the whole width, not its last sixth"
    assert 'aria-label="backlog, last 4 h (all its history), peak 50"' in svg
    full = overview.sparkline_svg(list(range(24)), 30, "#000")
    assert 'aria-label="backlog, last 24 h, peak 30"' in full


def test_the_overview_says_when_a_sparkline_covers_less_than_24_hours(staff_client, pipeline):
    pipeline.sparkline = [None] * 20 + [10, 20, 30, 40]
    pipeline.backlog = 50
    pipeline.save()
    page = staff_client.get(reverse("admin:index")).content.decode()
    assert "last 4 h" in page


# --- the ends of the calendar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "tz"),
    [
        ("0001-01-01T00:00+14:00", None, None),
        ("0001-01-01T00:00", None, "Asia/Tokyo"),
        ("2026-11-26T00:00", "9999-12-31T23:59-14:00", None),
        ("2026-11-26T00:00", "9999-12-31T23:59", "Pacific/Pago_Pago"),
    ],
)
def test_a_custom_range_past_the_ends_of_the_calendar_says_so(start, end, tz):
    with pytest.raises(ValueError, match="outside the dates a chart can show"):
        charts.parse_range("custom", start, end, T, tz)


@pytest.mark.parametrize(
    "params",
    [
        {"range": "custom", "start": "0001-01-01T00:00+14:00"},
        {"range": "custom", "start": "0001-01-01T00:00", "tz": "Asia/Tokyo"},
        {"range": "custom", "start": "2026-11-26T00:00", "end": "9999-12-31T23:59-14:00"},
        {"range": "custom", "start": "2026-11-26T00:00", "tz": "America"},
    ],
)
def test_the_series_json_answers_a_range_past_the_calendar_with_a_400(staff_client, pipeline, params, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    response = staff_client.get(reverse("admin:pipelines_pipeline_series", args=[pipeline.pk]), params)
    assert response.status_code == 400 and response.json()["error"].endswith(".")


@pytest.mark.parametrize(("start", "end"), [("0001-01-01T00:00Z", "0001-06-01T00:00Z"), ("0001-01-01", "0001-01-02")])
def test_the_series_json_draws_an_empty_range_in_year_one(staff_client, pipeline, start, end, monkeypatch):
    monkeypatch.setattr("pipelines.clock.now", lambda: T)
    url = reverse("admin:pipelines_pipeline_series", args=[pipeline.pk])
    data = staff_client.get(url, {"range": "custom", "start": start, "end": end}).json()
    assert data["t"] and all(v is None for v in data["series"]["visible"])
