"""Incidents in the operator UI: the admin list and page, acknowledge/resolve, the overview strip and row
badges, the pipeline page's panel, rule overrides on the pipeline's change page, and permissions."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.urls import reverse

from pipelines.clock import now
from pipelines.models import (
    AlertRule,
    AwsAccount,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Incident,
    IncidentStatus,
    NotificationChannel,
    NotifyEvent,
    Pipeline,
    RuleKind,
    Severity,
)
from tests.browser import browser


@pytest.fixture
def acct(db):
    return AwsAccount.objects.create(name="prod", region="us-east-1")


def make_pipeline(account, name, **kwargs):
    fields = {
        "queue_url": f"http://h/123456789012/{name}",
        "queue_name": name,
        "last_sync_at": now(),
        "backlog": 10,
        "retention_period": 345600,
        **kwargs,
    }
    return Pipeline.objects.create(name=name, account=account, **fields)


def make_incident(pipeline, rule=RuleKind.BACKLOG, severity=Severity.WARNING, minutes_ago=10, **kwargs):
    kwargs.setdefault("summary", f"{pipeline.name}: {RuleKind(rule).label.lower()}")
    return Incident.objects.create(
        pipeline=pipeline, rule=rule, severity=severity, opened_at=now() - timedelta(minutes=minutes_ago), **kwargs
    )


@pytest.fixture
def orders(acct):
    return make_pipeline(acct, "orders")


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    return client


def staff(client, username, *codenames):
    user = User.objects.create_user(username, password="pw-for-tests-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="pipelines", codename__in=codenames))
    client.force_login(user)
    return client


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# --- the incident list and page ---------------------------------------------------------------------


def test_it_lists_unresolved_incidents_first_and_filters_them(admin_client, acct, orders):
    billing = make_pipeline(AwsAccount.objects.create(name="staging", region="eu-west-1"), "billing")
    old_fixed = make_incident(
        orders,
        RuleKind.DLQ,
        minutes_ago=5,
        status=IncidentStatus.RESOLVED,
        resolved_at=now(),
        summary="3 message(s) in the DLQ",
    )
    acked = make_incident(
        orders,
        RuleKind.BACKLOG,
        Severity.CRITICAL,
        minutes_ago=90,
        status=IncidentStatus.ACKNOWLEDGED,
        acknowledged_by="alice",
        summary="backlog 9,000",
    )
    fresh = make_incident(billing, RuleKind.ERRORS, minutes_ago=3, summary="Lambda errors at 12%")
    url = reverse("admin:pipelines_incident_changelist")
    page = html(admin_client.get(url))
    # Unresolved first (newest first among them), the resolved one last; badges, names, who acknowledged.
    assert page.index("Lambda errors at 12%") < page.index("backlog 9,000") < page.index("3 message(s) in the DLQ")
    assert "alice" in page and "Acknowledged" in page and "Critical" in page
    assert reverse("admin:pipelines_pipeline_dashboard", args=[billing.pk]) in page
    assert "90 min ago" in page and "so far" in page
    for params, shown, hidden in [
        ({"status": "unresolved"}, [fresh, acked], [old_fixed]),
        ({"status": "resolved"}, [old_fixed], [fresh, acked]),
        ({"severity__exact": "critical"}, [acked], [fresh, old_fixed]),
        ({"rule__exact": "errors"}, [fresh], [acked, old_fixed]),
        ({"pipeline__account__id__exact": acct.pk}, [acked, old_fixed], [fresh]),
        ({"pipeline__id__exact": billing.pk, "status": "unresolved"}, [fresh], [acked, old_fixed]),
        ({"q": "billing"}, [fresh], [acked, old_fixed]),
        ({"q": "DLQ"}, [old_fixed], [fresh, acked]),
    ]:
        page = html(admin_client.get(url, params))
        for i in shown:
            assert i.summary in page, (params, i.summary)
        for i in hidden:
            assert i.summary not in page, (params, i.summary)


def test_it_acknowledges_and_resolves_from_the_list_and_counts_what_changed(admin_client, orders):
    a = make_incident(orders, RuleKind.BACKLOG)
    b = make_incident(orders, RuleKind.DLQ)
    c = make_incident(orders, RuleKind.ERRORS, status=IncidentStatus.ACKNOWLEDGED, acknowledged_by="alice")
    url = reverse("admin:pipelines_incident_changelist")
    res = admin_client.post(
        url, {"action": "acknowledge_incidents", "_selected_action": [a.pk, b.pk, c.pk]}, follow=True
    )
    assert "Acknowledged 2 incident(s); 1 was not open." in texts(res)
    assert {i.status for i in Incident.objects.filter(pk__in=[a.pk, b.pk])} == {IncidentStatus.ACKNOWLEDGED}
    assert Incident.objects.get(pk=a.pk).acknowledged_by == "ops"
    assert Incident.objects.get(pk=c.pk).acknowledged_by == "alice"  # not taken over

    a.refresh_from_db()
    a.resolve()
    res = admin_client.post(url, {"action": "resolve_incidents", "_selected_action": [a.pk, b.pk, c.pk]}, follow=True)
    assert "Resolved 2 incident(s); 1 was already resolved." in texts(res)
    assert set(Incident.objects.values_list("status", flat=True)) == {IncidentStatus.RESOLVED}
    assert Incident.objects.get(pk=b.pk).resolved_by == "ops" and Incident.objects.get(pk=a.pk).resolved_by == ""


def test_the_incident_page_is_read_only_and_shows_its_notifications(admin_client, orders):
    incident = make_incident(orders, summary="backlog 4,200 above 1,000 for 5 min", value=4200, threshold=1000)
    channel = NotificationChannel.objects.create(name="ops-mail", kind=ChannelKind.EMAIL, target="ops@example.com")
    Delivery.objects.create(
        incident=incident,
        channel=channel,
        event=NotifyEvent.OPENED,
        status=DeliveryStatus.FAILED,
        attempt_count=3,
        last_error="SMTP 451: try again later",
    )
    page = html(admin_client.get(reverse("admin:pipelines_incident_change", args=[incident.pk])))
    assert "backlog 4,200 above 1,000 for 5 min" in page and "ops-mail" in page and "SMTP 451" in page
    assert "Failed" in page and "Opened" in page
    assert 'name="_save"' not in page and 'name="_continue"' not in page  # nothing to save
    assert reverse("admin:incident_acknowledge", args=[incident.pk]) in page
    assert admin_client.get(reverse("admin:pipelines_incident_add")).status_code == 403
    assert admin_client.get(reverse("admin:pipelines_incident_delete", args=[incident.pk])).status_code == 403


# --- the acknowledge / resolve buttons --------------------------------------------------------------


def test_disabling_a_pipeline_resolves_its_incidents_and_says_so(admin_client, orders):
    inc = make_incident(orders, RuleKind.DLQ)
    res = admin_client.post(
        reverse("admin:pipelines_pipeline_changelist"),
        {"action": "disable", "_selected_action": [orders.pk]},
        follow=True,
    )
    assert "Disabled 1 pipeline(s); resolved 1 open incident(s)." in [m.message for m in res.context["messages"]]
    inc.refresh_from_db()
    assert inc.status == IncidentStatus.RESOLVED and inc.resolved_by == "(pipeline disabled)"


def test_the_buttons_change_the_incident_and_go_back_with_a_message(admin_client, orders):
    incident = make_incident(orders)
    back = reverse("admin:pipelines_pipeline_dashboard", args=[orders.pk]) + "?range=6h"
    ack = reverse("admin:incident_acknowledge", args=[incident.pk])
    res = admin_client.post(ack, {"next": back})
    assert res.status_code == 302 and res["Location"] == back
    res = admin_client.post(ack, {"next": back}, follow=True)  # again: nothing to do
    assert res.redirect_chain == [(back, 302)]
    assert texts(res) == [
        f"Acknowledged: #{incident.pk} orders · Backlog above threshold.",
        f"Incident #{incident.pk} was already acknowledged by ops.",
    ]
    incident.refresh_from_db()
    assert (incident.status, incident.acknowledged_by) == (IncidentStatus.ACKNOWLEDGED, "ops")
    assert incident.acknowledged_at is not None

    resolve = reverse("admin:incident_resolve", args=[incident.pk])
    res = admin_client.post(resolve, {"next": back})
    assert res["Location"] == back
    res = admin_client.post(resolve, {"next": back}, follow=True)
    assert texts(res) == [
        f"Resolved: #{incident.pk} orders · Backlog above threshold.",
        f"Incident #{incident.pk} was already resolved by ops.",
    ]
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_by) == (IncidentStatus.RESOLVED, "ops")
    assert "was already resolved by ops" not in html(admin_client.get(back))  # shown once


def test_the_buttons_refuse_gets_unknown_ids_and_foreign_next_urls(admin_client, orders):
    incident = make_incident(orders)
    ack = reverse("admin:incident_acknowledge", args=[incident.pk])
    assert admin_client.get(ack).status_code == 405
    assert admin_client.post(reverse("admin:incident_resolve", args=[99999])).status_code == 404
    res = admin_client.post(ack, {"next": "https://evil.example/phish"})
    assert res.status_code == 302 and res["Location"] == reverse("admin:index")
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED  # done; only the way back was refused


def test_it_says_when_the_condition_cleared_first(admin_client, orders):
    incident = make_incident(orders)
    incident.resolve()  # the evaluator: the condition cleared
    res = admin_client.post(reverse("admin:incident_acknowledge", args=[incident.pk]))
    assert texts(res) == [f"Incident #{incident.pk} was already resolved (its condition cleared)."]


def test_the_buttons_need_the_csrf_token(orders, db):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-1"))
    incident = make_incident(orders)
    assert csrf_client.post(reverse("admin:incident_acknowledge", args=[incident.pk])).status_code == 403
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN


def test_people_who_may_only_look_cannot_acknowledge(client, orders):
    incident = make_incident(orders)
    viewer = staff(client, "viewer", "view_pipeline", "view_incident")
    for name in ("admin:incident_acknowledge", "admin:incident_resolve"):
        assert viewer.post(reverse(name, args=[incident.pk])).status_code == 403
    viewer.post(
        reverse("admin:pipelines_incident_changelist"),
        {"action": "acknowledge_incidents", "_selected_action": [incident.pk]},
    )
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN
    # They see it, without buttons.
    overview = html(viewer.get(reverse("admin:index")))
    assert incident.summary in overview and "Acknowledge</button>" not in overview
    panel = html(viewer.get(reverse("admin:pipelines_pipeline_dashboard", args=[orders.pk])))
    assert incident.summary in panel and "Resolve</button>" not in panel
    assert "Acknowledge</button>" not in html(
        viewer.get(reverse("admin:pipelines_incident_change", args=[incident.pk]))
    )


def test_anonymous_users_go_to_login_and_nothing_changes(client, orders):
    incident = make_incident(orders)
    for url in (reverse("admin:incident_acknowledge", args=[incident.pk]), reverse("admin:incident_strip")):
        res = client.post(url)
        assert res.status_code == 302 and reverse("admin:login") in res["Location"]
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN


# --- the overview and the pipeline page ---------------------------------------------------------------


def test_the_overview_shows_open_incidents_worst_first_and_a_badge_per_pipeline(admin_client, acct, orders):
    billing = make_pipeline(acct, "billing")
    make_pipeline(acct, "quiet")
    make_incident(orders, RuleKind.DLQ, Severity.WARNING, minutes_ago=2, summary="3 message(s) in the DLQ")
    make_incident(
        orders,
        RuleKind.BACKLOG,
        Severity.CRITICAL,
        minutes_ago=30,
        summary="backlog 9,000 for 30 min",
        status=IncidentStatus.ACKNOWLEDGED,
        acknowledged_by="alice",
        acknowledged_at=now(),
    )
    make_incident(billing, RuleKind.ERRORS, Severity.WARNING, minutes_ago=7, summary="Lambda errors at 12%")
    make_incident(
        billing,
        RuleKind.API_5XX,
        Severity.INFO,
        status=IncidentStatus.RESOLVED,
        resolved_at=now(),
        summary="API 5xx at 2%",
    )
    page = html(admin_client.get(reverse("admin:index")))
    strip = page[page.index('id="ob-incidents"') : page.index('id="ob-overview"')]
    assert strip.index("backlog 9,000") < strip.index("3 message(s) in the DLQ") < strip.index("Lambda errors at 12%")
    assert "API 5xx at 2%" not in strip  # resolved
    assert "acknowledged by <strong>alice</strong>" in strip and "opened <time" in strip
    assert strip.count("Acknowledge</button>") == 2  # the acknowledged one has none
    assert 'name="csrfmiddlewaretoken"' in strip and 'name="next" value="/admin/"' in strip
    assert reverse("admin:pipelines_incident_changelist") + "?status=unresolved" in strip
    # Row badges: orders has 2 (worst critical), billing 1, quiet none.
    rows = page[page.index('id="ob-rows"') :]
    assert f'pipeline__id__exact={orders.pk}&amp;status=unresolved">2</a>' in rows
    assert f'pipeline__id__exact={billing.pk}&amp;status=unresolved">1</a>' in rows
    assert rows.count("ob-inc-badge") == 2
    assert f'background:{Severity.CRITICAL.colour}" title="2 unresolved' in rows
    # The periodic refresh carries the badges, and the strip has its own fragment.
    assert "ob-inc-badge" in html(admin_client.get(reverse("admin:overview_rows")))
    fragment = html(admin_client.get(reverse("admin:incident_strip"), {"account": acct.pk}))
    assert "Lambda errors at 12%" in fragment and f'value="/admin/?account={acct.pk}"' in fragment


def test_the_overview_says_when_nothing_is_open(admin_client, orders):
    make_incident(orders, status=IncidentStatus.RESOLVED, resolved_at=now())
    page = html(admin_client.get(reverse("admin:index")))
    assert "No open incidents" in page and "ob-inc-badge" not in page


def test_the_strip_follows_the_account_filter(admin_client, acct, orders):
    other = make_pipeline(AwsAccount.objects.create(name="staging", region="eu-west-1"), "elsewhere")
    make_incident(other, summary="staging is on fire")
    make_incident(orders, summary="prod is on fire")
    page = html(admin_client.get(reverse("admin:index"), {"account": acct.pk}))
    assert "prod is on fire" in page and "staging is on fire" not in page


def test_people_who_may_not_see_incidents_get_the_overview_without_them(client, orders):
    make_incident(orders, summary="backlog 9,000")
    viewer = staff(client, "pipelines-only", "view_pipeline")
    page = html(viewer.get(reverse("admin:index")))
    assert "backlog 9,000" not in page and "ob-inc-badge" not in page and "No open incidents" not in page
    assert "ob-incidents" not in html(viewer.get(reverse("admin:pipelines_pipeline_dashboard", args=[orders.pk])))


def test_the_pipeline_page_shows_open_and_recently_resolved_incidents(admin_client, acct, orders):
    quiet = make_pipeline(acct, "quiet")
    make_incident(quiet, summary="elsewhere")  # another pipeline's: not on this page
    make_incident(orders, RuleKind.DLQ, Severity.CRITICAL, summary="40 message(s) in the DLQ")
    for n in range(12):
        opened = now() - timedelta(hours=n + 2)
        Incident.objects.create(
            pipeline=orders,
            rule=RuleKind.BACKLOG,
            severity=Severity.WARNING,
            summary=f"old backlog {n}",
            opened_at=opened,
            status=IncidentStatus.RESOLVED,
            resolved_at=opened + timedelta(minutes=25),
            resolved_by="bob" if n == 0 else "",
        )
    page = html(admin_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[orders.pk])))
    panel = page[page.index('class="ob-incidents') : page.index('id="ob-ranges"')]
    assert "40 message(s) in the DLQ" in panel and "elsewhere" not in panel
    assert "Acknowledge</button>" in panel and "Resolve</button>" in panel
    assert "Recently resolved" in panel and "lasted 25 min" in panel and "by bob" in panel
    assert "automatically" in panel
    assert "old backlog 9" in panel and "old backlog 10" not in panel  # the last ten only
    assert f"?pipeline__id__exact={orders.pk}" in panel
    quiet_page = html(admin_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[quiet.pk])))
    assert "elsewhere" in quiet_page
    Incident.objects.filter(pipeline=quiet).delete()
    assert "No incidents" in html(admin_client.get(reverse("admin:pipelines_pipeline_dashboard", args=[quiet.pk])))


def test_the_overview_reads_incidents_in_one_query_however_many(admin_client, acct, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = [make_pipeline(acct, f"p{i:03d}") for i in range(3)]
    make_incident(first[0])
    with CaptureQueriesContext(connection) as few:
        html(admin_client.get(reverse("admin:index")))
    pipes = first + [make_pipeline(acct, f"p{i:03d}") for i in range(3, 60)]
    rules = list(RuleKind)
    for n, p in enumerate(pipes):
        for rule in rules[: n % 4]:
            make_incident(p, rule, Severity.CRITICAL if n % 3 else Severity.WARNING)
    assert Incident.objects.count() > 80
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = html(admin_client.get(reverse("admin:index"), {"health": "all"}))
    assert "and " in page and " more</a>" in page  # the strip shows a few and links to the rest
    with django_assert_max_num_queries(len(few.captured_queries)):
        html(admin_client.get(reverse("admin:overview_rows")))
    # 60 pipelines: more than a page (50 rows), so every health is asked for and both pages read.
    second = html(admin_client.get(reverse("admin:index"), {"health": "all", "page": 2}))
    badges = page.count("ob-inc-badge") + second.count("ob-inc-badge")
    assert badges == Incident.objects.values("pipeline").distinct().count() == 46


# --- rule overrides on the pipeline's change page -------------------------------------------------------


def test_the_pipeline_change_page_lists_rule_overrides_and_each_default(admin_client, orders):
    AlertRule.objects.create(pipeline=orders, kind=RuleKind.BACKLOG, threshold=5000, minutes=10)
    page = html(admin_client.get(reverse("admin:pipelines_pipeline_change", args=[orders.pk])))
    assert "Alert rule overrides" in page and "runs on every pipeline with its default" in page
    assert "backlog above 1,000 for 5 min" in page  # the default, from the pipeline's own threshold
    assert 'value="5000.0"' in page or 'value="5000"' in page
    assert "Defaults for this pipeline" in page
    assert "alert_rules-TOTAL_FORMS" not in html(admin_client.get(reverse("admin:pipelines_pipeline_add")))


def test_rule_overrides_are_saved_and_bad_ones_explained(admin_client, register):
    from django.forms.models import model_to_dict

    p = register("orders")
    url = reverse("admin:pipelines_pipeline_change", args=[p.pk])
    base = {
        k: ("" if v is None else v)
        for k, v in model_to_dict(p).items()
        if k
        in (
            "name",
            "account",
            "queue_url",
            "enabled",
            "api_kind",
            "api_id",
            "api_stage",
            "api_log_group",
            "consumer_log_group",
            "request_id_attribute",
            "poll_interval",
            "backlog_threshold",
            "oldest_age_sla",
            "dlq_threshold",
        )
    }
    base["enabled"] = "on"
    formset = {
        "alert_rules-TOTAL_FORMS": "2",
        "alert_rules-INITIAL_FORMS": "0",
        "alert_rules-0-kind": "backlog",
        "alert_rules-0-enabled": "on",
        "alert_rules-0-threshold": "-5",
        "alert_rules-1-kind": "dlq",
        "alert_rules-1-minutes": "",
    }
    res = admin_client.post(url, {**base, **formset})
    assert res.status_code == 200 and "A threshold cannot be negative" in res.content.decode()
    assert not AlertRule.objects.exists()
    formset.update({"alert_rules-0-threshold": "2500", "alert_rules-1-kind": "forecast", "alert_rules-1-minutes": "15"})
    res = admin_client.post(url, {**base, **formset})
    assert res.status_code == 200 and "rule reads the latest values and has no window" in res.content.decode()
    formset.update({"alert_rules-1-kind": "dlq", "alert_rules-1-minutes": ""})
    res = admin_client.post(url, {**base, **formset})
    assert res.status_code == 302, res.content.decode()[:2000]
    saved = {r.kind: r for r in AlertRule.objects.filter(pipeline=p)}
    assert saved["backlog"].threshold == 2500 and saved["backlog"].enabled
    assert not saved["dlq"].enabled and saved["dlq"].threshold is None  # switched off, default threshold
    formset.update({"alert_rules-1-kind": "backlog", "alert_rules-INITIAL_FORMS": "0"})
    AlertRule.objects.all().delete()
    res = admin_client.post(url, {**base, **formset})
    assert res.status_code == 200 and "Please correct the duplicate data" in res.content.decode()


# --- in a real browser ------------------------------------------------------------------------------------


@browser
@pytest.mark.django_db(transaction=True)
def test_an_operator_acknowledges_an_incident_from_the_overview(page, live_server):
    from tests.browser import log_in

    acct = AwsAccount.objects.create(name="prod", region="us-east-1")
    orders = make_pipeline(
        acct,
        "orders",
        backlog=9000,
        backlog_threshold=1000,
        health="critical",
        health_reasons=[["critical", "backlog 9,000 above 1,000"]],
    )
    billing = make_pipeline(
        acct,
        "billing",
        health="warning",
        function_name="billing-consumer",
        health_reasons=[["warning", "Lambda errors 12% of invocations"]],
    )
    make_pipeline(acct, "search", health="ok")
    backlog = make_incident(
        orders,
        RuleKind.BACKLOG,
        Severity.CRITICAL,
        minutes_ago=18,
        summary="Backlog 9,000 above 1,000 for 18 min",
        value=9000,
        threshold=1000,
    )
    make_incident(
        billing,
        RuleKind.ERRORS,
        Severity.WARNING,
        minutes_ago=45,
        summary="Lambda errors at 12% of invocations over 10 min",
        status=IncidentStatus.ACKNOWLEDGED,
        acknowledged_by="alice",
        acknowledged_at=now() - timedelta(minutes=30),
    )
    for n, (rule, summary) in enumerate(
        [(RuleKind.DLQ, "3 message(s) in the DLQ"), (RuleKind.OLDEST_AGE, "Oldest message 22 min old, SLA 15 min")]
    ):
        opened = now() - timedelta(hours=5 + n * 20)
        Incident.objects.create(
            pipeline=orders,
            rule=rule,
            severity=Severity.WARNING,
            summary=summary,
            opened_at=opened,
            status=IncidentStatus.RESOLVED,
            resolved_by="alice" if n else "",
            resolved_at=opened + timedelta(minutes=40 + n * 30),
        )

    log_in(page, live_server)
    page.clock.install()  # to run the overview's 30-second refresh now
    page.goto(f"{live_server.url}/admin/")
    strip = page.locator("#ob-incidents")
    first = strip.locator("li.ob-incident").first
    assert "Backlog 9,000 above 1,000" in first.inner_text() and "orders" in first.inner_text()
    assert "acknowledged by alice" in strip.inner_text()
    badge = page.locator("#ob-rows tr", has_text="orders").locator(".ob-inc-badge")
    assert badge.inner_text() == "1"

    first.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector(".messagelist")
    assert f"Acknowledged: #{backlog.pk} orders" in page.locator(".messagelist").inner_text()
    first = page.locator("#ob-incidents li.ob-incident").first
    assert "acknowledged by ops" in first.inner_text()
    assert first.get_by_role("button", name="Acknowledge").count() == 0
    backlog.refresh_from_db()
    assert (backlog.status, backlog.acknowledged_by) == (IncidentStatus.ACKNOWLEDGED, "ops")

    # The evaluator opens another incident: the strip shows it at the next refresh, without a reload.
    make_incident(
        make_pipeline(acct, "payments"),
        RuleKind.DLQ,
        Severity.CRITICAL,
        minutes_ago=1,
        summary="40 message(s) in the DLQ, growing",
    )
    page.clock.fast_forward(31_000)
    page.wait_for_selector("#ob-incidents >> text=40 message(s) in the DLQ, growing")
    page.screenshot(path="/tmp/incidents-overview.png", full_page=True)

    page.locator("#ob-incidents a.ob-name", has_text="orders").click()
    panel = page.locator("section.ob-incidents-panel")
    panel.wait_for()
    assert "Backlog 9,000 above 1,000" in panel.inner_text() and "recently resolved" in panel.inner_text().lower()
    assert "lasted 40 min" in panel.inner_text() and "by alice" in panel.inner_text()
    page.wait_for_timeout(1500)  # let the charts draw before the picture
    page.screenshot(path="/tmp/incidents-pipeline.png", full_page=True)
    panel.get_by_role("button", name="Resolve").click()
    page.wait_for_selector(".messagelist")
    assert f"Resolved: #{backlog.pk} orders" in page.locator(".messagelist").inner_text()
    assert "No open incidents" in page.locator("section.ob-incidents-panel").inner_text()
