"""The demo loader of `make run`."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.roles import has_role
from corpus.management.commands.load_demo import DEMO, DEMO_USERS, deliberate_hallucinations
from corpus.models import Caption, Image, Instruction, ItemStatus, Origin, Revision
from corpus.rules import InstructionType

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, ...]:
    return (
        Image.objects.count(),
        Caption.objects.count(),
        Instruction.objects.count(),
        Revision.objects.count(),
        get_user_model().objects.count(),
    )


def test_load_demo_imports_twelve_images_with_sample_drafts_across_domains(capsys):
    call_command("load_demo")
    assert Image.objects.filter(is_sample=True).count() == 12
    assert Image.objects.values("domain").distinct().count() >= 8
    assert not Image.objects.exclude(source="").filter(license="").exists()
    astronaut = Image.objects.get(original_name="astronaut.png")
    assert astronaut.source == "NASA Great Images"
    assert astronaut.license.startswith("public domain")
    assert astronaut.domain.slug == "celebrity-recognition"
    for image in Image.objects.all():
        assert image.captions.filter(origin=Origin.SAMPLE, model_name="sample data").count() == 1
        assert 3 <= image.instructions.filter(origin=Origin.SAMPLE).count() <= 5
    assert set(Instruction.objects.values_list("type", flat=True)) == set(InstructionType.values)
    # Wrong on purpose, but never broken: every sample obeys the type rules and waits for review.
    assert set(Instruction.objects.values_list("status", flat=True)) == {ItemStatus.DRAFT}
    assert set(Image.objects.values_list("review_status", flat=True)) == {"pending"}
    out = capsys.readouterr().out
    for username, password, _role in DEMO_USERS:
        assert username in out and password in out
    assert "http://127.0.0.1:8000/" in out


def test_running_load_demo_twice_changes_nothing():
    call_command("load_demo")
    first = counts()
    call_command("load_demo")
    assert counts() == first


def test_demo_users_hold_one_role_each_and_admin_is_superuser():
    call_command("load_demo")
    User = get_user_model()
    for username, password, role in DEMO_USERS:
        user = User.objects.get(username=username)
        assert user.check_password(password)
        assert has_role(user, role)
    assert User.objects.get(username="admin").is_superuser
    assert User.objects.get(username="admin").is_staff
    annotator = User.objects.get(username="annotator")
    assert not annotator.is_staff and not has_role(annotator, "researcher")


def test_deliberate_hallucinations_are_listed_and_cover_captions_counts_and_mcq_letters():
    wrong = deliberate_hallucinations()
    whats = [what for _file, what, _why in wrong]
    assert "caption" in whats
    assert any(why.startswith("count") for _f, _w, why in wrong)
    assert any(what.startswith("multiple_choice") for what in whats)
    assert len(wrong) == sum(bool(d.caption_wrong) + sum(bool(s.wrong) for s in d.instructions) for d in DEMO)
