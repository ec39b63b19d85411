"""A DLQ search: several criteria at once, every one given must hold. Pure apart from `resolve_group`.

The criteria and their parameter names (the search form, its query string, the hidden field that
carries a search to the redrive and delete pages): `attribute` + `value` (a message attribute's
string value equals), `body` (the body contains the text), `message_ids`, `request_ids` (the
pipeline's request-id attribute is one of them), `scan` + `group` (a triage group: the message ids
that scan recorded for the group's signature), `sent_after` (inclusive) and `sent_before`
(exclusive), `min_receives` and `max_receives` (SQS's ApproximateReceiveCount as this receive
reports it: every search, peek and redrive is a receive and raises it by one).

A search travels in a `RedriveTask` as JSON (`to_json`), with the group's message ids resolved at
the time it was asked, so a task resumed later selects the same messages even after the scan's
message rows were dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.utils.dateparse import parse_date, parse_datetime

from pipelines.dlq.queues import RedriveError
from pipelines.models import TriageGroup, TriageMessage

#: Ids one may type in a search (message ids, request ids), as for the other filters.
MAX_TYPED_IDS = 1000
#: The longest attribute value or body text a search takes.
MAX_TEXT = 4096
#: The parameter names, in the order the form shows them.
PARAMS = (
    "attribute",
    "value",
    "body",
    "message_ids",
    "request_ids",
    "scan",
    "group",
    "sent_after",
    "sent_before",
    "min_receives",
    "max_receives",
)


class SearchError(RedriveError):
    """A search cannot be run as asked; `errors` says why, by parameter ("" for the search as a whole)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def parse_ids(text: str) -> frozenset[str]:
    """Ids one per line (or separated by spaces or commas)."""
    return frozenset(p for p in (text or "").replace(",", " ").split() if p)


def _string_attribute(message: Mapping[str, Any], name: str) -> str | None:
    attr = (message.get("MessageAttributes") or {}).get(name) or {}
    return attr.get("StringValue")


def _moment(text: str) -> datetime | None:
    """An ISO date or date-time (a bare date is its midnight); without a zone it is UTC."""
    text = text.strip()
    try:
        moment = parse_datetime(text)
        day = None if moment else parse_date(text)
    except ValueError:
        return None
    if moment is None:
        if day is None:
            return None
        moment = datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Search:
    """Which DLQ messages a search selects. Build it with `parse` (or `from_json`)."""

    attribute: str = ""
    value: str = ""
    body: str = ""
    message_ids: frozenset[str] = frozenset()
    request_ids: frozenset[str] = frozenset()
    #: The pipeline's request-id attribute, which `request_ids` are compared with.
    request_id_attribute: str = ""
    scan_id: int | None = None
    group: str = ""
    #: The group's name, for `describe`.
    group_title: str = ""
    #: The group's message ids, once resolved (None: not resolved, or no group asked).
    group_ids: frozenset[str] | None = None
    sent_after: datetime | None = None
    sent_before: datetime | None = None
    min_receives: int | None = None
    max_receives: int | None = None

    # --- parsing -------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Mapping[str, Any], request_id_attribute: str = "") -> Search:
        """A search from form or query-string values (unresolved: see `resolve_group`). Raises
        SearchError naming every bad value."""
        raw = {name: str(data.get(name) or "") for name in PARAMS}
        errors: dict[str, str] = {}
        found: dict[str, Any] = {"request_id_attribute": request_id_attribute}
        found["attribute"], found["value"] = raw["attribute"].strip(), raw["value"].strip()
        found["body"] = raw["body"]  # kept as typed: leading and trailing spaces may be what is sought
        for name in ("value", "body"):
            if len(raw[name]) > MAX_TEXT:
                errors[name] = f"Give at most {MAX_TEXT:,} characters to match."
        for name, what in (("message_ids", "message"), ("request_ids", "request")):
            ids = parse_ids(raw[name])
            if len(ids) > MAX_TYPED_IDS:
                errors[name] = f"Give at most {MAX_TYPED_IDS:,} {what} ids at a time (got {len(ids):,})."
            found[name] = ids
        if raw["scan"].strip():
            try:
                found["scan_id"] = int(raw["scan"])
                if found["scan_id"] < 1:
                    raise ValueError
            except ValueError:
                errors["scan"] = f"The scan must be a scan number, not {raw['scan'].strip()!r}."
        found["group"] = raw["group"].strip()
        for name in ("sent_after", "sent_before"):
            if raw[name].strip():
                found[name] = _moment(raw[name])
                if found[name] is None:
                    errors[name] = (
                        f"{raw[name].strip()!r} is not a date or time; write e.g. 2026-12-05 or 2026-12-05 14:30."
                    )
        for name in ("min_receives", "max_receives"):
            if raw[name].strip():
                try:
                    found[name] = int(raw[name])
                    if found[name] < 0:
                        raise ValueError
                except ValueError:
                    errors[name] = f"A receive count is a whole number from 0 up, not {raw[name].strip()!r}."
        if errors:
            raise SearchError(errors)
        search = cls(**found)
        search.check()
        return search

    def check(self) -> None:
        """The criteria make sense together (ignoring whether a group is resolved). Raises SearchError."""
        errors: dict[str, str] = {}
        if bool(self.attribute) != bool(self.value):
            errors["attribute" if not self.attribute else "value"] = (
                "Give both the attribute name and the value it must equal."
            )
        if self.request_ids and not self.request_id_attribute:
            errors["request_ids"] = "The pipeline has no request-id attribute set; search by attribute instead."
        if (self.scan_id is None) != (not self.group):
            errors["group" if self.scan_id else "scan"] = "A triage group needs both its scan number and its signature."
        if self.sent_after and self.sent_before and self.sent_after >= self.sent_before:
            errors["sent_before"] = "“Sent before” must be later than “sent after”."
        if self.min_receives is not None and self.max_receives is not None and self.min_receives > self.max_receives:
            errors["max_receives"] = "The most receives must be at least the fewest."
        if not errors and self.is_empty():
            errors[""] = "Give at least one criterion (to act on every message, use the DLQ page)."
        if errors:
            raise SearchError(errors)

    def validate(self) -> None:
        """Ready to select messages: the criteria make sense and a group asked for is resolved."""
        self.check()
        if self.group and self.group_ids is None:
            raise SearchError({"group": "The triage group was not looked up; run the search again."})

    def is_empty(self) -> bool:
        return not (
            self.attribute
            or self.body
            or self.message_ids
            or self.request_ids
            or self.group
            or self.sent_after
            or self.sent_before
            or self.min_receives is not None
            or self.max_receives is not None
        )

    def needs_bodies(self) -> bool:
        """Its match counts reveal message content: body text and attribute values."""
        return bool(self.body or self.value)

    # --- matching ------------------------------------------------------------------------------------

    def _holds(self, mid: str, body: str, attribute: str | None, request_id: str | None, sent_ms, receives) -> bool:
        if self.message_ids and mid not in self.message_ids:
            return False
        if self.group_ids is not None and mid not in self.group_ids:
            return False
        if self.attribute and attribute != self.value:
            return False
        if self.body and self.body not in body:
            return False
        if self.request_ids and request_id not in self.request_ids:
            return False
        if self.sent_after or self.sent_before:
            if sent_ms is None:
                return False
            sent = datetime.fromtimestamp(sent_ms / 1000, tz=UTC)
            if (self.sent_after and sent < self.sent_after) or (self.sent_before and sent >= self.sent_before):
                return False
        if self.min_receives is not None and receives < self.min_receives:
            return False
        return self.max_receives is None or receives <= self.max_receives

    def matches(self, message: Mapping[str, Any]) -> bool:
        """Does a received SQS message (ReceiveMessage's shape) meet every criterion?"""
        system = message.get("Attributes") or {}
        try:
            sent_ms = int(system["SentTimestamp"])
        except (KeyError, TypeError, ValueError):
            sent_ms = None
        return self._holds(
            message.get("MessageId", ""),
            message.get("Body") or "",
            _string_attribute(message, self.attribute) if self.attribute else None,
            _string_attribute(message, self.request_id_attribute) if self.request_id_attribute else None,
            sent_ms,
            int(system.get("ApproximateReceiveCount") or 0),
        )

    def matches_shown(self, m: Any) -> bool:
        """The same test on a message as the DLQ pages show it (`peek.PeekedMessage`)."""
        attribute = None
        for name, kind, value in m.attributes:
            if name == self.attribute and not kind.startswith("Binary"):
                attribute = value
        sent_ms = int(m.sent_at.timestamp() * 1000) if m.sent_at else None
        return self._holds(m.id, m.body, attribute, m.request_id, sent_ms, m.receive_count)

    # --- describing and carrying ----------------------------------------------------------------------

    def describe(self) -> str:
        """The criteria in words, for pages and the audit trail (attribute values and body text are
        quoted: only those allowed to read bodies can have made such a search)."""
        parts = []
        if self.group:
            title = f" “{self.group_title}”" if self.group_title else ""
            size = f", {len(self.group_ids):,} message(s)" if self.group_ids is not None else ""
            parts.append(f"triage group{title} of scan #{self.scan_id}{size}")
        if self.attribute:
            parts.append(f"attribute {self.attribute} = {self.value!r}")
        if self.body:
            parts.append(f"body contains {self.body!r}")
        if self.message_ids:
            parts.append(f"{len(self.message_ids):,} message id(s)")
        if self.request_ids:
            parts.append(f"{len(self.request_ids):,} request id(s)")
        if self.sent_after:
            parts.append(f"sent from {self.sent_after:%Y-%m-%d %H:%M:%S} UTC")
        if self.sent_before:
            parts.append(f"sent before {self.sent_before:%Y-%m-%d %H:%M:%S} UTC")
        if self.min_receives is not None:
            parts.append(f"received at least {self.min_receives} time(s)")
        if self.max_receives is not None:
            parts.append(f"received at most {self.max_receives} time(s)")
        return "; ".join(parts) or "all messages"

    def params(self) -> dict[str, str]:
        """The search as form values (those given only): what `parse` reads back."""
        out = {
            "attribute": self.attribute,
            "value": self.value,
            "body": self.body,
            "message_ids": "\n".join(sorted(self.message_ids)),
            "request_ids": "\n".join(sorted(self.request_ids)),
            "scan": str(self.scan_id) if self.scan_id is not None else "",
            "group": self.group,
            "sent_after": self.sent_after.isoformat() if self.sent_after else "",
            "sent_before": self.sent_before.isoformat() if self.sent_before else "",
            "min_receives": "" if self.min_receives is None else str(self.min_receives),
            "max_receives": "" if self.max_receives is None else str(self.max_receives),
        }
        return {k: v for k, v in out.items() if v}

    def query(self) -> str:
        """The search as a query string (links, and the hidden field that carries it to an action)."""
        return urlencode(self.params())

    def to_json(self) -> str:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            data[f.name] = value
        data["summary"] = self.describe()  # what RedriveTask.filter_description shows
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Search:
        """The search a task was started with. Raises SearchError when the text is not one."""
        try:
            data = json.loads(text or "")
            if not isinstance(data, dict):
                raise ValueError
            values: dict[str, Any] = {}
            for f in fields(cls):
                if f.name not in data or data[f.name] is None:
                    continue
                value = data[f.name]
                if f.name in ("message_ids", "request_ids", "group_ids"):
                    value = frozenset(str(v) for v in value)
                elif f.name in ("sent_after", "sent_before"):
                    value = datetime.fromisoformat(value)
                elif f.name in ("scan_id", "min_receives", "max_receives"):
                    value = int(value)
                else:
                    value = str(value)
                values[f.name] = value
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise SearchError({"": "The search this task was given cannot be read."}) from exc


def resolve_group(search: Search, pipeline) -> Search:
    """The search with its triage group's message ids looked up (unchanged without a group). Raises
    SearchError when the pipeline has no such scan or group, or the scan's messages are gone."""
    if not search.group:
        return search
    group = (
        TriageGroup.objects.filter(scan_id=search.scan_id, scan__pipeline=pipeline, signature=search.group)
        .only("pk", "title")
        .first()
    )
    if group is None:
        raise SearchError({"group": f"Scan #{search.scan_id} of {pipeline.name} has no group with that signature."})
    ids = frozenset(TriageMessage.objects.filter(group=group).values_list("message_id", flat=True))
    if not ids:
        raise SearchError(
            {
                "group": f"The messages of scan #{search.scan_id} are no longer kept; scan the DLQ again to act on a group."
            }
        )
    return replace(search, group_title=group.title, group_ids=ids)


def parse_search(data: Mapping[str, Any], pipeline) -> Search:
    """Parse a search for a pipeline and resolve its group: ready to run or to start a task with."""
    return resolve_group(Search.parse(data, pipeline.request_id_attribute), pipeline)
