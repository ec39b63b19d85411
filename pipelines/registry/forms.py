"""Admin forms: registering a pipeline discovers it from AWS before anything is saved, and refuses a
URL of another account or host and a queue another pipeline already has (see `identity`); an
account's endpoint URL must not lead where the outbound address policy forbids."""

from __future__ import annotations

from django import forms

from pipelines import outbound
from pipelines.models import ApiKind, Pipeline
from pipelines.registry import tags
from pipelines.registry.discovery import DiscoveryError
from pipelines.registry.identity import discover_registration


class AwsAccountForm(forms.ModelForm):
    """Refuses, at save time, an endpoint URL whose host resolves to an address the outbound policy
    forbids. Every connection is checked again (a host's answer can change); this is the clear early word.

    A base for `modelform_factory(AwsAccount, form=AwsAccountForm, …)`, as the admin builds it (with an
    endpoint typed without a scheme read as https)."""

    def clean_endpoint_url(self):
        url = self.cleaned_data.get("endpoint_url") or ""
        problems = outbound.url_errors(url) if url else []
        if problems:
            raise forms.ValidationError(problems)
        return url


class TagsField(forms.CharField):
    """Tags typed as `key=value, key` (registry/tags.py reads and writes them); a dict in cleaned_data."""

    def __init__(self, **kwargs):
        for unused in ("encoder", "decoder"):  # what a JSONField gives its form field; the text needs neither
            kwargs.pop(unused, None)
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2, "cols": 80}))
        kwargs.setdefault(
            "help_text",
            "key=value or key (a tag without a value), separated by commas or new lines. Tags the queue has in "
            "AWS are added when it is discovered; a value typed here wins over the AWS one.",
        )
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return tags.format_tags(value) if isinstance(value, dict) else value

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        try:
            return tags.parse_tags(super().to_python(value))
        except tags.TagError as exc:
            raise forms.ValidationError(str(exc), code="tags") from None


class PipelineForm(forms.ModelForm):
    """Validates the queue (and API) against AWS in `clean`; `save_model` stores what was found."""

    class Meta:
        model = Pipeline
        fields = "__all__"
        field_classes = {"tags": TagsField}

    discovery = None

    def clean(self):
        cleaned = super().clean()
        api_id = (cleaned.get("api_id") or "").strip()
        if api_id and not cleaned.get("api_kind"):
            cleaned["api_kind"] = ApiKind.REST
        if not api_id and (cleaned.get("api_stage") or cleaned.get("api_kind")):
            self.add_error("api_id", "Enter the API id, or leave the API kind and stage empty.")
        account, url = cleaned.get("account"), cleaned.get("queue_url")
        if account is None or not url or self.errors:
            return cleaned
        try:
            self.discovery = discover_registration(
                account,
                url,
                cleaned.get("api_kind", ""),
                api_id,
                (cleaned.get("api_stage") or "").strip(),
                cleaned.get("request_id_attribute") or "requestId",
                pipeline_pk=self.instance.pk,
            )
        except DiscoveryError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return cleaned


class ImportQueuesForm(forms.Form):
    prefix = forms.CharField(
        required=False, max_length=80, help_text="Only queues whose name starts with this. Empty: every queue."
    )
    dry_run = forms.BooleanField(required=False, help_text="Show what would be registered; register nothing.")
