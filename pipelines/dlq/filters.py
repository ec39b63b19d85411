"""Which DLQ messages an action selects. Pure: tested without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.dlq.queues import RedriveError
from pipelines.dlq.selection import Search
from pipelines.models import (
    FilterKind,
    RedriveTask,
)

MAX_IDS = 1000


def parse_ids(text: str) -> list[str]:
    """Ids one per line (or separated by spaces or commas), duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for part in (text or "").replace(",", " ").split():
        seen.setdefault(part.strip(), None)
    return list(seen)


def attribute_value(message: dict[str, Any], name: str) -> str | None:
    attr = (message.get("MessageAttributes") or {}).get(name) or {}
    return attr.get("StringValue")


@dataclass(frozen=True)
class Filter:
    """Which messages an action selects. Pure: tested without I/O."""

    kind: str = FilterKind.NONE
    attribute: str = ""
    value: str = ""
    ids: frozenset[str] = frozenset()
    #: The criteria of a SEARCH filter (kept as JSON in the task's filter_value).
    search: Search | None = None

    @classmethod
    def from_search(cls, search: Search) -> Filter:
        return cls(FilterKind.SEARCH, search=search)

    @classmethod
    def from_task(cls, task: RedriveTask) -> Filter:
        if task.filter_kind == FilterKind.SEARCH:
            return cls.from_search(Search.from_json(task.filter_value))
        ids = (
            frozenset(task.filter_ids())
            if task.filter_kind in (FilterKind.REQUEST_IDS, FilterKind.MESSAGE_IDS)
            else frozenset()
        )
        return cls(task.filter_kind, task.filter_attribute, task.filter_value, ids)

    def needs_bodies(self) -> bool:
        """Its match counts reveal message content (bodies, attribute values): for readers of bodies only."""
        if self.kind == FilterKind.SEARCH:
            return self.search is not None and self.search.needs_bodies()
        return self.kind in (FilterKind.BODY, FilterKind.ATTRIBUTE)

    def matches(self, message: dict[str, Any]) -> bool:
        if self.kind == FilterKind.SEARCH:
            return self.search is not None and self.search.matches(message)
        if self.kind == FilterKind.ATTRIBUTE:
            return attribute_value(message, self.attribute) == self.value
        if self.kind == FilterKind.BODY:
            return self.value in (message.get("Body") or "")
        if self.kind == FilterKind.REQUEST_IDS:
            return attribute_value(message, self.attribute) in self.ids
        if self.kind == FilterKind.MESSAGE_IDS:
            return message.get("MessageId") in self.ids
        return True

    def validate(self) -> None:
        if self.kind == FilterKind.SEARCH:
            if self.search is None:
                raise RedriveError("Give the search that selects the messages.")
            self.search.validate()
        if self.kind == FilterKind.ATTRIBUTE and not (self.attribute and self.value):
            raise RedriveError("Give the attribute name and the value to match.")
        if self.kind == FilterKind.BODY and not self.value:
            raise RedriveError("Give the text the message bodies must contain.")
        if self.kind == FilterKind.REQUEST_IDS and not self.attribute:
            raise RedriveError("The pipeline has no request-id attribute set; filter by attribute instead.")
        if self.kind in (FilterKind.REQUEST_IDS, FilterKind.MESSAGE_IDS):
            if not self.ids:
                raise RedriveError("Give at least one id.")
            if len(self.ids) > MAX_IDS:
                raise RedriveError(f"Give at most {MAX_IDS} ids at a time (got {len(self.ids)}).")

    def task_fields(self) -> dict[str, str]:
        if self.kind == FilterKind.SEARCH and self.search is not None:
            return {"filter_kind": self.kind, "filter_attribute": "", "filter_value": self.search.to_json()}
        value = "\n".join(sorted(self.ids)) if self.ids else self.value
        return {"filter_kind": self.kind, "filter_attribute": self.attribute, "filter_value": value}


#: The filter that selects every message.
ALL_MESSAGES = Filter()
