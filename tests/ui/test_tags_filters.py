"""Groups and tags as an operator meets them: typed on the pipeline form, filtered on in the pipeline and
incident lists and the incident strip, and exported on /metrics."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from pipelines.clock import now
from pipelines.models import AwsAccount, Incident, Pipeline, RuleKind, Severity
from pipelines.ui.prometheus import tag_label_keys

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/"


@pytest.fixture
def acct(db):
    return AwsAccount.objects.create(name="prod", region="us-east-1")


@pytest.fixture
def fleet(acct):
    """Three pipelines of two teams, each with an open incident."""
    made = {
        "orders": Pipeline.objects.create(
            name="orders", account=acct, queue_url=URL + "orders", group="payments", tags={"env": "prod", "pci": ""}
        ),
        "refunds": Pipeline.objects.create(
            name="refunds", account=acct, queue_url=URL + "refunds", group="payments", tags={"env": "staging"}
        ),
        "index": Pipeline.objects.create(
            name="index", account=acct, queue_url=URL + "index", group="search", tags={"env": "prod"}
        ),
    }
    for p in made.values():
        Incident.objects.create(pipeline=p, rule=RuleKind.BACKLOG, severity=Severity.WARNING, summary=f"{p.name} high")
    return made


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def rows(page: str, names=("orders", "refunds", "index")) -> list[str]:
    return [n for n in names if f">{n}</a>" in page]


# --- the pipeline form and list ---------------------------------------------------------------------------


def test_bad_tag_text_is_an_error_on_the_tags_field_and_nothing_is_saved(admin_client, acct):
    page = admin_client.post(
        reverse("admin:pipelines_pipeline_add"),
        {
            "name": "orders",
            "account": acct.pk,
            "queue_url": URL + "orders",
            "enabled": "on",
            "group": "payments",
            "tags": "env=prod, =oops",
            "request_id_attribute": "requestId",
            "poll_interval": 60,
            "backlog_threshold": 1000,
            "oldest_age_sla": 900,
            "dlq_threshold": 1,
        },
    )
    body = html(page)
    assert "&#x27;=oops&#x27; is not a tag" in body and 'class="errorlist' in body
    assert "env=prod, =oops" in body  # what was typed stays in the box to be fixed
    assert not Pipeline.objects.exists()


def test_the_change_page_shows_tags_as_they_are_typed(admin_client, fleet):
    page = html(admin_client.get(reverse("admin:pipelines_pipeline_change", args=[fleet["orders"].pk])))
    assert ">\nenv=prod, pci</textarea>" in page and 'value="payments"' in page


def test_the_pipeline_list_shows_and_filters_by_group_and_tag(admin_client, fleet):
    changelist = reverse("admin:pipelines_pipeline_changelist")
    everything = html(admin_client.get(changelist))
    assert rows(everything) == ["orders", "refunds", "index"]
    assert "payments (2)" in everything and "env=prod (2)" in everything  # the most used values, as links
    assert rows(html(admin_client.get(changelist, {"group": "payments"}))) == ["orders", "refunds"]
    assert rows(html(admin_client.get(changelist, {"tag": "env=prod"}))) == ["orders", "index"]
    assert rows(html(admin_client.get(changelist, {"group": "payments", "tag": "pci"}))) == ["orders"]
    assert rows(html(admin_client.get(changelist, {"q": "staging"}))) == ["refunds"]  # searches the tags' text


def test_a_tag_filter_that_cannot_be_read_says_why_and_shows_nothing(admin_client, fleet):
    page = html(admin_client.get(reverse("admin:pipelines_pipeline_changelist"), {"tag": "=prod"}, follow=True))
    assert "Tag filter: &#x27;=prod&#x27; is not a tag" in page and rows(page) == []


def test_the_filters_text_box_keeps_the_other_filters(admin_client, fleet):
    page = html(admin_client.get(reverse("admin:pipelines_pipeline_changelist"), {"group": "payments"}))
    assert '<input type="hidden" name="group" value="payments">' in page
    assert '<input type="search" name="tag" value=""' in page


# --- incidents --------------------------------------------------------------------------------------------


def test_the_incident_list_filters_by_the_pipelines_group_and_tag(admin_client, fleet):
    changelist = reverse("admin:pipelines_incident_changelist")

    def listed(**params):
        page = html(admin_client.get(changelist, params))
        return [n for n in ("orders", "refunds", "index") if f"{n} high" in page]

    assert listed() == ["orders", "refunds", "index"]
    assert '<td class="field-pipeline_group">search</td>' in html(admin_client.get(changelist))
    assert listed(group="search") == ["index"]
    assert listed(tag="env=prod") == ["orders", "index"]
    assert listed(group="payments", tag="env") == ["orders", "refunds"]


def test_the_incident_strip_narrows_by_group_and_tag_and_links_to_the_same_list(admin_client, fleet):
    strip = reverse("admin:incident_strip")
    page = html(admin_client.get(strip, {"group": "payments", "tag": "env=prod"}))
    assert "orders high" in page and "refunds high" not in page and "index high" not in page
    assert "group=payments&amp;tag=env%3Dprod" in page
    assert "index high" in html(admin_client.get(strip, {"tag": "env=prod"}))
    bad = html(admin_client.get(strip, {"tag": "=x"}))  # the overview says why; the strip shows nothing
    assert "high" not in bad


# --- /metrics ---------------------------------------------------------------------------------------------


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ("127.0.0.0/8",)

    def _scrape() -> dict[str, list]:
        body = client.get("/metrics").content.decode()
        return {f.name: f.samples for f in text_string_to_metric_families(body)}

    return _scrape


def test_every_pipeline_series_carries_its_group(scrape, fleet):
    Pipeline.objects.filter(name="orders").update(backlog=7, last_sync_at=now())
    Pipeline.objects.filter(name="index").update(group="")
    found = scrape()
    backlog = {s.labels["pipeline"]: s.labels["group"] for s in found["opsboard_pipeline_backlog_messages"]}
    assert backlog == {"orders": "payments"}
    incidents = {(s.labels["pipeline"], s.labels["group"]) for s in found["opsboard_pipeline_open_incidents"]}
    assert incidents == {("orders", "payments"), ("refunds", "payments"), ("index", "")}
    for name, samples in found.items():
        if name.startswith("opsboard_pipeline_"):
            assert all("group" in s.labels for s in samples), name


def test_tags_are_exported_once_per_pipeline_as_info_labels(scrape, fleet, settings):
    Pipeline.objects.filter(name="index").update(tags={"env": "prod", "cost-centre": "4711"})
    info = {s.labels["pipeline"]: s for s in scrape()["opsboard_pipeline_info"]}
    assert set(info) == {"orders", "refunds", "index"} and all(s.value == 1 for s in info.values())
    assert info["index"].labels["tag_cost_centre"] == "4711" and info["index"].labels["group"] == "search"
    assert info["orders"].labels["tag_env"] == "prod" and info["orders"].labels["tag_pci"] == ""
    assert info["refunds"].labels.get("tag_cost_centre", "") == ""

    settings.METRICS_TAG_KEYS = ("env",)
    info = {s.labels["pipeline"]: s.labels for s in scrape()["opsboard_pipeline_info"]}
    assert {k for labels in info.values() for k in labels if k.startswith("tag_")} == {"tag_env"}


def test_the_info_series_has_a_bounded_set_of_tag_labels():
    many = [{f"k{i:03}": "v" for i in range(n, n + 30)} for n in range(0, 300, 30)] + [{"team": "a"}] * 5
    keys = tag_label_keys(many)
    assert len(keys) == 20 and keys["team"] == "tag_team"  # the most carried keys first
    assert tag_label_keys([{"a-b": "1", "a.b": "2"}]) == {"a-b": "tag_a_b"}  # one label name, one key


def test_tags_cost_metrics_no_extra_query(client, settings, acct, scrape):
    Pipeline.objects.create(name="p0", account=acct, queue_url=URL + "p0", tags={"env": "prod"})
    with CaptureQueriesContext(connection) as few:
        scrape()
    for i in range(1, 40):
        Pipeline.objects.create(
            name=f"p{i}", account=acct, queue_url=URL + f"p{i}", group=f"g{i % 3}", tags={f"k{i}": "v", "env": "x"}
        )
    with CaptureQueriesContext(connection) as many:
        assert len(scrape()["opsboard_pipeline_info"]) == 40
    assert len(many) == len(few) <= 9
