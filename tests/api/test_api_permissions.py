"""Who may call what, in one table: each endpoint × role → the status the API answers.

orders is owned by the team "money" (member: view, peek, trace, redrive, acknowledge; viewer: view);
other is owned by no team. The operator group holds every pipeline capability on every pipeline but not
registering; the superuser holds everything. `member:view` is the member with a token scoped to view
only. Not visible → 404, visible but not permitted → 403; a 400 or 409 means the permission passed.
"""

from datetime import timedelta

import pytest

from pipelines import clock
from pipelines.models import Incident, RedriveStatus, RedriveTask, Silence, TraceLookup
from tests.api.conftest import token_client

ROLES = ("superuser", "operator", "member", "viewer", "outsider", "member:view")

# (name, method, path, body): {o} is orders' id, {x} other's, {i} an incident, {t} a finished task,
# {s} a silence, {l} a lookup (all on orders, the lookup the superuser's).
TABLE = [
    ("list pipelines", "get", "/api/v1/pipelines/", None, (200, 200, 200, 200, 403, 200)),
    ("pipeline, owned", "get", "/api/v1/pipelines/{o}/", None, (200, 200, 200, 200, 404, 200)),
    ("pipeline, not owned", "get", "/api/v1/pipelines/{x}/", None, (200, 200, 404, 404, 404, 404)),
    ("history", "get", "/api/v1/pipelines/{o}/history/", None, (200, 200, 200, 200, 404, 200)),
    ("register", "post", "/api/v1/pipelines/", {}, (400, 403, 403, 403, 403, 403)),
    ("peek, owned", "post", "/api/v1/pipelines/{o}/dlq/peek/", {"count": 1}, (200, 200, 200, 403, 404, 403)),
    ("peek, not owned", "post", "/api/v1/pipelines/{x}/dlq/peek/", {"count": 1}, (200, 200, 404, 404, 404, 404)),
    ("redrive", "post", "/api/v1/pipelines/{o}/dlq/redrive/", {"dry_run": True}, (201, 201, 201, 403, 404, 403)),
    (
        "delete messages",
        "post",
        "/api/v1/pipelines/{o}/dlq/delete/",
        {"ids": ["m-1"], "confirm": "not-the-name"},
        (400, 400, 403, 403, 404, 403),
    ),
    ("purge", "post", "/api/v1/pipelines/{o}/dlq/purge/", {"confirm": "not-the-name"}, (400, 400, 403, 403, 404, 403)),
    ("task", "get", "/api/v1/dlq-tasks/{t}/", None, (200, 200, 200, 200, 404, 200)),
    ("cancel task", "post", "/api/v1/dlq-tasks/{t}/cancel/", None, (409, 409, 409, 403, 404, 403)),
    ("list incidents", "get", "/api/v1/incidents/", None, (200, 200, 200, 200, 403, 200)),
    ("incident", "get", "/api/v1/incidents/{i}/", None, (200, 200, 200, 200, 404, 200)),
    ("acknowledge", "post", "/api/v1/incidents/{i}/acknowledge/", None, (200, 200, 200, 403, 404, 403)),
    ("trace", "post", "/api/v1/traces/", {"id": "req-1", "pipeline": "{o}"}, (201, 201, 201, 403, 404, 403)),
    ("trace, all pipelines", "post", "/api/v1/traces/", {"id": "req-1"}, (201, 201, 201, 403, 403, 403)),
    ("stored lookup", "get", "/api/v1/traces/{l}/", None, (200, 404, 404, 404, 404, 404)),
    ("list silences", "get", "/api/v1/silences/", None, (200, 200, 200, 200, 403, 200)),
    (
        "silence",
        "post",
        "/api/v1/silences/",
        {"pipeline": "{o}", "ends_at": "+1h", "reason": "x"},
        (201, 201, 201, 403, 404, 403),
    ),
    ("end silence", "post", "/api/v1/silences/{s}/end/", None, (200, 200, 200, 403, 404, 403)),
]


def _fill(value, ids: dict):
    if isinstance(value, str):
        if value == "+1h":
            return (clock.now() + timedelta(hours=1)).isoformat()
        out = value.format(**ids)
        return int(out) if out.isdigit() and value.startswith("{") else out
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
def test_it_answers_each_endpoint_for_each_role_as_the_table_says(role, world):
    o, x = world.orders, world.other
    at = clock.now()
    ids = {
        "o": o.pk,
        "x": x.pk,
        "i": Incident.objects.create(pipeline=o, rule="dlq", severity="warning", summary="s").pk,
        "t": RedriveTask.objects.create(
            pipeline=o, pipeline_name=o.name, source_url=o.dlq_url, status=RedriveStatus.COMPLETED
        ).pk,
        "s": Silence.objects.create(pipeline=o, ends_at=at + timedelta(hours=1), reason="r").pk,
        "l": TraceLookup.objects.create(
            user=world.users["superuser"], ident="a", window_start=at, window_end=at, verdict="unknown"
        ).pk,
    }
    user, _, scopes = role.partition(":")
    api = token_client(world.users[user], [scopes] if scopes else None)
    got, want = {}, {}
    for name, method, path, body, statuses in TABLE:
        kwargs = {"format": "json"} if body is not None else {}
        response = getattr(api, method)(_fill(path, ids), _fill(body, ids) if body is not None else None, **kwargs)
        got[name], want[name] = response.status_code, statuses[ROLES.index(role)]
        assert response["Content-Type"] == "application/json"
    assert got == want
