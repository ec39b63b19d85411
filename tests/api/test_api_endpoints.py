"""Each endpoint against the emulator, as a script would call it, every answer checked against the
schema; acts are audited as made through the API."""

from datetime import timedelta

from pipelines import clock
from pipelines.dlq import peek
from pipelines.models import (
    AuditAction,
    AuditEntry,
    AuditThrough,
    Incident,
    IncidentStatus,
    Pipeline,
    RedriveStatus,
    RedriveTask,
    Silence,
    TraceLookup,
)
from tests.api.conftest import check


def api_audit(action) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action, through=AuditThrough.API))


def open_incident(p: Pipeline) -> Incident:
    return Incident.objects.create(pipeline=p, rule="dlq", severity="warning", summary="3 messages in the DLQ")


# --- pipelines --------------------------------------------------------------------------------------


def test_it_lists_pipelines_with_their_state_and_filters_them(world, client_for, spec):
    Pipeline.objects.filter(pk=world.orders.pk).update(backlog=40, dlq_depth=3, oldest_age=90, group="payments")
    api = client_for("operator")
    body = check(spec, api.get("/api/v1/pipelines/"))
    assert body["count"] == 2
    row = next(r for r in body["results"] if r["name"] == "orders")
    assert (row["backlog"], row["dlq_depth"], row["oldest_age"], row["health"]) == (40, 3, 90, "pending")
    assert row["url"].endswith(f"/api/v1/pipelines/{world.orders.pk}/")
    assert [r["name"] for r in check(spec, api.get("/api/v1/pipelines/?group=payments"))["results"]] == ["orders"]
    assert check(spec, api.get("/api/v1/pipelines/?health=critical"))["count"] == 0
    assert check(spec, api.get("/api/v1/pipelines/?page_size=1"))["next"]


def test_it_refuses_a_bad_filter_with_its_name(world, client_for, spec):
    response = client_for("operator").get("/api/v1/pipelines/?health=sunny&tag==x")
    error = check(spec, response)["error"]
    assert response.status_code == 400
    assert set(error["fields"]) == {"health", "tag"}


def test_it_shows_one_pipeline(world, client_for, spec):
    body = check(spec, client_for("member").get(f"/api/v1/pipelines/{world.orders.pk}/"))
    assert body["dlq_url"] == world.orders.dlq_url
    assert body["queue_arn"] == world.orders.queue_arn


def test_it_reads_history_series_with_a_cap_on_hours(world, client_for, spec):
    api = client_for("member")
    body = check(spec, api.get(f"/api/v1/pipelines/{world.orders.pk}/history/?hours=6"))
    assert body["range"] == "6h"
    assert len(body["t"]) == len(body["series"]["visible"])
    response = api.get(f"/api/v1/pipelines/{world.orders.pk}/history/?hours=100000")
    assert response.status_code == 400
    assert "hours" in check(spec, response)["error"]["fields"]


def test_it_registers_a_pipeline_by_its_queue_url(world, build, account, client_for, spec):
    made = build("billing")
    api = client_for("superuser", ["register", "view"])
    response = api.post(
        "/api/v1/pipelines/",
        {"name": "billing", "account": account.pk, "queue_url": made.queue_url, "tags": {"tier": "1"}},
        format="json",
    )
    body = check(spec, response, "post")
    assert response.status_code == 201
    assert body["dlq_url"] and body["queue_arn"]  # discovered
    assert body["tags"]["tier"] == "1"
    [entry] = api_audit(AuditAction.PIPELINE_REGISTER)
    assert entry.pipeline_name == "billing"


def test_it_refuses_to_register_a_queue_that_does_not_exist(world, account, client_for, spec):
    response = client_for("superuser", ["register"]).post(
        "/api/v1/pipelines/",
        {"name": "ghost", "account": account.pk, "queue_url": f"{account.endpoint_url}/123456789012/ghost"},
        format="json",
    )
    assert response.status_code == 400
    assert "queue_url" in check(spec, response, "post")["error"]["fields"]


def test_it_needs_the_register_scope_and_the_global_permission(world, build, account, client_for, spec):
    made = build("billing")
    payload = {"name": "billing", "account": account.pk, "queue_url": made.queue_url}
    assert client_for("superuser", ["view"]).post("/api/v1/pipelines/", payload, format="json").status_code == 403
    assert client_for("member").post("/api/v1/pipelines/", payload, format="json").status_code == 403
    assert not Pipeline.objects.filter(name="billing").exists()


# --- incidents --------------------------------------------------------------------------------------


def test_it_lists_acknowledges_and_resolves_incidents(world, client_for, spec):
    incident = open_incident(world.orders)
    api = client_for("member")
    listed = check(spec, api.get("/api/v1/incidents/?status=open"))
    assert [i["id"] for i in listed["results"]] == [incident.pk]
    check(spec, api.get(f"/api/v1/incidents/{incident.pk}/"))
    acked = check(spec, api.post(f"/api/v1/incidents/{incident.pk}/acknowledge/"), "post")
    assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "mia")
    again = api.post(f"/api/v1/incidents/{incident.pk}/acknowledge/")
    assert again.status_code == 409
    assert "acknowledged (by mia)" in check(spec, again, "post")["error"]["message"]
    resolved = check(spec, api.post(f"/api/v1/incidents/{incident.pk}/resolve/", {}, format="json"), "post")
    assert resolved["status"] == IncidentStatus.RESOLVED
    assert api.post(f"/api/v1/incidents/{incident.pk}/resolve/").status_code == 409
    assert len(api_audit(AuditAction.INCIDENT_ACKNOWLEDGE)) == 1
    assert len(api_audit(AuditAction.INCIDENT_RESOLVE)) == 1


# --- DLQ --------------------------------------------------------------------------------------------


def test_it_peeks_with_bodies_only_for_those_who_may_read_them(world, client_for, spec):
    with_bodies = check(
        spec,
        client_for("operator").post(f"/api/v1/pipelines/{world.orders.pk}/dlq/peek/", {"count": 5}, format="json"),
        "post",
    )
    assert with_bodies["bodies_shown"] is True
    assert len(with_bodies["messages"]) == 3
    assert all(m["body"] for m in with_bodies["messages"])
    masked = check(spec, client_for("member").post(f"/api/v1/pipelines/{world.orders.pk}/dlq/peek/"), "post")
    assert masked["bodies_shown"] is False
    assert all(m["body"] is None and m["preview"] for m in masked["messages"])
    assert all(a["value"] is None for m in masked["messages"] for a in m["attributes"] if a["name"] != "requestId")
    entries = api_audit(AuditAction.DLQ_PEEK)
    assert sorted(e.detail["bodies_shown"] for e in entries) == [False, True]


def test_it_starts_a_redrive_and_refuses_a_second_while_it_is_active(world, client_for, spec):
    api = client_for("member")
    url = f"/api/v1/pipelines/{world.orders.pk}/dlq/redrive/"
    first = api.post(url, {"dry_run": True}, format="json")
    task = check(spec, first, "post")
    assert first.status_code == 201
    assert (task["dry_run"], task["status"], task["progress"]["status"]) == (True, "pending", "pending")
    second = api.post(url, {"rate": 10}, format="json")
    assert second.status_code == 409
    assert f"#{task['id']}" in check(spec, second, "post")["error"]["message"]
    [entry] = api_audit(AuditAction.DLQ_REDRIVE)
    assert entry.detail["dry_run"] is True


def test_it_returns_the_first_task_for_a_repeated_token(world, client_for, spec):
    api = client_for("member")
    url = f"/api/v1/pipelines/{world.orders.pk}/dlq/redrive/"
    first = check(spec, api.post(url, {"token": "once-1"}, format="json"), "post")
    again = api.post(url, {"token": "once-1"}, format="json")
    assert again.status_code == 200
    assert check(spec, again, "post")["id"] == first["id"]


def test_it_refuses_a_redrive_the_form_refuses(world, client_for, spec):
    api = client_for("member")
    response = api.post(
        f"/api/v1/pipelines/{world.orders.pk}/dlq/redrive/", {"filter_kind": "body", "filter_value": "x"}, format="json"
    )
    assert response.status_code == 400  # a body filter needs the bodies capability
    assert "filter_kind" in check(spec, response, "post")["error"]["fields"]
    response = api.post(f"/api/v1/pipelines/{world.orders.pk}/dlq/redrive/", {"rate": 9999}, format="json")
    assert "rate" in check(spec, response, "post")["error"]["fields"]
    assert not RedriveTask.objects.exists()


def test_it_shows_and_cancels_a_task(world, client_for, spec):
    api = client_for("member")
    task = api.post(f"/api/v1/pipelines/{world.orders.pk}/dlq/redrive/", {}, format="json").json()
    shown = check(spec, api.get(f"/api/v1/dlq-tasks/{task['id']}/"))
    assert shown["progress"]["summary"] == "Waiting for a worker."
    cancelled = check(spec, api.post(f"/api/v1/dlq-tasks/{task['id']}/cancel/"), "post")
    assert cancelled["status"] in (RedriveStatus.CANCELLED, "cancelling")
    assert api.post(f"/api/v1/dlq-tasks/{task['id']}/cancel/").status_code == 409
    assert len(api_audit(AuditAction.DLQ_CANCEL)) == 1


def test_it_deletes_chosen_messages_only_with_the_queue_name_typed(world, client_for, spec):
    api = client_for("operator")
    url = f"/api/v1/pipelines/{world.orders.pk}/dlq/delete/"
    queue_name = world.orders.dlq_url.rsplit("/", 1)[-1]
    wrong = api.post(url, {"ids": ["m-1"], "confirm": "orders"}, format="json")
    assert wrong.status_code == 400 and queue_name in check(spec, wrong, "post")["error"]["fields"]["confirm"][0]
    assert api.post(url, {"ids": [], "confirm": queue_name}, format="json").status_code == 400
    assert not RedriveTask.objects.exists()
    started = api.post(url, {"ids": ["m-1", "m-2", "m-1"], "confirm": queue_name}, format="json")
    task = check(spec, started, "post")
    assert started.status_code == 201 and (task["operation"], task["filter_kind"]) == ("delete", "message_ids")
    again = api.post(url, {"ids": ["m-3"], "confirm": queue_name}, format="json")
    assert again.status_code == 409 and f"#{task['id']}" in check(spec, again, "post")["error"]["message"]
    [entry] = api_audit(AuditAction.DLQ_DELETE)
    assert entry.user == world.users["operator"]
    # cancelling a deletion needs the delete capability, which the team "money" does not grant
    assert client_for("member").post(f"/api/v1/dlq-tasks/{task['id']}/cancel/").status_code == 403
    assert check(spec, api.post(f"/api/v1/dlq-tasks/{task['id']}/cancel/"), "post")["id"] == task["id"]


def test_it_purges_a_dlq_once_its_name_is_typed(world, client_for, spec):
    api = client_for("operator")
    url = f"/api/v1/pipelines/{world.other.pk}/dlq/purge/"
    assert api.post(url, {"confirm": "other"}, format="json").status_code == 400
    assert api.post(url, {"confirm": "x", "extra": 1}, format="json").status_code == 400  # unknown field
    queue_name = world.other.dlq_url.rsplit("/", 1)[-1]
    done = api.post(url, {"confirm": queue_name, "token": "purge-1"}, format="json")
    task = check(spec, done, "post")
    assert done.status_code == 201 and (task["operation"], task["status"]) == ("purge", "completed")
    assert api.post(url, {"confirm": queue_name, "token": "purge-1"}, format="json").status_code == 200
    peeked = check(
        spec, api.post(f"/api/v1/pipelines/{world.other.pk}/dlq/peek/", {"count": 10}, format="json"), "post"
    )
    assert peeked["messages"] == []
    assert len(api_audit(AuditAction.DLQ_PURGE)) == 1


# --- traces -----------------------------------------------------------------------------------------


def test_it_looks_up_a_request_and_reads_the_result_back(world, client_for, spec):
    api = client_for("member")
    response = api.post("/api/v1/traces/", {"id": "req-123", "hours": 2}, format="json")
    body = check(spec, response, "post")
    assert response.status_code == 201
    assert body["result"]["pipelines"] == ["orders"]  # only the pipelines this user may trace
    assert check(spec, api.get(f"/api/v1/traces/{body['id']}/"))["ident"] == "req-123"
    assert client_for("viewer").get(f"/api/v1/traces/{body['id']}/").status_code == 404  # someone else's
    assert len(api_audit(AuditAction.TRACE_LOOKUP)) == 1


def test_it_does_not_scan_dlqs_for_a_token_without_the_peek_scope(world, client_for, spec):
    api = client_for("member", ["trace", "view"])
    body = check(
        spec, api.post("/api/v1/traces/", {"id": "req-123", "pipeline": world.orders.pk}, format="json"), "post"
    )
    assert body["result"]["dlq_allowed"] is False
    assert sorted(m.receive_count for m in peek.scan(world.orders, 10).messages) == [1, 1, 1]
    assert TraceLookup.objects.count() == 1


# --- silences ---------------------------------------------------------------------------------------


def test_it_creates_lists_and_ends_silences(world, client_for, spec):
    api = client_for("member")
    ends = (clock.now() + timedelta(hours=2)).isoformat()
    response = api.post(
        "/api/v1/silences/", {"pipeline": world.orders.pk, "ends_at": ends, "reason": "deploy"}, format="json"
    )
    created = check(spec, response, "post")
    assert (response.status_code, created["state"], created["created_by"]) == (201, "active", "mia")
    assert [s["id"] for s in check(spec, api.get("/api/v1/silences/?state=active"))["results"]] == [created["id"]]
    ended = check(spec, api.post(f"/api/v1/silences/{created['id']}/end/"), "post")
    assert ended["state"] == "expired"
    assert api.post(f"/api/v1/silences/{created['id']}/end/").status_code == 409
    assert len(api_audit(AuditAction.OBJECT_ADD)) == 1
    assert len(api_audit(AuditAction.OBJECT_CHANGE)) == 1


def test_it_refuses_a_silence_that_ends_before_it_starts(world, client_for, spec):
    response = client_for("member").post(
        "/api/v1/silences/",
        {"pipeline": world.orders.pk, "ends_at": (clock.now() - timedelta(hours=1)).isoformat(), "reason": "x"},
        format="json",
    )
    assert response.status_code == 400
    assert "ends_at" in check(spec, response, "post")["error"]["fields"]
    assert not Silence.objects.exists()


# --- teams ------------------------------------------------------------------------------------------


def test_it_shows_a_team_member_only_their_pipelines(world, client_for, spec):
    open_incident(world.orders)
    open_incident(world.other)
    api = client_for("member")
    assert [p["name"] for p in check(spec, api.get("/api/v1/pipelines/"))["results"]] == ["orders"]
    assert [i["pipeline"]["name"] for i in check(spec, api.get("/api/v1/incidents/"))["results"]] == ["orders"]
    assert api.get(f"/api/v1/pipelines/{world.other.pk}/").status_code == 404


def test_a_token_used_by_someone_else_starts_nothing_and_shows_nothing(world, client_for, spec):
    first = check(
        spec,
        client_for("member").post(
            f"/api/v1/pipelines/{world.orders.pk}/dlq/redrive/", {"token": "shared-1", "dry_run": True}, format="json"
        ),
        "post",
    )
    reused = client_for("operator").post(
        f"/api/v1/pipelines/{world.other.pk}/dlq/redrive/", {"token": "shared-1"}, format="json"
    )
    assert reused.status_code == 400
    body = check(spec, reused, "post")
    assert "already used for another request" in body["error"]["message"] and str(first["id"]) not in str(body)
    assert RedriveTask.objects.count() == 1
