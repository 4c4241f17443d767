"""A language per prompt version: drafts record it, the export selection uses it."""

import pytest

from corpus.languages import Language, detect_language
from corpus.models import Instruction
from exports.services import rows, specs
from generation import services
from generation.models import PromptKind
from generation.services import prompts as prompt_service
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory


@pytest.mark.parametrize(
    "text, expected",
    [
        ("What colour is the car on the left?", "en"),
        ("图中左边的汽车是什么颜色？", "zh"),
        ("图中有几只猫 (cats)?", "zh"),
        ("Yes", None),  # too short to tell
        ("42", None),
        ("", None),
    ],
)
def test_detect_language_tells_english_from_chinese(text, expected):
    assert detect_language(text) == expected


@pytest.mark.django_db
def test_a_new_prompt_version_keeps_the_language_of_the_one_before_unless_told(admin_user):
    prompt_service.ensure_default_prompts()
    zh = prompt_service.save_template(
        kind=PromptKind.CAPTION, text="用中文描述这张图片。{{ domain }}", by=admin_user, language="zh"
    )
    assert zh.language == Language.CHINESE
    again = prompt_service.save_template(kind=PromptKind.CAPTION, text="再描述一次。", by=admin_user)
    assert (again.version, again.language) == (zh.version + 1, "zh")
    with pytest.raises(prompt_service.TemplateError) as exc:
        prompt_service.save_template(kind=PromptKind.CAPTION, text="x", by=admin_user, language="fr")
    assert exc.value.field == "language"


@pytest.mark.django_db
def test_the_prompt_api_takes_and_shows_a_language(admin_user, client):
    client.force_login(admin_user)
    response = client.post(
        "/api/v1/generation/prompts/",
        {"kind": "caption", "domain": None, "text": "请描述 {{ domain }}。", "language": "zh"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["language"] == "zh"
    bad = client.post(
        "/api/v1/generation/prompts/",
        {"kind": "caption", "domain": None, "text": "x", "language": "xx"},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert "language" in bad.json()["errors"]


@pytest.mark.django_db(transaction=True)
def test_instruction_drafts_record_the_language_of_their_prompt_version(eager, endpoints, admin_user):
    domain = DomainFactory(slug="zh-charts")
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status="accepted")
    prompt_service.save_template(
        kind=PromptKind.INSTRUCTION,
        instruction_type="short_vqa",
        domain=domain,
        language="zh",
        text="根据描述写 {{ n }} 个问题（{{ type }}）：{{ caption }}，用{{ language }}。",
        by=admin_user,
    )
    services.launch_job(
        stage="instructions", by=admin_user, domains=["zh-charts"], types=["short_vqa", "judgement"]
    )
    made = dict(Instruction.objects.filter(image=image).values_list("type", "language").distinct())
    assert made == {"short_vqa": "zh", "judgement": "en"}


@pytest.mark.django_db
def test_an_export_selection_by_language_reads_only_items_of_that_language():
    image = ImageFactory()
    en = InstructionFactory(image=image, status="accepted", language="en")
    zh = InstructionFactory(image=image, status="accepted", language="zh", question="图中是什么颜色？")
    InstructionFactory(image=image, status="accepted", language="")
    selection = specs.parse_selection({"languages": ["zh"]})
    assert selection.as_json()["languages"] == ["zh"]
    assert [int(r[0]) for r in rows.iter_rows(selection)] == [zh.pk]
    assert len(list(rows.iter_rows(specs.parse_selection({})))) == 3
    assert "languages" not in specs.parse_selection({}).as_json()  # old specs hash the same
    assert [int(r[0]) for r in rows.iter_rows(specs.parse_selection({"languages": ["en"]}))] == [en.pk]
    with pytest.raises(specs.InvalidSpec) as exc:
        specs.parse_selection({"languages": ["fr"]})
    assert "languages" in exc.value.errors
