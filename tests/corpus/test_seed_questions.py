"""The seed questions the data migration ships: every domain has each type, and each obeys the rules."""

import pytest

from corpus.models import Domain, SeedQuestion
from corpus.rules import InstructionType, check_instruction

pytestmark = pytest.mark.django_db


def test_every_domain_has_two_or_three_seed_questions_of_each_type():
    domains = list(Domain.objects.prefetch_related("seed_questions"))
    assert len(domains) == 25
    for domain in domains:
        for type_ in InstructionType.values:
            count = sum(1 for q in domain.seed_questions.all() if q.type == type_)
            assert 2 <= count <= 3, f"{domain.slug} has {count} {type_} seed questions"


def test_every_seed_question_obeys_the_type_rules():
    questions = list(SeedQuestion.objects.select_related("domain"))
    assert len(questions) >= 25 * 4 * 2
    for q in questions:
        assert check_instruction(q.type, q.question, q.options, q.answer) == [], (q.domain.slug, q.question)


def test_judgement_seed_answers_are_balanced_per_domain():
    for domain in Domain.objects.all():
        answers = sorted(
            domain.seed_questions.filter(type=InstructionType.JUDGEMENT).values_list("answer", flat=True)
        )
        assert "Yes" in answers and "No" in answers, domain.slug
