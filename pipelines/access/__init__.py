"""Who may do what on which pipeline: the one place that answers it, for pages, the API and the admin.

Two sources of a permission, checked in this order:

* the global role: superusers, and permissions given to the user or their Django groups in the admin
  (the built-in "operator" group holds every pipeline capability) — these hold on every pipeline;
* teams: a member holds the team's capabilities on the pipelines the team owns (`pipelines.models.teams`).

`user.has_perm(perm, pipeline)` answers for one pipeline (the backend below is in
AUTHENTICATION_BACKENDS); `user.has_perm(perm)` without an object answers "on at least one pipeline",
which is what a page that lists pipelines needs before it narrows the list with `visible()`.
An API token narrows its user's permissions to its scopes (`ApiToken.allows`); `can()` applies both.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.db.models import Q, QuerySet

from pipelines.models import TEAM_PERMS, ApiToken, Pipeline, Team, capabilities_granting
from pipelines.registry import tags as tag_selectors

VIEW = "pipelines.view_pipeline"
PEEK = "pipelines.peek_dlq"
BODIES = "pipelines.view_message_bodies"
REDRIVE = "pipelines.redrive_dlq"
DELETE = "pipelines.delete_dlq_messages"
TRACE = "pipelines.lookup_trace"
ACKNOWLEDGE = "pipelines.change_incident"
MANAGE_RULES = "pipelines.change_alertrule"

_GLOBAL = ModelBackend()
_CACHE = "_opsboard_teams"


def _teams(user) -> list[Team]:
    """The user's teams with the pipeline ids each owns one by one, once per request (cached on the user)."""
    cached = getattr(user, _CACHE, None)
    if cached is None:
        cached = list(Team.objects.filter(members=user).prefetch_related("pipelines"))
        for team in cached:
            team.owned_ids = {p.pk for p in team.pipelines.all()}
        setattr(user, _CACHE, cached)
    return cached


def forget(user) -> None:
    """Drop the cached teams (after membership changed within a request, and in tests)."""
    if hasattr(user, _CACHE):
        delattr(user, _CACHE)


def _granting(user, perm: str) -> list[Team]:
    app, _, codename = perm.partition(".")
    if app != "pipelines" or codename not in TEAM_PERMS:
        return []
    caps = capabilities_granting(codename)
    return [t for t in _teams(user) if caps.intersection(t.capabilities)]


def _owns(team: Team, pipeline: Pipeline) -> bool:
    if team.all_pipelines or pipeline.pk in team.owned_ids or pipeline.group in team.pipeline_groups:
        return True
    return any(tag_selectors.matches("", pipeline.tags, want_tag=t) for t in team.pipeline_tags)


def team_owns(team: Team, pipeline: Pipeline) -> bool:
    """Whether `team` owns `pipeline`: all of them, one by one, by group or by tag (for routing
    notifications by team; reads the team's pipelines once unless they were prefetched or cached)."""
    if not hasattr(team, "owned_ids"):
        team.owned_ids = {p.pk for p in team.pipelines.all()}
    return _owns(team, pipeline)


def pipeline_of(obj) -> Pipeline | None:
    """The pipeline an object belongs to (itself, or its `pipeline`), None for anything else."""
    if isinstance(obj, Pipeline):
        return obj
    pipeline = getattr(obj, "pipeline", None)
    return pipeline if isinstance(pipeline, Pipeline) else None


def is_global(user, perm: str) -> bool:
    """The permission holds on every pipeline (superuser, or given in the admin to the user or a group)."""
    return bool(user.is_active and (user.is_superuser or _GLOBAL.has_perm(user, perm)))


class TeamBackend:
    """Answers `has_perm` from teams; the global role is ModelBackend's, also on objects."""

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        return None

    def has_perm(self, user, perm, obj=None) -> bool:
        if not user.is_active or user.is_anonymous:
            return False
        if obj is None:
            return bool(_granting(user, perm))
        pipeline = pipeline_of(obj)
        if pipeline is None:
            return False
        return is_global(user, perm) or any(_owns(t, pipeline) for t in _granting(user, perm))

    def has_module_perms(self, user, app_label) -> bool:
        return app_label == "pipelines" and user.is_active and bool(_teams(user))


def can(request_or_user, perm: str, obj=None) -> bool:
    """`has_perm`, narrowed by the request's API token's scopes when there is one."""
    user = getattr(request_or_user, "user", request_or_user)
    token = getattr(request_or_user, "auth", None)
    if isinstance(token, ApiToken) and not token.allows(perm):
        return False
    return bool(user.has_perm(perm, obj) if obj is not None else user.has_perm(perm))


def owned_q(user, perm: str, prefix: str = "") -> Q | None:
    """A filter for the pipelines (or rows reaching one through `prefix`, e.g. "pipeline__") on which
    `user` holds `perm`; None when it holds on all of them."""
    if is_global(user, perm):
        return None
    q = Q(pk__in=[])
    for team in _granting(user, perm):
        if team.all_pipelines:
            return None
        q |= Q(pk__in=team.owned_ids) | Q(group__in=team.pipeline_groups)
        for expr in team.pipeline_tags:
            q |= Q(pk__in=tag_selectors.filter_by_tag(Pipeline.objects.all(), expr).values("pk"))
    if not prefix:
        return q
    return Q(**{f"{prefix}in": Pipeline.objects.filter(q).values("pk")})


def visible(request_or_user, qs: QuerySet, perm: str = VIEW, prefix: str = "") -> QuerySet:
    """`qs` narrowed to what the user may see with `perm`: pipelines (prefix "") or rows of other
    models through their pipeline (prefix "pipeline__" for a `pipeline` foreign key)."""
    user = getattr(request_or_user, "user", request_or_user)
    token = getattr(request_or_user, "auth", None)
    if not user.is_active or user.is_anonymous or (isinstance(token, ApiToken) and not token.allows(perm)):
        return qs.none()
    q = owned_q(user, perm, prefix)
    return qs if q is None else qs.filter(q)
