"""Silences and maintenance windows: incidents still open and show as silenced, their notifications are
held, and the held one goes out once when the silence ends while the incident is still open."""

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from pipelines import tasks
from pipelines.alerting import deliveries, incidents, silences
from pipelines.alerting.rules import Finding
from pipelines.models import (
    AwsAccount,
    ChannelKind,
    Delivery,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    NotifyEvent,
    Pipeline,
    RuleKind,
    Severity,
    Silence,
    Weekday,
)
from tests.alerting import test_notify as notify
from tests.alerting.test_notify import T, channel, make_incident

# The notification tests' fixtures: a frozen clock at T (2026-11-26 12:00 UTC), SITE_URL, an account
# "prod" with the pipelines "orders" and "billing".
site, clock, account, pipeline, other = notify.site, notify.clock, notify.account, notify.pipeline, notify.other

HOUR = timedelta(hours=1)
SILENCES = reverse("admin:pipelines_silence_changelist")
ADD_SILENCE = reverse("admin:pipelines_silence_add")
ADD_WINDOW = reverse("admin:pipelines_maintenancewindow_add")


@pytest.fixture
def hooked(db):
    """A JSON webhook that routes every incident (its deliveries are counted, not sent)."""
    return channel("ops hook", ChannelKind.WEBHOOK, "https://hooks.example.com/ops")


def silence(reason="deploying v2", by="alice", starts=T, ends=T + HOUR, **matchers) -> Silence:
    return Silence.objects.create(starts_at=starts, ends_at=ends, reason=reason, created_by=by, **matchers)


def sent(incident, event=None) -> list[str]:
    rows = Delivery.objects.filter(incident=incident)
    return list((rows.filter(event=event) if event else rows).values_list("event", flat=True))


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def open_incident(p, rule=RuleKind.BACKLOG, severity=Severity.WARNING) -> Incident:
    """Open an incident the way the evaluator does (the opening notification included)."""
    report = incidents.EvalReport()
    return incidents.apply_finding(p, rule, Finding(severity, "backlog 5,000 above 1,000", 5000, 1000), None, T, report)


# --- holding ---------------------------------------------------------------------------------------------


def test_a_silence_on_a_pipeline_holds_its_opening_and_the_strip_says_silenced(
    pipeline, other, hooked, clock, admin_client
):
    silence(pipeline=pipeline)
    inc = open_incident(pipeline)
    assert inc.status == IncidentStatus.OPEN and sent(inc) == []  # it opens, nobody is paged
    inc.refresh_from_db()
    assert inc.held_event == NotifyEvent.OPENED and inc.held_since == T
    elsewhere = open_incident(other)
    assert sent(elsewhere) == ["opened"]  # another pipeline's incident is notified as usual

    page = text(admin_client.get(reverse("admin:index")))
    assert "silenced until 13:00 UTC (deploying v2, by alice)" in page
    assert page.count("silenced until") == 1
    panel = text(admin_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[pipeline.pk])))
    assert "silenced until 13:00 UTC (deploying v2, by alice)" in panel
    listing = text(admin_client.get(reverse("admin:pipelines_incident_changelist")))
    assert listing.count("silenced until 13:00 UTC (deploying v2, by alice)") == 1
    detail = text(admin_client.get(reverse("admin:pipelines_incident_change", args=[inc.pk])))
    assert "silenced until 13:00 UTC" in detail and "Opened, held since 2026-11-26 12:00 UTC" in detail


def test_an_incident_escalates_and_resolves_as_usual_while_silenced(pipeline, hooked, clock):
    silence(pipeline=pipeline)
    inc = open_incident(pipeline)
    report = incidents.EvalReport()
    worse = Finding(Severity.CRITICAL, "backlog 9,000 above 1,000", 9000, 1000)
    incidents.apply_finding(pipeline, RuleKind.BACKLOG, worse, inc, T + timedelta(minutes=1), report)
    assert report.escalated == [inc.pk]
    inc.refresh_from_db()
    assert inc.severity == Severity.CRITICAL and inc.held_event == NotifyEvent.OPENED  # opened still beats escalated
    incidents.apply_finding(pipeline, RuleKind.BACKLOG, None, inc, T + timedelta(minutes=10), report)
    inc.refresh_from_db()
    assert report.resolved == [inc.pk] and inc.status == IncidentStatus.RESOLVED
    assert sent(inc) == []  # nobody heard it open, so nobody hears it end


@pytest.mark.parametrize(
    "matchers, covered",
    [
        ({"rule": RuleKind.BACKLOG}, {"orders backlog", "billing backlog", "staging backlog"}),
        ({"rule": RuleKind.DLQ}, {"orders dlq"}),
        ({"pipeline": "orders", "rule": RuleKind.DLQ}, {"orders dlq"}),
        ({"account": "prod"}, {"orders backlog", "orders dlq", "billing backlog"}),
        ({"account": "staging"}, {"staging backlog"}),
        ({}, {"orders backlog", "orders dlq", "billing backlog", "staging backlog"}),
    ],
)
def test_a_silence_covers_what_every_matcher_it_sets_names(pipeline, other, hooked, clock, matchers, covered):
    staging = AwsAccount.objects.create(name="staging", region="us-east-1")
    lab = Pipeline.objects.create(name="lab", account=staging, queue_url="https://sqs.us-east-1.amazonaws.com/1/lab")
    names = {"orders": pipeline, "prod": pipeline.account, "staging": staging}
    silence(**{k: names.get(v, v) for k, v in matchers.items()})
    cases = {
        "orders backlog": make_incident(pipeline),
        "orders dlq": make_incident(pipeline, rule=RuleKind.DLQ),
        "billing backlog": make_incident(other),
        "staging backlog": make_incident(lab),
    }
    held = {name for name, inc in cases.items() if deliveries.enqueue(inc, "opened") == []}
    assert held == covered
    assert {name for name, inc in cases.items() if silences.covering(inc) is not None} == covered


def test_an_expired_or_upcoming_silence_holds_nothing(pipeline, hooked, clock):
    silence(starts=T - 2 * HOUR, ends=T)  # ended exactly now
    silence(starts=T + HOUR, ends=T + 2 * HOUR)
    assert sent(open_incident(pipeline)) == ["opened"]


# --- releasing -------------------------------------------------------------------------------------------


def test_the_held_notification_goes_out_once_when_the_silence_ends(pipeline, hooked, clock):
    s = silence(pipeline=pipeline)
    inc = open_incident(pipeline)
    assert deliveries.release_held() == 0 and sent(inc) == []  # still silenced
    stale = Incident.objects.get(pk=inc.pk)  # what a second worker read before the first released it

    clock[0] = s.ends_at
    assert deliveries.release_held() == 1
    assert deliveries.release(stale, clock[0]) is False  # the second worker: the hold is gone
    assert deliveries.release_held() == 0
    assert sent(inc) == ["opened"]
    inc.refresh_from_db()
    assert inc.held_event == "" and inc.held_since is None and inc.last_notified_at == s.ends_at


def test_an_event_after_the_silence_but_before_the_sweep_releases_the_held_opening_first(pipeline, hooked, clock):
    s = silence(pipeline=pipeline)
    inc = open_incident(pipeline)
    clock[0] = s.ends_at + timedelta(seconds=10)  # the silence is over; the minute's sweep has not run
    deliveries.enqueue(Incident.objects.get(pk=inc.pk), "escalated")
    assert sent(inc) == ["opened"]  # the channels hear the opening (as it is now), never "escalated" first
    assert deliveries.release_held() == 0 and sent(inc) == ["opened"]


def test_the_beat_sweep_releases_after_expire_now(pipeline, hooked, clock, admin_client):
    s = silence(pipeline=pipeline, ends=T + 24 * HOUR)
    inc = open_incident(pipeline)
    clock[0] = T + timedelta(minutes=20)
    res = admin_client.post(SILENCES, {"action": "expire_now", "_selected_action": [s.pk]}, follow=True)
    assert "Expired 1 silence(s)." in text(res)
    s.refresh_from_db()
    assert s.ends_at == clock[0]
    tasks.deliver_due_notifications()
    assert sent(inc) == ["opened"]
    tasks.deliver_due_notifications()
    assert sent(inc) == ["opened"]
    res = admin_client.post(SILENCES, {"action": "expire_now", "_selected_action": [s.pk]}, follow=True)
    assert "Expired 0 silence(s); 1 was over already." in text(res)


def test_nothing_goes_out_when_the_incident_resolved_during_the_silence(pipeline, hooked, clock):
    silence(pipeline=pipeline)
    inc = open_incident(pipeline)
    clock[0] = T + timedelta(minutes=30)
    assert incidents.resolve(inc, by="bob")
    clock[0] = T + 2 * HOUR
    assert deliveries.release_held() == 0
    assert sent(inc) == [] and Incident.objects.get(pk=inc.pk).held_event == ""


def test_an_acknowledged_incident_gets_nothing_when_the_silence_ends(pipeline, hooked, clock):
    silence(pipeline=pipeline)
    inc = open_incident(pipeline)
    assert incidents.acknowledge(inc, by="bob")
    clock[0] = T + 2 * HOUR
    assert deliveries.release_held() == 0 and sent(inc) == []


def test_channels_told_before_the_silence_hear_the_escalation_after_it_and_the_resolve_during_it(
    pipeline, hooked, clock
):
    inc = open_incident(pipeline)
    assert sent(inc) == ["opened"]
    silence(pipeline=pipeline, starts=T + timedelta(minutes=5), ends=T + HOUR)
    at = T + timedelta(minutes=10)
    clock[0] = at
    worse = Finding(Severity.CRITICAL, "backlog 9,000 above 1,000", 9000, 1000)
    incidents.apply_finding(pipeline, RuleKind.BACKLOG, worse, inc, at, incidents.EvalReport())
    assert sent(inc) == ["opened"] and Incident.objects.get(pk=inc.pk).held_event == NotifyEvent.ESCALATED
    clock[0] = T + HOUR
    assert deliveries.release_held() == 1
    assert sorted(sent(inc)) == ["escalated", "opened"]

    second = open_incident(pipeline, rule=RuleKind.DLQ)
    silence(pipeline=pipeline, starts=clock[0], ends=clock[0] + HOUR)
    clock[0] += timedelta(minutes=5)
    assert incidents.resolve(second, by="bob")
    assert sorted(sent(second)) == ["opened", "resolved"]  # they were told it opened: they hear it end


# --- maintenance windows ---------------------------------------------------------------------------------


def window(**fields) -> MaintenanceWindow:
    defaults = {
        "name": "weekly deploy",
        "weekdays": [Weekday.TUESDAY],
        "start_time": time(22, 0),
        "duration_minutes": 60,
        "time_zone": "Europe/Berlin",
        "reason": "weekly deploy",
    }
    return MaintenanceWindow.objects.create(**{**defaults, **fields})


@pytest.mark.parametrize(
    "at, covered",
    [
        (datetime(2026, 12, 1, 21, 30, tzinfo=UTC), True),  # Tuesday 22:30 CET (winter)
        (datetime(2026, 7, 7, 20, 30, tzinfo=UTC), True),  # Tuesday 22:30 CEST (summer)
        (datetime(2026, 12, 1, 21, 0, tzinfo=UTC), True),  # 22:00 local: the start is included
        (datetime(2026, 12, 1, 22, 0, tzinfo=UTC), False),  # 23:00 local: the end is not
        (datetime(2026, 12, 1, 22, 30, tzinfo=UTC), False),  # 23:30 local, winter
        (datetime(2026, 7, 7, 21, 30, tzinfo=UTC), False),  # 23:30 local, summer
        (datetime(2026, 11, 30, 21, 30, tzinfo=UTC), False),  # Monday 22:30
    ],
)
def test_a_tuesday_evening_window_in_berlin_follows_local_time(db, at, covered):
    span = silences.occurrence(window(), at)
    assert (span is not None) is covered


def test_a_window_across_midnight_belongs_to_the_day_it_started(db):
    w = window(weekdays=[Weekday.SATURDAY], start_time=time(23, 30), duration_minutes=90, time_zone="UTC")
    saturday = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    assert silences.occurrence(w, saturday + timedelta(minutes=80)) == (saturday, saturday + timedelta(minutes=90))
    assert silences.occurrence(w, saturday + timedelta(minutes=90)) is None  # Sunday 01:00
    assert silences.occurrence(w, saturday - timedelta(minutes=1)) is None
    assert silences.occurrence(w, saturday + timedelta(days=1, minutes=10)) is None  # Sunday 23:40: not a Saturday


def test_a_window_on_the_days_the_clocks_change_lasts_its_real_duration(db):
    # Sunday 29 March 2026, Berlin: 02:00 CET jumps to 03:00 CEST. A 02:30 start does not exist on
    # the wall clock; it starts at the first moment after the gap (01:30 UTC = 03:30 CEST).
    spring = window(weekdays=[Weekday.SUNDAY], start_time=time(2, 30))
    start = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert silences.occurrence(spring, start + timedelta(minutes=59)) == (start, start + HOUR)
    # Sunday 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice; the window
    # starts at the first (00:30 UTC) and lasts one real hour.
    autumn_start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert silences.occurrence(spring, autumn_start) == (autumn_start, autumn_start + HOUR)
    assert silences.occurrence(spring, autumn_start + HOUR) is None
    # The week after each change, the same wall-clock start is the new offset's UTC time.
    assert silences.occurrence(spring, datetime(2026, 4, 5, 0, 45, tzinfo=UTC)) is not None  # 02:45 CEST
    assert silences.occurrence(spring, datetime(2026, 11, 1, 1, 45, tzinfo=UTC)) is not None  # 02:45 CET


def test_a_window_holds_its_pipelines_notifications_during_an_occurrence(pipeline, other, hooked, clock, admin_client):
    w = window(weekdays=[Weekday.THURSDAY], start_time=time(12, 30), time_zone="Europe/Berlin")  # 11:30 UTC
    w.pipelines.add(pipeline)
    inc = open_incident(pipeline)
    assert sent(inc) == [] and sent(open_incident(other)) == ["opened"]
    page = text(admin_client.get(reverse("admin:index")))
    assert "silenced until 12:30 UTC (weekly deploy: weekly deploy)" in page
    clock[0] = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)  # the occurrence ends
    assert deliveries.release_held() == 1 and sent(inc) == ["opened"]
    MaintenanceWindow.objects.filter(pk=w.pk).update(enabled=False)
    clock[0] = datetime(2026, 12, 3, 11, 45, tzinfo=UTC)  # next Thursday, but switched off
    assert silences.covering(inc) is None


# --- the admin -------------------------------------------------------------------------------------------


def silence_form(**fields) -> dict:
    data = {
        "pipeline": "",
        "account": "",
        "rule": "",
        "starts_at_0": "2026-11-26",
        "starts_at_1": "12:00:00",
        "ends_at_0": "2026-11-26",
        "ends_at_1": "14:00:00",
        "reason": "deploying v2",
    }
    return {**data, **fields}


def test_an_operator_adds_a_silence_and_it_records_who(pipeline, clock, admin_client):
    page = text(admin_client.get(ADD_SILENCE))
    assert 'value="2026-11-26"' in page and 'value="13:00:00"' in page  # a start now and an end an hour on
    res = admin_client.post(ADD_SILENCE, silence_form(pipeline=pipeline.pk, rule="backlog"))
    assert res.status_code == 302
    s = Silence.objects.get()
    assert (s.pipeline, s.rule, s.ends_at, s.created_by) == (pipeline, "backlog", T + 2 * HOUR, "admin")
    listing = text(admin_client.get(SILENCES + "?state=active"))
    assert "pipeline orders · Backlog above threshold" in listing and "Active" in listing
    assert "pipeline orders" not in text(admin_client.get(SILENCES + "?state=expired"))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"ends_at_1": "11:00:00"}, "The end must be after the start."),
        ({"reason": "  "}, "Give a reason: it shows on every incident this silence covers."),
        (
            {"starts_at_1": "09:00:00", "ends_at_1": "11:00:00"},
            "The end is in the past: this silence would silence nothing.",
        ),
        ({"ends_at_0": "2026-02-30"}, "Enter a valid date."),
    ],
)
def test_the_silence_form_explains_what_is_wrong(clock, admin_client, fields, message):
    res = admin_client.post(ADD_SILENCE, silence_form(**fields))
    assert res.status_code == 200 and message in res.content.decode()
    assert not Silence.objects.exists()


def test_the_window_form_checks_the_time_zone_and_weekdays(pipeline, clock, admin_client):
    data = {
        "name": "weekly deploy",
        "pipelines": [pipeline.pk],
        "weekdays": ["1"],
        "start_time": "22:00",
        "duration_minutes": "60",
        "time_zone": "Europe/Berlinn",
        "reason": "deploys",
        "enabled": "on",
    }
    res = admin_client.post(ADD_WINDOW, data)
    assert res.status_code == 200 and "Unknown time zone &#x27;Europe/Berlinn&#x27;" in res.content.decode()
    res = admin_client.post(ADD_WINDOW, {**data, "time_zone": "Europe/Berlin", "weekdays": []})
    assert res.status_code == 200 and "Choose at least one weekday." in res.content.decode()
    assert not MaintenanceWindow.objects.exists()
    assert admin_client.post(ADD_WINDOW, {**data, "time_zone": "Europe/Berlin"}).status_code == 302
    w = MaintenanceWindow.objects.get()
    assert w.weekdays == [1] and list(w.pipelines.all()) == [pipeline] and w.created_by == "admin"
    listing = text(admin_client.get(reverse("admin:pipelines_maintenancewindow_changelist")))
    assert "Tuesday 22:00 for 60 min (Europe/Berlin)" in listing


def test_a_user_who_may_only_view_silences_cannot_add_or_expire_one(pipeline, clock, admin_client):
    user = User.objects.create_user("viewer", "viewer@example.com", "pw-for-tests-1", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="pipelines", codename__in=["view_silence", "view_maintenancewindow"]
        )
    )
    viewer = Client()
    viewer.force_login(user)
    s = silence(pipeline=pipeline)
    assert viewer.get(ADD_SILENCE).status_code == 403
    assert viewer.post(ADD_SILENCE, silence_form()).status_code == 403
    assert viewer.get(ADD_WINDOW).status_code == 403
    assert Silence.objects.count() == 1
    listing = viewer.get(SILENCES)
    assert listing.status_code == 200 and 'value="expire_now"' not in listing.content.decode()
    viewer.post(SILENCES, {"action": "expire_now", "_selected_action": [s.pk]})
    assert Silence.objects.get(pk=s.pk).ends_at == T + HOUR
    change = viewer.get(reverse("admin:pipelines_silence_change", args=[s.pk]))
    assert change.status_code == 200 and 'name="reason"' not in change.content.decode()  # read-only
    assert viewer.post(reverse("admin:pipelines_silence_change", args=[s.pk]), silence_form()).status_code == 403
    w = window()
    page = viewer.get(reverse("admin:pipelines_maintenancewindow_change", args=[w.pk])).content.decode()
    assert w.schedule in page and "[1]" not in page  # the schedule in words, not the stored weekday numbers
    editable = admin_client.get(reverse("admin:pipelines_maintenancewindow_change", args=[w.pk])).content.decode()
    assert 'name="weekdays"' in editable  # those who may change it get the checkboxes


def test_the_incident_list_action_opens_the_silence_form_for_that_pipeline_and_rule(
    pipeline, other, clock, admin_client
):
    inc = make_incident(pipeline)
    incidents_url = reverse("admin:pipelines_incident_changelist")
    res = admin_client.post(incidents_url, {"action": "silence_4h", "_selected_action": [inc.pk]})
    assert res.status_code == 302 and not Silence.objects.exists()  # nothing is made before the reason
    form = text(admin_client.get(res["Location"]))
    assert f'<option value="{pipeline.pk}" selected>' in form and '<option value="backlog" selected>' in form
    assert 'value="16:00:00"' in form  # four hours from now
    saved = admin_client.post(res["Location"], silence_form(pipeline=pipeline.pk, rule="backlog", ends_at_1="16:00:00"))
    assert saved.status_code == 302
    assert Silence.objects.get().ends_at == T + 4 * HOUR

    both = [inc.pk, make_incident(other).pk]
    res = admin_client.post(incidents_url, {"action": "silence_1h", "_selected_action": both}, follow=True)
    assert "Choose incidents of one pipeline and one rule" in text(res)
