"""Forms of the corpus pages: domain and seed-question editing, image upload."""

from django import forms
from django.forms import inlineformset_factory

from .models import Domain, SeedQuestion
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
