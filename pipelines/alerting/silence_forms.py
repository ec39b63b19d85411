"""The silence form: what the admin's add page and the API both check before a silence is saved."""

from __future__ import annotations

from django import forms

from pipelines import clock
from pipelines.models import Silence


class SilenceForm(forms.ModelForm):
    """Refuses an end before the start, an end already past (it would silence nothing), no reason, and
    a pipeline with an account it is not in (it would match nothing), each as a sentence on its field."""

    class Meta:
        model = Silence
        fields = ("pipeline", "account", "rule", "starts_at", "ends_at", "reason")
        error_messages = {
            "reason": {"required": "Give a reason: it shows on every incident this silence covers."},
            "ends_at": {"required": "Say when the silence ends."},
        }

    def clean(self):
        data = super().clean()
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The end must be after the start.")
        elif ends and "ends_at" in self.changed_data and ends <= clock.now():
            self.add_error("ends_at", "The end is in the past: this silence would silence nothing.")
        pipeline, account = data.get("pipeline"), data.get("account")
        if pipeline and account and pipeline.account_id != account.pk:
            self.add_error(
                "account", f"{pipeline.name} is in account {pipeline.account}, not {account}: leave the account empty."
            )
        return data
