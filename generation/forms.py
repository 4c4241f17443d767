from django import forms
from django.core.exceptions import ValidationError

from corpus.languages import DEFAULT_LANGUAGE, Language
from corpus.models import Domain, ReviewStatus
from corpus.rules import InstructionType

from .models import Endpoint, PromptKind, Stage
from .services.jobs import MAX_LIMIT
from .validators import (
    has_control_characters,
    refuse_control_characters,
    refuse_control_characters_single_line,
)

CONTROL_MESSAGE = "must not contain NUL bytes or other control characters"


class SafeModelChoiceField(forms.ModelChoiceField):
    """Refuses control characters before the lookup (PostgreSQL cannot even compare a NUL byte)."""

    def to_python(self, value):
        if isinstance(value, str) and has_control_characters(value, multiline=False):
            raise ValidationError(CONTROL_MESSAGE, code="control_characters")
        return super().to_python(value)


class SafeModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    def clean(self, value):
        for item in value or []:
            if isinstance(item, str) and has_control_characters(item, multiline=False):
                raise ValidationError(CONTROL_MESSAGE, code="control_characters")
        return super().clean(value)


class LaunchForm(forms.Form):
    stage = forms.ChoiceField(choices=Stage.choices)
    domains = SafeModelMultipleChoiceField(
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
    limit = forms.IntegerField(
        min_value=1, max_value=MAX_LIMIT, required=False, help_text="At most this many images."
    )
    endpoint = SafeModelChoiceField(
        queryset=Endpoint.objects.all(),
        to_field_name="name",
        required=False,
        empty_label="Default endpoint of the stage's kind",
    )
    include_drafts = forms.BooleanField(
        required=False,
        help_text="Instructions and conversations: also from draft captions (otherwise accepted captions only).",
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
    # Set by the "Launch anyway" button after the page showed what is wrong with the endpoint.
    force = forms.BooleanField(required=False, widget=forms.HiddenInput)


class PromptForm(forms.Form):
    kind = forms.ChoiceField(choices=PromptKind.choices)
    domain = SafeModelChoiceField(
        queryset=Domain.objects.all(),
        required=False,
        to_field_name="slug",
        empty_label="Default (all domains)",
    )
    instruction_type = forms.ChoiceField(choices=[("", "—")] + list(InstructionType.choices), required=False)
    language = forms.ChoiceField(
        choices=Language.choices,
        initial=DEFAULT_LANGUAGE,
        required=False,
        help_text="The language the model is asked to write in; drafts record it (not given: the "
        "previous version's).",
    )
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 22}), validators=[refuse_control_characters])
    note = forms.CharField(
        max_length=200,
        required=False,
        help_text="What changed, for the history.",
        validators=[refuse_control_characters_single_line],
    )


def error_messages(form: forms.Form) -> list[str]:
    """Every error of a bound form as one line naming the field, for the page's messages."""
    lines = []
    for name, errors in form.errors.items():
        label = form.fields[name].label or name.replace("_", " ").capitalize() if name in form.fields else ""
        for error in errors:
            lines.append(f"{label}: {error}" if label else str(error))
    return lines
