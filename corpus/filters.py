"""django-filter FilterSets shared by the image browser page and the API."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q

from .models import Caption, Domain, Image, Instruction, ItemStatus, ReviewStatus
from .rules import InstructionType, control_character_message, find_control_character
from .serializers import ID_MAX


def refuse_control_characters(value: str) -> None:
    char = find_control_character(value or "")
    if char is not None:
        raise ValidationError(control_character_message("q", char))


class IdFilter(django_filters.NumberFilter):
    """An id: a whole number from 1 to the largest bigint. Anything else is a 400 naming the filter
    (a decimal, or a number beyond 64 bits that would overflow the query)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(*args, **kwargs)


class ImageFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label="Search",
        max_length=200,
        validators=[refuse_control_characters],
        help_text="An image id, part of a file name, or words of a caption.",
    )
    domain = django_filters.ModelChoiceFilter(
        queryset=Domain.objects.all(), to_field_name="slug", empty_label="All domains"
    )
    review_status = django_filters.ChoiceFilter(choices=ReviewStatus.choices, empty_label="Any status")
    near_duplicates = django_filters.BooleanFilter(
        field_name="near_duplicate_of",
        lookup_expr="isnull",
        exclude=True,
        label="Near-duplicates",
        widget=forms.Select(
            choices=[("", "All images"), ("true", "Near-duplicates only"), ("false", "No near-duplicates")]
        ),
    )

    class Meta:
        model = Image
        fields = ["q", "domain", "review_status", "near_duplicates"]

    def search(self, queryset, name, value):
        """By id (a number), file name or caption text (case-insensitive parts). A caption match is an
        EXISTS, so an image with several matching captions appears once."""
        value = value.strip()
        if not value:
            return queryset
        captions = Caption.objects.filter(image=OuterRef("pk"), text__icontains=value)
        match = Q(original_name__icontains=value) | Q(Exists(captions))
        if value.isascii() and value.isdigit() and len(value) <= 18:
            match |= Q(pk=int(value))
        return queryset.filter(match)


class CaptionFilter(django_filters.FilterSet):
    domain = django_filters.CharFilter(field_name="image__domain__slug", label="Domain slug")
    status = django_filters.ChoiceFilter(choices=ItemStatus.choices)
    image = IdFilter(field_name="image_id")

    class Meta:
        model = Caption
        fields = ["domain", "status", "image", "origin"]


class InstructionFilter(django_filters.FilterSet):
    domain = django_filters.CharFilter(field_name="image__domain__slug", label="Domain slug")
    type = django_filters.ChoiceFilter(choices=InstructionType.choices)
    status = django_filters.ChoiceFilter(choices=ItemStatus.choices)
    image = IdFilter(field_name="image_id")
    conversation = IdFilter(field_name="conversation_id", label="The turns of this dialogue")

    class Meta:
        model = Instruction
        fields = ["domain", "type", "status", "image", "origin", "conversation"]
