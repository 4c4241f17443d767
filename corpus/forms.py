"""Forms of the corpus pages: domain and seed-question editing, image upload."""

import zipfile

from django import forms
from django.forms import inlineformset_factory

from .models import DatasetFormat, Domain, SeedQuestion
from .rules import (
    ANSWER_RULE,
    InstructionType,
    check_instruction,
    normalize_answer,
    refuse_control_characters,
    strip_option_label,
)


class RefuseControlCharacters:
    """Every text field of the form refuses control characters (corpus.rules, the rule every text obeys)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.CharField):
                field.validators.append(refuse_control_characters)


class DomainForm(RefuseControlCharacters, forms.ModelForm):
    class Meta:
        model = Domain
        fields = ["name", "description", "guidelines", "is_active", "ocr_enabled"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 10}),
        }


class SeedQuestionForm(RefuseControlCharacters, forms.ModelForm):
    """A seed question, checked with the type rules (corpus/rules.py) like every other instruction.
    Options are typed one per line; labels such as 'A.' are stripped, answers like 'yes.' normalised."""

    options_text = forms.CharField(
        label="Options (Multiple-Choice, one per line)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    class Meta:
        model = SeedQuestion
        fields = ["type", "question", "answer"]
        widgets = {"question": forms.Textarea(attrs={"rows": 2}), "answer": forms.Textarea(attrs={"rows": 2})}
        help_texts = {"answer": "; ".join(f"{t.label}: {rule}" for t, rule in ANSWER_RULE.items())}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.options:
            self.fields["options_text"].initial = "\n".join(self.instance.options)

    def clean(self):
        data = super().clean()
        if self.cleaned_data.get("DELETE"):
            return data
        type_ = data.get("type")
        if not type_ or any(name in self.errors for name in ("question", "answer", "options_text")):
            return data  # a field refused as typed (a control character) is not checked again as empty
        options = [strip_option_label(line) for line in (data.get("options_text") or "").splitlines()]
        options = [o for o in options if o]
        answer = normalize_answer(type_, data.get("answer") or "")
        for violation in check_instruction(type_, data.get("question") or "", options, answer):
            field = "options_text" if violation.field == "options" else violation.field
            self.add_error(field if field in self.fields else None, violation.message)
        data["answer"] = answer
        self.instance.options = options if type_ == InstructionType.MULTIPLE_CHOICE else []
        return data


SeedQuestionFormSet = inlineformset_factory(
    Domain, SeedQuestion, form=SeedQuestionForm, extra=1, can_delete=True, max_num=60
)


class ImportForm(RefuseControlCharacters, forms.Form):
    """The fields beside the files of an upload; the files themselves come from request.FILES."""

    domain = forms.ModelChoiceField(queryset=Domain.objects.filter(is_active=True), to_field_name="slug")
    source = forms.CharField(required=False, max_length=500, help_text="Where the images come from.")
    license = forms.CharField(required=False, max_length=500, help_text="Their licence.")
    prior_knowledge = forms.CharField(
        required=False, max_length=500, help_text="Optional title or tags known for every image."
    )


class DatasetImportForm(RefuseControlCharacters, forms.Form):
    """An instruction dataset to import: the data file, an optional .zip of its images, and how to read
    and file it (docs/datasets.md)."""

    data = forms.FileField(label="Data file", help_text="LLaVA JSON, ShareGPT/InternVL JSONL or Parquet.")
    images = forms.FileField(
        label="Images (.zip)",
        required=False,
        help_text="The images the records name (Parquet may embed them).",
    )
    format = forms.ChoiceField(choices=DatasetFormat.choices)
    domain = forms.ModelChoiceField(queryset=Domain.objects.filter(is_active=True), to_field_name="slug")
    name = forms.CharField(
        required=False, max_length=200, help_text="The source dataset's name (default: the file's)."
    )
    status = forms.ChoiceField(
        choices=[("draft", "Drafts, to review"), ("accepted", "Accepted")],
        initial="draft",
        help_text="Instructions that break the type rules stay drafts, flagged for a person to type.",
    )

    def clean_images(self):
        images = self.cleaned_data.get("images")
        if images is not None:
            if not zipfile.is_zipfile(images):
                raise forms.ValidationError("Must be a .zip archive of the images.")
            images.seek(0)
        return images
