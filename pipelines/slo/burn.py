"""Multi-window, multi-burn-rate alerts on the SLOs (the SRE workbook's pairs).

A pair fires when an objective's budget burns at least `factor` times the sustainable rate over
both its long window (it has spent a real share of the budget) and its short one (it is still
happening, so it resolves soon after the burn stops). Each window is judged only when enough of
it was measured (compute.MIN_WINDOW_SHARE) and something was sent; an unmeasured window never
fires nor counts as good: the staleness rule speaks for missing data.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.models import Pipeline, RuleKind, Severity
from pipelines.slo.compute import Counts, Objective, objectives, window_minutes


@dataclass(frozen=True)
class Pair:
    kind: RuleKind
    factor: float  # the default threshold: burn rate on both windows
    long: int  # minutes
    short: int
    severity: Severity


PAIRS = {
    p.kind: p
    for p in (
        Pair(RuleKind.SLO_FAST, 14.4, 60, 5, Severity.CRITICAL),
        Pair(RuleKind.SLO_MEDIUM, 6.0, 6 * 60, 30, Severity.CRITICAL),
        Pair(RuleKind.SLO_SLOW, 1.0, 3 * 24 * 60, 6 * 60, Severity.WARNING),
    )
}


@dataclass(frozen=True)
class Burning:
    """A pair firing on one objective: the sentence the incident and the SLO page carry."""

    severity: Severity
    summary: str
    burn: float  # over the long window


def span(minutes: int) -> str:
    if minutes % 1440 == 0:
        days = minutes // 1440
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def figure(x: float, digits: int = 3) -> str:
    """A figure in words without an exponent: three significant digits below 100, whole above."""
    return f"{x:,.0f}" if x >= 10 ** (digits - 1) else f"{x:.{digits}g}"


def explain(o: Objective, pair: Pair, long_burn: float, short_burn: float) -> str:
    """ "freshness budget burning 16× over 1 h and 20× over 5 min: 2.4 % of the 28-day budget used in
    the last 1 h"."""
    used = 100 * long_burn * pair.long / o.window_minutes
    return (
        f"{o.title} budget burning {figure(long_burn)}× over {span(pair.long)} and {figure(short_burn)}× over "
        f"{span(pair.short)}: {figure(used, 2)} % of the {o.window_minutes // 1440}-day budget used in the last "
        f"{span(pair.long)}"
    )


def check(p: Pipeline, counts: dict[int, Counts] | None, pair: Pair, factor: float) -> Burning | None:
    """The worst objective burning at least `factor`× over both of the pair's windows, or None."""
    if not counts:
        return None
    burning = []
    for o in objectives(p, counts.get(window_minutes()), {w: counts.get(w, Counts()) for w in (pair.long, pair.short)}):
        long_burn, short_burn = o.burns.get(pair.long), o.burns.get(pair.short)
        if long_burn is None or short_burn is None or long_burn < factor or short_burn < factor:
            continue
        burning.append(Burning(pair.severity, explain(o, pair, long_burn, short_burn), long_burn))
    return max(burning, key=lambda b: b.burn, default=None)


def firing(p: Pipeline, counts: dict[int, Counts] | None, factors: dict[RuleKind, float] | None = None) -> list:
    """Every pair firing now, with why: [(pair, Burning)], for the SLO page."""
    factors = factors or {}
    out = []
    for kind, pair in PAIRS.items():
        found = check(p, counts, pair, factors.get(kind, pair.factor))
        if found is not None:
            out.append((pair, found))
    return out
