"""The form that creates an export spec (checked again, and for real, by exports.services.specs)."""

from django import forms

from corpus.languages import Language
from corpus.models import Domain
from corpus.rules import InstructionType
from exports.models import ConversationMode, ExportFormat, ImageMode
from exports.services.specs import EXPORTABLE_STATUSES, SEED_MAX


class ExportSpecForm(forms.Form):
    name = forms.SlugField(
        max_length=100, help_text="Lowercase letters, digits and hyphens; names every version."
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    domains = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked = all domains."
    )
    types = forms.MultipleChoiceField(
        choices=InstructionType.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    statuses = forms.MultipleChoiceField(
        choices=[(s.value, s.label) for s in EXPORTABLE_STATUSES],
        initial=["accepted"],
        widget=forms.CheckboxSelectMultiple,
    )
    models = forms.CharField(required=False, help_text="Model names, comma separated; empty = all.")
    languages = forms.MultipleChoiceField(
        choices=Language.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The language the items were written in; none ticked = any.",
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    train_ratio = forms.FloatField(
        min_value=0, max_value=1, initial=0.95, help_text="Share of images in train."
    )
    seed = forms.IntegerField(min_value=0, max_value=SEED_MAX, initial=0)
    formats = forms.MultipleChoiceField(
        choices=ExportFormat.choices, initial=[ExportFormat.LLAVA], widget=forms.CheckboxSelectMultiple
    )
    image_mode = forms.ChoiceField(choices=ImageMode.choices, initial=ImageMode.COPY)
    conversation_mode = forms.ChoiceField(
        choices=ConversationMode.choices, initial=ConversationMode.MULTI_TURN
    )
    include_captions = forms.BooleanField(
        required=False,
        help_text="Also export each image's accepted caption as a detailed-description record.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["domains"].choices = list(Domain.objects.order_by("name").values_list("slug", "name"))

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        models = [m.strip() for m in (data.get("models") or "").split(",") if m.strip()]
        return {
            "description": data["description"],
            "selection": {
                "domains": data["domains"],
                "types": data["types"],
                "statuses": data["statuses"],
                "models": models,
                "languages": data.get("languages") or [],
                "date_from": data["date_from"].isoformat() if data["date_from"] else None,
                "date_to": data["date_to"].isoformat() if data["date_to"] else None,
            },
            "formats": data["formats"],
            "train_ratio": data["train_ratio"],
            "seed": data["seed"],
            "image_mode": data["image_mode"],
            "conversation_mode": data["conversation_mode"],
            "include_captions": bool(data.get("include_captions")),
        }
