"""Pure pieces: tolerant parsing of model answers, template placeholder checks, rendering, defaults."""

import pytest

from generation import prompt_defaults
from generation.services.drafting import MalformedOutput, check_caption, parse_instructions
from generation.services.prompts import check_template, instruction_schema, render

ITEM = '{"question": "Is it red?", "options": [], "answer": "Yes"}'


@pytest.mark.parametrize(
    "text",
    [
        '{"instructions": [' + ITEM + "]}",
        'Sure! Here you go:\n```json\n{"instructions": [' + ITEM + "]}\n```\nAnything else?",
        "```\n[" + ITEM + "]\n```",
        "[" + ITEM + "]",
        '{"questions": [' + ITEM + "]}",
        ITEM,
        "The JSON: " + '{"instructions": [' + ITEM + "]}" + " — done.",
    ],
)
def test_answers_with_fences_prose_or_other_shapes_parse(text):
    assert parse_instructions(text) == [{"question": "Is it red?", "options": [], "answer": "Yes"}]


@pytest.mark.parametrize("text", ["", "no JSON here", '{"instructions": [{"question": ', '{"other": 1}'])
def test_answers_that_are_not_the_json_asked_for_are_malformed(text):
    with pytest.raises(MalformedOutput):
        parse_instructions(text)


def test_empty_caption_is_malformed():
    with pytest.raises(MalformedOutput):
        check_caption("   ")
    assert check_caption("  A cat.  ") == "A cat."


def test_unknown_placeholder_is_named_with_the_allowed_ones():
    (problem,) = check_template("caption", "Describe {{ domian }}.")
    assert "unknown placeholder {{ domian }}" in problem and "{{ domain }}" in problem


def test_caption_placeholder_is_not_allowed_in_a_caption_template():
    assert any("{{ caption }}" in p for p in check_template("caption", "{{ caption }}"))


def test_unbalanced_braces_are_refused():
    assert any("unbalanced" in p for p in check_template("caption", "Describe {{ domain } please"))


def test_shipped_defaults_are_valid_and_follow_the_recipe():
    assert check_template("caption", prompt_defaults.CAPTION) == []
    assert "at least 150 words" in prompt_defaults.CAPTION
    for type_, text in prompt_defaults.INSTRUCTION.items():
        assert check_template("instruction", text) == [], type_
        assert "exactly {{ n }}" in text and "{{ seed_questions }}" in text and "{{ caption }}" in text
    assert "half" in prompt_defaults.INSTRUCTION["judgement"]
    assert "letter" in prompt_defaults.INSTRUCTION["multiple_choice"]


def test_render_fills_placeholders_and_marks_empty_ones():
    assert render("A {{ domain }} image; OCR: {{ocr_text}}.", {"domain": "chart", "ocr_text": ""}) == (
        "A chart image; OCR: (none)."
    )


def test_schema_pins_answers_of_closed_types():
    assert instruction_schema("judgement")["properties"]["instructions"]["items"]["properties"]["answer"][
        "enum"
    ] == [
        "Yes",
        "No",
    ]
    assert (
        "enum"
        not in instruction_schema("long_vqa")["properties"]["instructions"]["items"]["properties"]["answer"]
    )
