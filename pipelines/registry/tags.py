"""Pipeline groups and tags: how they are written, parsed and filtered on. Pure apart from querysets.

A pipeline has one `group` (the team or service it belongs to) and free-form `tags`, a JSON object
of key → value ("" for a tag that is only a key). Everywhere pipelines can be narrowed (overview,
incidents, /metrics, notification routing) the same two selectors apply:

* a group: the pipeline's group equals it (case-sensitive, as typed in the admin);
* a tag: `key` (the tag is present, whatever its value) or `key=value` (present with that value).
"""

from __future__ import annotations

import re

from django.db.models import CharField, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

#: The longest key and value kept (AWS allows 128 and 256 characters).
MAX_KEY, MAX_VALUE = 128, 256
#: At most this many tags per pipeline (AWS allows 50 per queue).
MAX_TAGS = 50
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
            key, value = parse_tag(part)
            out[key] = value or ""
    if len(out) > MAX_TAGS:
        raise TagError(f"At most {MAX_TAGS} tags per pipeline (got {len(out)}).")
    return out


def format_tags(tags: dict[str, str] | None) -> str:
    """The tags as they are typed: `key=value, key` in key order."""
    return ", ".join(f"{k}={v}" if v else k for k, v in sorted((tags or {}).items()))


def filter_by_tag(qs: QuerySet, expr: str, prefix: str = "") -> QuerySet:
    """Pipelines (or rows reaching a pipeline through `prefix`, e.g. "pipeline__") carrying the tag."""
    key, value = parse_tag(expr)
    if value is None:
        return qs.filter(**{f"{prefix}tags__has_key": key})
    # Cast: compared as text on every backend (SQLite would compare JSON otherwise).
    return qs.alias(_tag_value=Cast(KeyTextTransform(key, f"{prefix}tags"), CharField())).filter(_tag_value=value)


def filter_by_group(qs: QuerySet, group: str, prefix: str = "") -> QuerySet:
    return qs.filter(**{f"{prefix}group": group})


def matches(group: str, tags: dict[str, str] | None, *, want_group: str = "", want_tag: str = "") -> bool:
    """The same selection in Python, for a pipeline already loaded (empty selectors match all)."""
    if want_group and group != want_group:
        return False
    if want_tag:
        key, value = parse_tag(want_tag)
        tags = tags or {}
        if key not in tags or (value is not None and tags[key] != value):
            return False
    return True
