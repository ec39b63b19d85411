"""The forms of the DLQ pages."""

from __future__ import annotations

import secrets

from django import forms
from django.http import QueryDict

from pipelines.dlq import filters, selection, service
from pipelines.dlq.filters import Filter
from pipelines.dlq.queues import RedriveError
from pipelines.models import DRY_RUN_SAMPLE, FilterKind, Pipeline

FILTER_CHOICES = [(k.value, k.label) for k in FilterKind]
BODIES_NEEDED = "Searching by body text or attribute values needs the permission to view message bodies."


def new_token() -> str:
    return secrets.token_urlsafe(24)


class RedriveForm(forms.Form):
    """The redrive options; `clean` builds the `Filter` (as cleaned_data["filter"])."""

    destination = forms.ChoiceField(
        choices=[("source", "The source queue"), ("other", "Another queue")], initial="source", widget=forms.RadioSelect
    )
    destination_url = forms.CharField(
        required=False, max_length=1024, label="Other queue URL", widget=forms.TextInput(attrs={"size": 70})
    )
    max_messages = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=service.MAX_MESSAGES,
        label="Max messages",
        help_text="Empty: all of them.",
        error_messages={"max_value": service.MAX_MESSAGES_TEXT},
    )
    rate = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=service.MAX_RATE,
        label="Rate (messages/s)",
        help_text=f"Empty: as fast as SQS allows (at most {service.MAX_RATE}/s natively).",
    )
    filter_kind = forms.ChoiceField(choices=FILTER_CHOICES, required=False, label="Filter")
    filter_attribute = forms.CharField(required=False, max_length=256, label="Attribute name")
    filter_value = forms.CharField(required=False, max_length=4096, label="Value / text")
    ids = forms.CharField(
        required=False, label="Ids", widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), help_text="One per line."
    )
    dry_run = forms.BooleanField(
        required=False,
        label="Dry run",
        help_text=f"Sample up to {DRY_RUN_SAMPLE} messages and show which would move; move nothing.",
    )
    token = forms.CharField(widget=forms.HiddenInput)
    #: A search carried from the search page (its query string), when filter_kind is "search".
    search = forms.CharField(required=False, max_length=200_000, widget=forms.HiddenInput)

    def __init__(self, *args, pipeline: Pipeline, can_read_bodies: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline = pipeline
        self.can_read_bodies = can_read_bodies
        if not can_read_bodies:
            # Match counts of a body or attribute-value filter tell what the messages say (attribute values
            # are masked like bodies): only readers of bodies may filter on them.
            self.fields["filter_kind"].choices = [c for c in FILTER_CHOICES if c[0] not in service.CONTENT_FILTERS]
        if not self.search_text():  # a search comes from the search page, never from the menu
            self.fields["filter_kind"].choices = [
                c for c in self.fields["filter_kind"].choices if c[0] != FilterKind.SEARCH
            ]
        self.fields["destination"].choices = [
            ("source", f"The source queue: {pipeline.queue_name or pipeline.queue_url}"),
            ("other", "Another queue (URL)"),
        ]

    def search_text(self) -> str:
        return (self.data.get("search") if self.is_bound else self.initial.get("search")) or ""

    def search_filter(self) -> Filter:
        """The carried search, parsed again and its group looked up again (the hidden field is not trusted)."""
        search = selection.parse_search(QueryDict(self.search_text()), self.pipeline)
        if search.needs_bodies() and not self.can_read_bodies:
            raise RedriveError(BODIES_NEEDED)
        return Filter.from_search(search)

    def search_description(self) -> str:
        """The carried search in words, for the confirmation page ("" without one)."""
        if not self.search_text():
            return ""
        try:
            return self.search_filter().search.describe()
        except RedriveError as exc:
            return f"(cannot be used: {exc})"

    def clean(self):
        data = super().clean()
        if data.get("destination") == "other" and not (data.get("destination_url") or "").strip():
            self.add_error("destination_url", "Give the URL of the queue to move the messages to.")
        kind = data.get("filter_kind") or ""
        value = (data.get("filter_value") or "").strip() if kind != FilterKind.BODY else data.get("filter_value", "")
        ids = frozenset(filters.parse_ids(data.get("ids") or ""))
        if kind == FilterKind.ATTRIBUTE:
            flt = Filter(kind, (data.get("filter_attribute") or "").strip(), value)
        elif kind == FilterKind.BODY:
            flt = Filter(kind, value=value)
        elif kind == FilterKind.REQUEST_IDS:
            flt = Filter(kind, self.pipeline.request_id_attribute, ids=ids)
        elif kind == FilterKind.MESSAGE_IDS:
            flt = Filter(kind, ids=ids)
        elif kind == FilterKind.SEARCH:
            try:
                flt = self.search_filter()
            except RedriveError as exc:
                self.add_error("filter_kind", str(exc))
                flt = Filter(kind)
        else:
            flt = Filter()
        try:
            flt.validate()
        except RedriveError as exc:
            self.add_error(
                "ids" if flt.ids or kind in (FilterKind.REQUEST_IDS, FilterKind.MESSAGE_IDS) else "filter_value",
                str(exc),
            )
        data["filter"] = flt
        return data


class BulkRedriveForm(forms.Form):
    """Options of the "Redrive DLQ" action on several pipelines (each to its own source queue)."""

    max_messages = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=service.MAX_MESSAGES,
        label="Max messages per DLQ",
        help_text="Empty: all of them.",
        error_messages={"max_value": service.MAX_MESSAGES_TEXT},
    )
    rate = forms.IntegerField(required=False, min_value=1, max_value=service.MAX_RATE, label="Rate (messages/s)")
    token = forms.CharField(widget=forms.HiddenInput)


def _text(label: str, help_text: str = "", **attrs) -> forms.CharField:
    return forms.CharField(
        required=False, label=label, help_text=help_text, widget=forms.TextInput(attrs={"size": 40, **attrs})
    )


def _ids(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        required=False, label=label, help_text=help_text, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )


class SearchForm(forms.Form):
    """A DLQ search; `clean` parses it with `selection.parse_search` (cleaned_data["search"])."""

    attribute = _text("Attribute name")
    value = _text("Attribute value", "The attribute's string value must equal this.")
    body = _text("Body contains", "Case-sensitive text anywhere in the body.")
    message_ids = _ids("Message ids", "One per line.")
    request_ids = _ids("Request ids", "One per line; compared with the pipeline's request-id attribute.")
    scan = _text("Triage scan", size=6)
    group = _text("Triage group", "The group's signature, as the triage page links it.")
    sent_after = _text("Sent from", "UTC unless a zone is given, e.g. 2026-12-05 14:30 (inclusive).", size=25)
    sent_before = _text("Sent before", "UTC unless a zone is given (exclusive).", size=25)
    min_receives = _text("Receives at least", size=6)
    max_receives = _text(
        "Receives at most",
        "SQS's receive count as this search reports it: each search, peek or redrive raises it by one.",
        size=6,
    )

    def __init__(self, *args, pipeline: Pipeline, can_read_bodies: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline = pipeline
        self.can_read_bodies = can_read_bodies
        if not can_read_bodies:
            del self.fields["value"], self.fields["body"]

    def clean(self):
        data = super().clean()
        if not self.can_read_bodies and (self.data.get("value") or self.data.get("body")):
            raise forms.ValidationError(BODIES_NEEDED)
        try:
            data["search"] = selection.parse_search(self.data, self.pipeline)
        except selection.SearchError as exc:
            for name, message in exc.errors.items():
                self.add_error(name if name in self.fields else None, message)
        except RedriveError as exc:
            self.add_error(None, str(exc))
        return data
