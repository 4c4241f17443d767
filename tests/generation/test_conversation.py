"""The conversation stage end to end in one process (the real runner and openai client against the fake
server, Celery eager): a 3–6-turn dialogue from the caption and the accepted instructions, stored as
draft turns with provenance and cost; malformed answers retried; nothing written twice."""

import pytest
from django.core.management import call_command

from corpus.models import Conversation, Instruction, ItemStatus
from generation import selectors, services
from generation.models import GenerationJob, GenerationUnit, JobStatus, Stage, UnitStatus
from generation.services import conversation as conversation_stage
from generation.services import drafting
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory
from tests.fakes.openai_server import CONVERSATION_TURNS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def domain():
    return DomainFactory(slug="charts", name="Charts")


def reviewed_image(domain, *, accepted_question="What colour is the cup?"):
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED, text="A white cup on a wooden table by a window.")
    InstructionFactory(image=image, status=ItemStatus.ACCEPTED, question=accepted_question, answer="white")
    return image


def launch(admin, **kw):
    return services.launch_job(stage="conversation", by=admin, domains=["charts"], **kw)


def test_a_job_writes_one_dialogue_of_draft_turns_with_provenance_and_cost(
    eager, endpoints, fake, domain, admin_user
):
    image = reviewed_image(domain)
    job = launch(admin_user)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    conversation = Conversation.objects.get(image=image)
    turns = list(conversation.turns.order_by("turn"))
    assert [t.turn for t in turns] == list(range(1, CONVERSATION_TURNS + 1))
    assert {t.status for t in turns} == {ItemStatus.DRAFT}
    assert [t.type for t in turns] == ["long_vqa", "short_vqa", "multiple_choice", "judgement"]
    unit = GenerationUnit.objects.get(job=job)
    assert unit.stage == Stage.CONVERSATION and unit.drafts == CONVERSATION_TURNS
    assert conversation.generation_unit_id == unit.pk == turns[0].generation_unit_id
    assert conversation.prompt_version == unit.prompt.version == 1
    assert (
        conversation.model_name
        == turns[0].model_name
        == f"{endpoints['text'].name}/{endpoints['text'].model}"
    )
    assert unit.cost > 0 and (unit.tokens_in, unit.tokens_out) == fake.usage
    assert selectors.progress(job).cost == unit.cost
    # The text endpoint was asked with the conversation schema, from the caption and the accepted instruction.
    (request,) = fake.requests
    assert request.schema_name == "conversation" and request.kind == "conversation"
    assert "A white cup on a wooden table by a window." in request.prompt
    assert '{"question": "What colour is the cup?", "answer": "white"}' in request.prompt
    # Its turns are not among the material of the next dialogue (only single accepted instructions are).
    assert Instruction.objects.filter(conversation__isnull=True).count() == 1


def test_images_without_an_accepted_instruction_are_not_planned_and_the_plan_says_why(
    eager, endpoints, fake, domain, admin_user
):
    image = ImageFactory(domain=domain)
    CaptionFactory(image=image, status=ItemStatus.ACCEPTED)
    InstructionFactory(image=image, status=ItemStatus.DRAFT)
    job = launch(admin_user)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE and job.units.count() == 0
    assert "accepted instruction" in job.plan_note
    assert fake.requests == []


@pytest.mark.parametrize(
    "outcomes, turns, invalid",
    [
        (["fenced"], CONVERSATION_TURNS, 0),
        (["bad_content", "ok"], CONVERSATION_TURNS, 0),
        (["too_few", "ok"], CONVERSATION_TURNS, 0),
        (["too_many"], conversation_stage.MAX_TURNS, 0),
        (["mcq_bad"], CONVERSATION_TURNS, 1),
    ],
)
def test_malformed_answers_are_retried_and_broken_turns_kept_as_invalid(
    eager, endpoints, fake, domain, admin_user, outcomes, turns, invalid
):
    image = reviewed_image(domain)
    fake.script(outcomes)
    job = launch(admin_user)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE
    assert len(fake.requests) == len(outcomes)
    conversation = Conversation.objects.get(image=image)
    assert conversation.turns.count() == turns
    assert conversation.turns.filter(status=ItemStatus.INVALID).count() == invalid
    assert GenerationUnit.objects.get(job=job).invalid == invalid
    if invalid:
        bad = conversation.turns.get(status=ItemStatus.INVALID)
        assert bad.type == "multiple_choice" and "letter of one of the options" in bad.reason


def test_relaunch_and_a_redelivered_result_make_no_second_dialogue(
    eager, endpoints, fake, domain, admin_user
):
    reviewed_image(domain)
    first = launch(admin_user)
    second = launch(admin_user)
    second.refresh_from_db()
    assert second.skipped == 1 and second.units.count() == 0
    assert Conversation.objects.count() == 1 and len(fake.requests) == 1
    # The same answer written again under the unit's old claim (a redelivered task) is refused.
    unit = GenerationUnit.objects.get(job=first)
    assert unit.status == UnitStatus.DONE
    request = drafting.Request(unit_id=unit.pk, stage=Stage.CONVERSATION, prompt="p")
    turns = conversation_stage.parse_turns(fake_turns_text())
    assert not drafting.write_result(
        unit, unit.claim_token, request, text="", items=turns, model_name="m", usage=drafting.Usage()
    )
    assert Conversation.objects.count() == 1


def fake_turns_text() -> str:
    import json

    from tests.fakes.openai_server import _turns

    return json.dumps({"turns": _turns(3)})


def test_parse_turns_is_strict_about_the_dialogue_and_guesses_missing_types():
    from generation.services.drafting import MalformedOutput

    text = (
        '{"turns": [{"question": "Is it red?", "answer": "yes"}, {"question": "How many?", "answer": "three"}, '
        '{"question": "Why?", "answer": "Because the light falls from the left side of the room."}]}'
    )
    assert [t["type"] for t in conversation_stage.parse_turns(text)] == ["judgement", "short_vqa", "long_vqa"]
    echoed = text.replace('"answer": "three"', '"answer": "three", "type": "short_vqa", "options": [""]')
    assert conversation_stage.parse_turns(echoed)[1]["options"] == []
    for bad in ('{"turns": []}', "no json", '{"turns": [{"question": "q"}, 1, 2]}'):
        with pytest.raises(MalformedOutput):
            conversation_stage.parse_turns(bad)


def test_the_generate_command_launches_a_conversation_job(eager, endpoints, fake, domain, capsys):
    reviewed_image(domain)
    call_command("generate", "conversation", "--domain", "charts", "--wait", "--poll", "0.05")
    job = GenerationJob.objects.get()
    assert job.stage == Stage.CONVERSATION and job.status == JobStatus.DONE
    assert "done" in capsys.readouterr().out


def test_the_api_launches_a_conversation_job_and_lists_it(endpoints, domain, admin_user, annotator):
    from rest_framework.test import APIClient

    reviewed_image(domain)
    api = APIClient()
    api.force_authenticate(annotator)
    body = {"stage": "conversation", "domains": ["charts"]}
    assert api.post("/api/v1/generation/jobs/", body, format="json").status_code == 403
    api.force_authenticate(admin_user)
    response = api.post("/api/v1/generation/jobs/", body, format="json")
    assert response.status_code == 202, response.json()
    assert (
        response.json()["stage"] == "conversation" and response.json()["endpoint"] == endpoints["text"].name
    )
    listed = api.get("/api/v1/generation/jobs/?stage=conversation").json()["results"]
    assert [job["id"] for job in listed] == [response.json()["id"]]


def test_a_conversation_template_must_use_caption_and_instructions(admin_user):
    from generation.models import PromptKind
    from generation.services import prompts as prompt_service

    prompt_service.ensure_default_prompts()
    problems = prompt_service.check_template(
        PromptKind.CONVERSATION, "Talk about {{ caption }} in {{ n }} turns."
    )
    assert any("unknown placeholder {{ n }}" in p for p in problems)
    assert any("must use {{ instructions }}" in p for p in problems)
    with pytest.raises(prompt_service.TemplateError):
        prompt_service.save_template(kind="conversation", text="{{ caption }}", by=admin_user)
    saved = prompt_service.save_template(
        kind="conversation",
        text="{{ caption }}\n{{ instructions }}",
        by=admin_user,
        instruction_type="judgement",
    )
    # Version 1 is the shipped default (a migration, or ensure_default_prompts on a flushed database).
    assert (saved.kind, saved.instruction_type, saved.version) == ("conversation", "", 2)
