"""The overview on a large fleet: problems first, the rest counted per account and group, filters and
search applied by the database, one page of rows at a time, and a refresh that sends only what changed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pipelines.clock import now
from pipelines.models import Health, Pipeline
from pipelines.ui.overview_query import Selection, filtered
from tests.ui.fleet import kind, make_fleet

ROW = re.compile(r'<tr class="ob-row ob-(\w+)" data-pipeline="([^"]+)" data-pk="(\d+)" data-etag="(\w+)"')


@pytest.fixture
def viewer(client, db):
    user = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_pipeline", "view_incident"]))
    client.force_login(user)
    return client


def get(client, **params) -> str:
    res = client.get(reverse("admin:index"), params)
    assert res.status_code == 200, res.status_code
    return res.content.decode()


def rows(html: str) -> list[tuple[str, str]]:
    """(health, name) of each listed row, in order."""
    return [(m[1], m[2]) for m in ROW.finditer(html)]


def queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params or {}).status_code == 200
    return len(ctx.captured_queries)


def test_it_costs_the_same_queries_for_50_or_500_pipelines(viewer):
    make_fleet(50)
    page, html_rows = queries(viewer, reverse("admin:index")), queries(viewer, reverse("admin:overview_rows"))
    known = {"known": "1.abc", "counts": "x", "since": "0"}
    refresh = queries(viewer, reverse("admin:overview_rows"), known)
    filtered_page = queries(viewer, reverse("admin:index"), {"tag": "team=core", "group": "search", "q": "svc"})
    make_fleet(450, start=50)
    assert Pipeline.objects.count() == 500
    assert queries(viewer, reverse("admin:index")) == page
    assert queries(viewer, reverse("admin:overview_rows")) == html_rows
    assert queries(viewer, reverse("admin:overview_rows"), known) == refresh
    assert queries(viewer, reverse("admin:index"), {"tag": "team=core", "group": "search", "q": "svc"}) == filtered_page


def test_it_lists_problems_first_worst_first_and_counts_the_rest(viewer):
    make_fleet(500)
    html = get(viewer)
    listed = rows(html)
    # 500 pipelines: five of each problem, listed worst first; the OK, disabled and pending ones are counted.
    assert [h for h, _ in listed] == ["critical"] * 5 + ["warning"] * 5 + ["stale"] * 5
    crit = [n for h, n in listed if h == "critical"]
    assert crit == sorted(crit, reverse=True)  # the largest backlog first (its number is the backlog's)
    assert "1–15 of 15 problems" in html and "the others are counted below" in html
    assert "Problems 15</a>" in html and "All 500</a>" in html and "OK 475</a>" in html
    assert "caption>Per account</caption>" in html and "caption>Per group</caption>" in html


def test_it_shows_every_row_of_a_fleet_that_fits_on_a_page(viewer):
    make_fleet(40)
    listed = rows(get(viewer))
    assert len(listed) == 40 and listed[0][0] == "critical" and listed[-1][0] == "disabled"


def test_each_count_links_to_its_pipelines(viewer):
    make_fleet(500)
    html = get(viewer)
    groups = html[html.index('data-by="group"') :]
    link = re.search(r'<a class="ob-n" href="([^"]*group=payments[^"]*health=ok[^"]*)">(\d+)</a>', groups)
    assert link, groups[:2000]
    expected = int(link[2])
    assert expected == sum(1 for i in range(500) if i % 5 == 0 and kind(i) == "ok")
    listed = get(viewer, **dict(p.split("=") for p in link[1].lstrip("?").replace("&amp;", "&").split("&")))
    names = {n for _, n in rows(listed)}
    assert len(names) == min(expected, 50) and f"of {expected} ok pipelines" in listed
    assert all(Pipeline.objects.get(name=n).group == "payments" for n in names)
    no_group = get(viewer, group="-", health="all")
    assert "of 100 pipelines" in no_group and all(Pipeline.objects.get(name=n).group == "" for _, n in rows(no_group))


def test_search_and_every_filter_narrow_the_list(viewer):
    pipes = make_fleet(500, accounts=3)
    assert [n for _, n in rows(get(viewer, q="svc-00123"))] == ["svc-00123"]
    assert [n for _, n in rows(get(viewer, q="QUEUE-00042"))] == ["svc-00042"]  # the queue name, any case
    acct = pipes[1].account
    by_account = rows(get(viewer, account=acct.pk, health="all"))
    assert by_account and all(Pipeline.objects.get(name=n).account_id == acct.pk for _, n in by_account)
    core = rows(get(viewer, tag="team=core", health="all"))
    assert core and all(Pipeline.objects.get(name=n).tags["team"] == "core" for _, n in core)
    pci = get(viewer, tag="pci", health="all")
    assert f"of {sum(1 for i in range(500) if i % 7 == 0)} pipelines" in pci
    crit = rows(get(viewer, health="critical", group="payments"))
    assert [h for h, _ in crit] == ["critical"] * 5  # 0, 100, …: every critical one is in payments
    assert rows(get(viewer, tag="team=nobody")) == [] and "No pipelines match these filters" in get(viewer, q="zz")


def test_a_bad_filter_gets_a_message_not_an_error(viewer):
    make_fleet(60)
    html = get(viewer, tag="=oops")
    assert "is not a tag: write key or key=value" in html and "The tag filter is left out." in html
    for odd in ({"page": "-3"}, {"page": "x"}, {"health": "sick"}, {"q": "a\x00b"}, {"group": "\x00"}, {"page": "99"}):
        assert viewer.get(reverse("admin:index"), odd).status_code == 200
        assert viewer.get(reverse("admin:overview_rows"), {**odd, "known": ""}).status_code == 200
    for held in ({"known": "abc,1.zz!,99999999999999.x,.", "since": "nan"}, {"known": "1." * 500, "since": "1e400"}):
        answer = viewer.get(reverse("admin:overview_rows"), held)
        assert answer.status_code == 200 and len(answer.json()["order"]) == 3  # the three problems
    last = get(viewer, health="all", page="99")  # past the end: the last page
    assert "51–60 of 60 pipelines" in last


def test_pages_hold_fifty_rows_each_without_overlap(viewer):
    make_fleet(120)
    first, second, third = (rows(get(viewer, health="all", page=p)) for p in (1, 2, 3))
    assert len(first) == len(second) == 50 and len(third) == 20
    assert not {n for _, n in first} & {n for _, n in second}
    assert "51–100 of 120 pipelines" in get(viewer, health="all", page=2)


def test_the_database_judges_health_as_the_rows_do(viewer, settings):
    at = now()
    make_fleet(300, at=at)
    # Staleness depends on each pipeline's own poll interval: three intervals after its last sync.
    Pipeline.objects.filter(name="svc-00010").update(poll_interval=1200, last_sync_at=at - timedelta(minutes=59))
    Pipeline.objects.filter(name="svc-00011").update(poll_interval=1200, last_sync_at=at - timedelta(minutes=61))
    Pipeline.objects.filter(name="svc-00012").update(health_reasons=[["info", "no DLQ alarm", "x"]], last_sync_at=None)
    got = dict(filtered(Selection(), at).values_list("name", "now_health"))
    for p in Pipeline.objects.all():
        assert got[p.name] == p.current_health(at)[0].value, p.name
    assert got["svc-00010"] == "ok" and got["svc-00011"] == "stale" and got["svc-00012"] == "ok"


def refresh(client, html_or_state, **params):
    res = client.get(reverse("admin:overview_rows"), {**html_or_state, **params})
    assert res.status_code == 200 and res["Content-Type"] == "application/json"
    return res


def state(html: str) -> dict:
    """What overview.js sends: the rows it holds, the counts' etag and the server time it last saw."""
    known = ",".join(f"{m[3]}.{m[4]}" for m in ROW.finditer(html))
    return {
        "known": known,
        "counts": re.search(r'data-counts="([\w-]+)"', html)[1],
        "since": re.search(r'data-at="([\d.]+)"', html)[1],
    }


def test_the_refresh_answers_only_what_changed(viewer):
    make_fleet(500)
    html = get(viewer)
    held = state(html)
    quiet = refresh(viewer, held, since=str(now().timestamp() + 61))  # no sync since the last answer either
    assert set(quiet.json()) == {"at"} and len(quiet.content) < 100  # nothing changed: a few bytes
    recent = refresh(viewer, held).json()  # the syncs of the minute before the page come again, as numbers
    assert set(recent) == {"at", "synced"}
    # A listed pipeline's backlog moves: that row alone comes back, with the order unchanged.
    Pipeline.objects.filter(name="svc-00100").update(backlog=50101)
    one = refresh(viewer, held).json()
    target = str(Pipeline.objects.get(name="svc-00100").pk)
    assert list(one["rows"]) == [target] and "50,101" in one["rows"][target] and "counts" not in one
    # A healthy pipeline turns critical: it joins the list, and the counts change with it.
    Pipeline.objects.filter(name="svc-00250").update(health=Health.CRITICAL, backlog=99999)
    more = refresh(viewer, held).json()
    joined = str(Pipeline.objects.get(name="svc-00250").pk)
    assert more["order"][0] == int(joined) and set(more["rows"]) == {target, joined}
    assert "Problems 16</a>" in more["counts"]["chips"] and len(more["order"]) == 16
    # The same lines per account and group: only their numbers come, not the tables.
    assert "groups" not in more["counts"] and more["lines"]["g:payments"][:3] == [6, 0, 0]  # svc-00250's group
    assert more["lines"]["g:search"][:3] == [0, 5, 0]
    # A sync that changes nothing shown moves only its "last sync" time.
    later = now() + timedelta(seconds=5)
    Pipeline.objects.filter(name="svc-00000").update(last_sync_at=later)
    synced = refresh(viewer, held, since=str(later.timestamp() + 59)).json()
    assert synced.get("synced") == {str(Pipeline.objects.get(name="svc-00000").pk): later.timestamp()}
    assert target in synced["rows"] and str(Pipeline.objects.get(name="svc-00000").pk) not in synced["rows"]


def test_the_refresh_keeps_the_filters_and_the_page(viewer):
    make_fleet(300)
    html = get(viewer, health="all", group="search", page=2)
    held = state(html)
    assert refresh(viewer, held, health="all", group="search", page=2).json().keys() <= {"at", "synced"}
    moved = Pipeline.objects.filter(group="search").order_by("pk")[0]
    Pipeline.objects.filter(pk=moved.pk).update(group="mail")  # leaves the selection
    changed = refresh(viewer, held, health="all", group="search", page=2).json()
    assert moved.pk not in changed["order"] and "counts" in changed


def test_the_refresh_and_the_page_need_the_view_permission(client, db):
    make_fleet(10)
    user = User.objects.create_user("nobody", password="pw-for-tests-1", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:overview_rows"), {"known": ""}).status_code == 403
    landing = client.get(reverse("admin:index"), {"tag": "pci"})  # a note that nothing is shared, no rows
    assert landing.status_code == 200 and 'id="ob-overview"' not in landing.content.decode()
    assert client.get(reverse("admin:overview_spenders")).status_code == 403
