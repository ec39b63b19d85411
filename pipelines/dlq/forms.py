"""The forms of the DLQ pages."""

from __future__ import annotations

import secrets

from django import forms

from pipelines.dlq import filters, service
from pipelines.dlq.filters import Filter
from pipelines.dlq.queues import RedriveError
from pipelines.models import DRY_RUN_SAMPLE, FilterKind, Pipeline

FILTER_CHOICES = [(k.value, k.label) for k in FilterKind]


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

    def __init__(self, *args, pipeline: Pipeline, can_read_bodies: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline = pipeline
        if not can_read_bodies:
            # Match counts of a body or attribute-value filter tell what the messages say (attribute values
            # are masked like bodies): only readers of bodies may filter on them.
            self.fields["filter_kind"].choices = [c for c in FILTER_CHOICES if c[0] not in service.CONTENT_FILTERS]
        self.fields["destination"].choices = [
            ("source", f"The source queue: {pipeline.queue_name or pipeline.queue_url}"),
            ("other", "Another queue (URL)"),
        ]

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
