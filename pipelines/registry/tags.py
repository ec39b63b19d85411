"""Pipeline groups and tags: how they are written, parsed and filtered on. Pure apart from querysets.

A pipeline has one `group` (the team or service it belongs to) and free-form `tags`, a JSON object
of key → value ("" for a tag that is only a key). Everywhere pipelines can be narrowed (overview,
incidents, /metrics, notification routing) the same two selectors apply:

* a group: the pipeline's group equals it (case-sensitive, as typed in the admin);
* a tag: `key` (the tag is present, whatever its value) or `key=value` (present with that value).

A notification channel names groups (any of them) and a tag the same way. The queue's own AWS tags
are imported at discovery and merged in with `merge_aws_tags`: tags set by hand win.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from django.db.models import CharField, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

#: The longest key and value kept (AWS allows 128 and 256 characters).
MAX_KEY, MAX_VALUE = 128, 256
#: At most this many tags per pipeline (AWS allows 50 per queue).
MAX_TAGS = 50
#: The longest group (Pipeline.group's max_length).
MAX_GROUP = 100
_KEY_RE = re.compile(r"^[^\s=,][^=,]*$")


class TagError(ValueError):
    """Tags as typed cannot be read; the message says why."""


def parse_tag(expr: str) -> tuple[str, str | None]:
    """`key` → (key, None); `key=value` → (key, value). Raises TagError for an empty or bad key."""
    key, sep, value = (expr or "").strip().partition("=")
    key = key.strip()
    if not key or not _KEY_RE.match(key) or len(key) > MAX_KEY:
        raise TagError(f"{expr!r} is not a tag: write key or key=value (a key has no spaces at its ends, no = or ,).")
    value = value.strip()
    if len(value) > MAX_VALUE:
        raise TagError(f"The value of tag {key} is longer than {MAX_VALUE} characters.")
    return key, (value if sep else None)


def parse_tags(text: str) -> dict[str, str]:
    """Tags typed as `key=value, key2, key3=v` (commas or new lines between them) as a dict."""
    out: dict[str, str] = {}
    for part in re.split(r"[,\n]", text or ""):
        if part.strip():
            key, value = parse_tag(part.strip())
            out[key] = value or ""
    if len(out) > MAX_TAGS:
        raise TagError(f"At most {MAX_TAGS} tags per pipeline (got {len(out)}).")
    return out


def format_tags(tags: dict[str, str] | None) -> str:
    """The tags as they are typed: `key=value, key` in key order."""
    return ", ".join(f"{k}={v}" if v else k for k, v in sorted((tags or {}).items()))


def canonical_tag(expr: str) -> str:
    """A tag selector as it is stored: `key` or `key=value`, spaces around either dropped ('' stays '')."""
    if not (expr or "").strip():
        return ""
    key, value = parse_tag(expr)
    return key if value is None else f"{key}={value}"


def parse_groups(text: str) -> list[str]:
    """Groups typed as `payments, search` (commas or new lines between them), each once, in order."""
    out = list(dict.fromkeys(g.strip() for g in re.split(r"[,\n]", text or "") if g.strip()))
    for group in out:
        if len(group) > MAX_GROUP:
            raise TagError(f"The group {group[:40]!r}… is longer than {MAX_GROUP} characters.")
    return out


def filter_by_tag(qs: QuerySet, expr: str, prefix: str = "") -> QuerySet:
    """Pipelines (or rows reaching a pipeline through `prefix`, e.g. "pipeline__") carrying the tag."""
    key, value = parse_tag(expr)
    if value is None:
        return qs.filter(**{f"{prefix}tags__has_key": key})
    # Cast: compared as text on every backend (SQLite would compare JSON otherwise).
    return qs.alias(_tag_value=Cast(KeyTextTransform(key, f"{prefix}tags"), CharField())).filter(_tag_value=value)


def filter_by_group(qs: QuerySet, group: str, prefix: str = "") -> QuerySet:
    return qs.filter(**{f"{prefix}group": group})


def matches(
    group: str,
    tags: dict[str, str] | None,
    *,
    want_group: str = "",
    want_tag: str = "",
    want_groups: Collection[str] = (),
) -> bool:
    """The same selection in Python, for a pipeline already loaded (empty selectors match all);
    `want_groups`: the group is any one of these."""
    if want_group and group != want_group:
        return False
    if want_groups and group not in want_groups:
        return False
    if want_tag:
        key, value = parse_tag(want_tag)
        tags = tags or {}
        if key not in tags or (value is not None and tags[key] != value):
            return False
    return True


def importable(aws_tags: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """AWS tags that can be typed back in the admin (kept), and the keys of those that cannot
    (a key with = or a comma, a value with a comma or a line break: AWS allows = in keys)."""
    kept, refused = {}, []
    for key, value in sorted((aws_tags or {}).items()):
        value = (value or "").strip()
        if any(c in key for c in "=,\n") or any(c in value for c in ",\n"):
            refused.append(key)
            continue
        try:
            parsed_key, parsed_value = parse_tag(f"{key}={value}")
        except TagError:
            refused.append(key)
            continue
        kept[parsed_key] = parsed_value or ""
    return kept, refused


def merge_aws_tags(
    tags: dict[str, str] | None,
    group: str,
    previous: dict[str, str] | None,
    current: dict[str, str],
    group_tag: str = "",
) -> tuple[dict[str, str], str]:
    """A pipeline's tags and group after AWS reported the queue's tags `current` (`previous`: what it
    reported last time). Returns (tags, group).

    A tag whose value differs from the one last imported (or that AWS never had) was set by hand and
    wins; the others follow AWS, so a refresh picks up changed values and drops tags AWS no longer
    has. The group follows the `group_tag` tag the same way: taken when the group is empty or still
    the value last imported. At most MAX_TAGS tags are kept, hand-set ones first.
    """
    previous = previous or {}
    hand = {k: v for k, v in (tags or {}).items() if previous.get(k) != v}
    merged = dict(hand)
    for key in sorted(current):
        if len(merged) >= MAX_TAGS:
            break
        merged.setdefault(key, current[key])
    if group_tag and (not group or group == previous.get(group_tag)):
        group = (current.get(group_tag) or "")[:MAX_GROUP]
    return merged, group
