"""A team member's lists show their team's pipelines only: the overview, the incidents, a trace over
all pipelines, and the admin's search."""

import pytest
from django.urls import reverse

from pipelines.models import RedriveTask, TraceLookup
from pipelines.trace.views import run_lookup
from tests.access.roles import OPERATOR, STAFF, SUPERUSER, TEAM_FULL, TEAM_VIEWER, client_for, make_world, user_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return make_world()


def test_it_lists_only_the_teams_pipelines_on_the_overview(world):
    page = client_for(TEAM_VIEWER, world).get(reverse("admin:index")).content.decode()
    assert "alpha" in page and "bravo" not in page
    everything = client_for(OPERATOR, world).get(reverse("admin:index")).content.decode()
    assert "alpha" in everything and "bravo" in everything


def test_the_overview_links_only_to_what_the_user_may_open(world):
    viewer = client_for(TEAM_VIEWER, world).get(reverse("admin:index")).content.decode()
    assert "Register a pipeline" not in viewer and "AWS accounts" not in viewer and "Poll cycles" not in viewer
    root = client_for(SUPERUSER, world).get(reverse("admin:index")).content.decode()
    assert "Register a pipeline" in root and "AWS accounts" in root and "Poll cycles" in root


def test_it_tells_a_user_who_may_view_no_pipeline_so_on_the_landing_page(world):
    client = client_for(STAFF, world)
    response = client.get(reverse("admin:index"))
    page = response.content.decode()
    assert response.status_code == 200 and 'id="ob-no-pipelines"' in page
    assert "no\npipeline is shared with you yet" in page and "Teams" in page
    assert "alpha" not in page and "bravo" not in page
    # the page's data endpoints still refuse: there is nothing of theirs to refresh
    assert client.get(reverse("admin:overview_rows")).status_code == 403


def test_it_shows_only_the_teams_incidents_in_the_strip_and_the_admin(world):
    client = client_for(TEAM_VIEWER, world)
    strip = client.get(reverse("admin:incident_strip")).content.decode()
    assert "alpha backs up" in strip and "bravo backs up" not in strip
    listed = client.get(reverse("admin:pipelines_incident_changelist")).content.decode()
    assert "alpha backs up" in listed and "bravo backs up" not in listed


def test_it_finds_only_the_teams_pipelines_in_the_admins_search(world):
    client = client_for(TEAM_VIEWER, world)
    url = reverse("admin:pipelines_pipeline_changelist")
    bravo = reverse("admin:pipelines_pipeline_change", args=[world.b.pk])
    alpha = reverse("admin:pipelines_pipeline_change", args=[world.a.pk])
    assert bravo not in client.get(url, {"q": "bravo"}).content.decode()
    assert alpha in client.get(url, {"q": "alpha"}).content.decode()
    # nor does the group filter name the other team's group
    assert "b-team" not in client.get(url).content.decode()


def test_it_searches_only_the_pipelines_the_user_may_trace_in_a_lookup_over_all(world, monkeypatch):
    searched = []
    monkeypatch.setattr(
        "pipelines.trace.lookup.lookup",
        lambda ident, pipelines, start, end, **kw: (
            searched.append((sorted(p.name for p in pipelines), kw["scan_dlqs"]))
            or {"id": ident, "verdict": "processed", "total_calls": 0, "dlqs": [], "timeline": []}
        ),
    )
    entry = run_lookup(user_for(TEAM_FULL, world), "req-9", None, 1)
    assert searched == [(["alpha"], frozenset({world.a.pk}))]
    assert TraceLookup.objects.get(pk=entry.pk).pipeline is None  # "all pipelines": the ones it may see
    run_lookup(user_for(OPERATOR, world), "req-9", None, 1)
    assert searched[-1] == (["alpha", "bravo"], True)


def test_a_dry_runs_sampled_messages_are_listed_only_for_those_who_may_peek(world):
    task = world.task
    task.dry_run = True
    task.sample = [{"id": "m-sampled-7", "matches": True, "sent_at": "", "request_id": "req-7", "size": 10}]
    task.save()
    url = reverse("admin:pipelines_pipeline_dlq_task", args=[world.a.pk, task.pk])
    viewer = client_for(TEAM_VIEWER, world).get(url).content.decode()
    assert "m-sampled-7" not in viewer and 'id="rd-sample-hidden"' in viewer
    assert "m-sampled-7" in client_for(TEAM_FULL, world).get(url).content.decode()


def test_a_shared_dlqs_history_lists_only_the_tasks_of_pipelines_the_user_may_view(world):
    world.b.dlq_url = world.a.dlq_url
    world.b.save()
    theirs = RedriveTask.objects.create(
        pipeline=world.b, pipeline_name="bravo", source_url=world.a.dlq_url, status="completed"
    )
    url = reverse("admin:pipelines_pipeline_dlq", args=[world.a.pk])
    page = client_for(TEAM_VIEWER, world).get(url).content.decode()
    assert f">#{world.task.pk}</a>" in page and f">#{theirs.pk}</a>" not in page
    assert f">#{theirs.pk}</a>" in client_for(OPERATOR, world).get(url).content.decode()
