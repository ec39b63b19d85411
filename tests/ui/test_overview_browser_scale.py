"""In a real headless Chromium, on 2,000 pipelines: the overview lists the problems, search narrows it,
a group's count filters it, a tag filter works, and the 30-second refresh patches only the changed row."""

import time

import pytest

from pipelines.models import Pipeline
from tests.browser import SHOTS, browser_test, log_in
from tests.ui.fleet import make_fleet

pytestmark = browser_test


def row_names(page) -> list[str]:
    return page.eval_on_selector_all("#ob-rows tr[data-pk]", "rows => rows.map(r => r.dataset.pipeline)")


@pytest.mark.django_db(transaction=True)
def test_an_operator_narrows_2000_pipelines_by_search_group_and_tag(page, live_server):
    make_fleet(2000)
    # Not under test here: the test server shares one SQLite connection between its threads, so the
    # requests the page makes beside the rows' (top spenders, the incident strip the refresh reloads
    # in parallel) must not reach it while the rows' does.
    page.route("**/overview/spenders/**", lambda route: route.fulfill(status=200, body=""))
    page.route("**/incidents/strip/**", lambda route: route.fulfill(status=200, body=""))
    log_in(page, live_server)  # after the routes: logging in lands on the overview
    page.clock.install()  # to run the 30-second refresh when the test says
    started = time.monotonic()
    page.goto(f"{live_server.url}/admin/")
    loaded = time.monotonic() - started
    names = row_names(page)
    # 2,000 pipelines, 60 of them problems: one page of 50, worst first; the rest counted.
    assert len(names) == 50 and "1–50 of 60 problems" in page.inner_text("#ob-pager")
    assert page.locator("#ob-rows tr.ob-critical").count() == 20
    assert "Per group" in page.inner_text("#ob-groups")
    assert loaded < 5, f"the overview took {loaded:.1f} s to load"
    page.screenshot(path=str(SHOTS / "overview-2000.png"), full_page=True)

    # The refresh: one listed row's backlog changes; only that row is replaced, the others stay as they are.
    first, second = names[0], names[1]
    page.eval_on_selector(f'#ob-rows tr[data-pipeline="{second}"]', "tr => { tr.dataset.kept = 'yes'; }")
    Pipeline.objects.filter(name=first).update(backlog=123457)
    with page.expect_response(lambda r: "/overview/rows/" in r.url) as answer:
        page.clock.run_for(31_000)
    assert len(answer.value.body()) < 10_000
    page.wait_for_function("() => document.querySelector('#ob-rows tr').innerText.includes('123,457')")
    assert page.eval_on_selector(f'#ob-rows tr[data-pipeline="{second}"]', "tr => tr.dataset.kept") == "yes"

    # Search by name: one row.
    page.fill("#ob-q", "svc-01234")
    page.press("#ob-q", "Enter")
    page.wait_for_url("**q=svc-01234**")
    assert row_names(page) == ["svc-01234"]
    page.screenshot(path=str(SHOTS / "overview-2000-search.png"), full_page=True)

    # A group's count of healthy pipelines lists them.
    page.goto(f"{live_server.url}/admin/")
    link = page.locator('table[data-by="group"] tr', has_text="search").locator("a[href*='health=ok']")
    expected = int(link.inner_text())
    link.click()
    page.wait_for_url("**group=search**")
    assert f"of {expected} ok pipelines" in page.inner_text("#ob-pager")
    shown = row_names(page)
    assert len(shown) == 50 and set(Pipeline.objects.filter(name__in=shown).values_list("group", flat=True)) == {
        "search"
    }
    page.screenshot(path=str(SHOTS / "overview-2000-group.png"), full_page=True)

    # A tag filter, on top of the group.
    page.fill("#ob-tag", "team=core")
    page.press("#ob-tag", "Enter")
    page.wait_for_url("**tag=team%3Dcore**")
    tagged = row_names(page)
    assert tagged and all(p.tags["team"] == "core" for p in Pipeline.objects.filter(name__in=tagged))
    assert all(p.group == "search" for p in Pipeline.objects.filter(name__in=tagged))

    # A tag that cannot be read: a message on the page, not an error.
    page.fill("#ob-tag", "=x")
    page.press("#ob-tag", "Enter")
    page.wait_for_selector("#ob-filter-error")
    assert "is not a tag" in page.inner_text("#ob-filter-error")
    page.screenshot(path=str(SHOTS / "overview-2000-bad-tag.png"), full_page=True)
