"""List filters by group and by tag, for the pipeline list and for lists of rows that reach a pipeline.

With thousands of pipelines the distinct groups and tags are too many to list, so each filter shows
the most used values as links and a text box for any other (`key` or `key=value` for a tag, read
by registry/tags.py like every other tag filter). A tag that cannot be read is reported on the page
and selects nothing.
"""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.db.models import Count

from pipelines import access
from pipelines.models import Pipeline
from pipelines.registry import tags

#: The most used values listed as links; any other is typed in the filter's text box.
TOP_VALUES = 15


class TextListFilter(admin.SimpleListFilter):
    """A list filter with a text box and a short list of the most used values."""

    template = "admin/pipelines/text_filter.html"
    #: How the filtered rows reach a pipeline ("" for pipelines, "pipeline__" for incidents).
    prefix = ""
    placeholder = ""

    def has_output(self):
        return True

    def choices(self, changelist):
        current = self.value() or ""
        keep = [(k, v) for k, v in changelist.params.items() if k != self.parameter_name]
        yield {"text_box": True, "name": self.parameter_name, "value": current, "keep": keep, "hint": self.placeholder}
        yield {
            "selected": not current,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class GroupFilter(TextListFilter):
    title = "group"
    parameter_name = "group"
    placeholder = "a group"

    def lookups(self, request, model_admin):
        rows = (
            access.visible(request, Pipeline.objects.exclude(group=""))  # only the groups the user may see
            .values("group")
            .annotate(n=Count("pk"))
            .order_by("-n", "group")[:TOP_VALUES]
        )
        return [(r["group"], f"{r['group']} ({r['n']})") for r in rows]

    def queryset(self, request, queryset):
        group = (self.value() or "").strip()
        return tags.filter_by_group(queryset, group, self.prefix) if group else queryset


class TagFilter(TextListFilter):
    title = "tag"
    parameter_name = "tag"
    placeholder = "key or key=value"

    def lookups(self, request, model_admin):
        """The most common key=value pairs: one query reading every pipeline's tags (small JSON objects)."""
        seen = Counter()
        mine = access.visible(request, Pipeline.objects.exclude(tags={}))  # only the tags the user may see
        for row in mine.values_list("tags", flat=True).iterator(chunk_size=2000):
            seen.update(f"{k}={v}" if v else k for k, v in (row or {}).items())
        return [(tag, f"{tag} ({n})") for tag, n in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]]

    def queryset(self, request, queryset):
        expr = (self.value() or "").strip()
        if not expr:
            return queryset
        try:
            return tags.filter_by_tag(queryset, expr, self.prefix)
        except tags.TagError as exc:
            messages.error(request, f"Tag filter: {exc}")
            return queryset.none()


class PipelineGroupFilter(GroupFilter):
    """By the group of the row's pipeline."""

    prefix = "pipeline__"


class PipelineTagFilter(TagFilter):
    """By a tag of the row's pipeline."""

    prefix = "pipeline__"
