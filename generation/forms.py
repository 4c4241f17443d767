from django import forms

from corpus.models import Domain, ReviewStatus
from corpus.rules import InstructionType

from .models import Endpoint, PromptKind, Stage


class LaunchForm(forms.Form):
    stage = forms.ChoiceField(choices=Stage.choices)
    domains = forms.ModelMultipleChoiceField(
        queryset=Domain.objects.filter(is_active=True),
        to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
    )
    statuses = forms.MultipleChoiceField(
        choices=ReviewStatus.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only images in these review states (none ticked = all).",
    )
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many images.")
    endpoint = forms.ModelChoiceField(
        queryset=Endpoint.objects.all(),
        to_field_name="name",
        required=False,
        empty_label="Default endpoint of the stage's kind",
    )
    include_drafts = forms.BooleanField(
        required=False, help_text="Instructions: also from draft captions (otherwise accepted captions only)."
    )
    types = forms.MultipleChoiceField(
        choices=InstructionType.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Instructions: the types to write (none ticked = all four).",
    )
    n_per_type = forms.IntegerField(min_value=1, max_value=20, initial=3, label="Questions per type")
    seeds_per_prompt = forms.IntegerField(
        min_value=0, max_value=10, initial=2, label="Seed questions per prompt"
    )


class PromptForm(forms.Form):
    kind = forms.ChoiceField(choices=PromptKind.choices)
    domain = forms.ModelChoiceField(
        queryset=Domain.objects.all(),
        required=False,
        to_field_name="slug",
        empty_label="Default (all domains)",
    )
    instruction_type = forms.ChoiceField(choices=[("", "—")] + list(InstructionType.choices), required=False)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 22}))
    note = forms.CharField(max_length=200, required=False, help_text="What changed, for the history.")
