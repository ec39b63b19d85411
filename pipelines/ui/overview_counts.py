"""The overview's counts: health chips, the pager, and the pipelines per account and per group.

On a large fleet the healthy majority is not listed row by row; it is counted here, each count a
link that lists those pipelines. The three fragments are refreshed together, under one etag.
"""

from __future__ import annotations

import hashlib
from html import escape

from django.utils.safestring import mark_safe

from pipelines.models import AwsAccount, Health
from pipelines.ui.overview_query import NO_GROUP, PAGE_SIZE, PROBLEMS, Counts, Selection, last_page

#: The columns of the per-account and per-group tables, worst first.
COLUMNS = list(Health)


def _count(sel: Selection, n: int, **changes) -> str:
    """A count as a link to its pipelines; a zero is a link too (muted), so a refresh only rewrites numbers."""
    cls, text = ("ob-n", f"{n:,}") if n else ("ob-n ob-zero", "·")
    return f'<a class="{cls}" href="{escape(sel.params(**changes))}">{text}</a>'


def numbers(by: dict[str, int]) -> list[int]:
    """A line's counts in column order, then its total."""
    return [*(by[h.value] for h in COLUMNS), sum(by.values())]


def chips(sel: Selection, found: Counts, shown: str) -> str:
    """Problems, all, and one chip per health present, the one listed highlighted."""
    by = found.by_health
    items = [
        ("problems", "Problems", "", found.problems),
        ("all", "All", "", found.total),
        *((h.value, h.label, h.colour, by[h.value]) for h in Health if by[h.value]),
    ]
    out = []
    for value, label, colour, n in items:
        on = " ob-chip-on" if value == shown else ""
        dot = f'<i style="background:{colour}"></i>' if colour else ""
        out.append(
            f'<a class="ob-chip{on}" data-health="{value}" href="{escape(sel.params(health=value))}">{dot}{label} {n:,}</a>'
        )
    return "".join(out)


def describe(shown: str) -> str:
    if shown == "problems":
        return "problems (" + ", ".join(h.label.lower() for h in PROBLEMS) + ")"
    if shown in Health.values:
        return f"{Health(shown).label.lower()} pipelines"
    return "pipelines"


def pager(sel: Selection, size: int, page: int, shown: str) -> str:
    """Where the list is: "51–100 of 312 problems", with the previous and next pages."""
    pages = last_page(size)
    first = (page - 1) * PAGE_SIZE + 1 if size else 0
    last = min(page * PAGE_SIZE, size)
    parts = [f'<span class="ob-range">{first:,}–{last:,} of {size:,} {describe(shown)}</span>']
    if page > 1:
        parts.append(f'<a rel="prev" href="{escape(sel.params(health=sel.health, page=page - 1))}">← previous</a>')
    if page < pages:
        parts.append(f'<a rel="next" href="{escape(sel.params(health=sel.health, page=page + 1))}">next →</a>')
    if shown == "problems" and not sel.health:  # collapsed because the selection is large
        parts.append('<span class="ob-muted">the others are counted below</span>')
    return " · ".join(parts)


def _table(title: str, key: str, rows: list[tuple[str, str, dict[str, int]]], sel: Selection) -> str:
    """One table: a line per account (or group) with a count per health, each a link."""
    if not rows:
        return ""
    head = "".join(f'<th class="num"><i style="background:{h.colour}"></i>{h.label}</th>' for h in COLUMNS)
    body = []
    for value, label, by in rows:
        links = [*({key: value, "health": h.value} for h in COLUMNS), {key: value, "health": "all"}]
        cells = "".join(
            f'<td class="num">{_count(sel, n, **to)}</td>' for n, to in zip(numbers(by), links, strict=True)
        )
        body.append(
            f'<tr data-k="{escape(line_key(key, value))}"><th><a href="{escape(sel.params(**{key: value}))}">{label}</a></th>'
            f"{cells}</tr>"
        )
    return (
        f'<table class="ob-counts" data-by="{key}"><caption>{title}</caption>'
        f'<thead><tr><th></th>{head}<th class="num">All</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def line_key(key: str, value: str) -> str:
    return f"{key[0]}:{value}"


def _lines(found: Counts, accounts: list[AwsAccount]) -> tuple[list, list]:
    """The per-account and per-group lines: (value, label, counts), in the order shown."""
    names = {a.pk: a.name for a in accounts}
    by_account = sorted(
        ((str(pk), escape(names.get(pk, f"account {pk}")), by) for pk, by in found.by_account.items()),
        key=lambda row: row[1].lower(),
    )
    by_group = sorted(
        (
            (group or NO_GROUP, escape(group) if group else '<span class="ob-muted">no group</span>', by)
            for group, by in found.by_group.items()
        ),
        key=lambda row: (row[0] == NO_GROUP, row[0].lower()),
    )
    return by_account, by_group


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=6).hexdigest()


def fragments(sel: Selection, found: Counts, accounts: list[AwsAccount], shown: str, size: int, page: int) -> dict:
    """The counted fragments' HTML, their counts by line, and an etag in two halves: the tables' shape
    (which lines, which links) and the numbers. A refresh whose shape still holds gets numbers only."""
    by_account, by_group = _lines(found, accounts)
    parts = {  # key → the element with id ob-<key>; every value escaped where it is written
        "chips": mark_safe(chips(sel, found, shown)),
        "pager": mark_safe(pager(sel, size, page, shown)),
        "groups": mark_safe(
            _table("Per account", "account", by_account, sel) + _table("Per group", "group", by_group, sel)
        ),
    }
    lines = {
        **{line_key("account", v): numbers(by) for v, _, by in by_account},
        **{line_key("group", v): numbers(by) for v, _, by in by_group},
    }
    shape = _digest(sel.params(), *(f"{v}\x1e{label}" for v, label, _ in [*by_account, *by_group]))
    values = _digest(parts["chips"], parts["pager"], repr(sorted(lines.items())))
    return {"parts": parts, "lines": lines, "etag": f"{shape}-{values}", "shape": shape}
