"""Every status field in the house moves through corpus.transitions: for each model's table, every
allowed move succeeds with exactly one event row, every other move is refused and writes nothing, and a
move from a status the row has left meanwhile loses the race without writing. Captions and instructions
move through corpus.services.items.update_item, which checks their table; their event is the Revision
each change writes."""

import itertools

import pytest
from django.apps import apps
from django.db import DatabaseError, transaction

from corpus.models import Caption, DatasetImport, Image, ImportBatch, Instruction, Revision
from corpus.rules import InstructionType
from corpus.services.items import StaleVersion, update_item
from corpus.transitions import InvalidTransition, event_model, moves_of, transition
from exports.models import ExportSpec, ExportVersion
from generation.models import (
    Endpoint,
    EndpointKind,
    GenerationJob,
    GenerationUnit,
    PromptKind,
    PromptTemplate,
)
from review.models import SecondPass
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory

pytestmark = pytest.mark.django_db


def make_import_batch():
    return ImportBatch.objects.create(domain=DomainFactory(), staging_dir="x")


def make_dataset_import():
    return DatasetImport.objects.create(domain=DomainFactory(), name="status-machine", format="llava")


def make_export_version():
    # Made queued, never done: the test moves it to its `from` status by a raw UPDATE, and the database
    # refuses any UPDATE of a done export version (exports migration 0002) — so a done row is only ever
    # the `from` of moves the table refuses before any SQL (checked below).
    spec = ExportSpec.objects.create(name="status-machine", formats=["llava"])
    return ExportVersion.objects.create(spec=spec, number=1)


def make_generation_job():
    endpoint = Endpoint.objects.create(
        name="machine-test", kind=EndpointKind.VISION, base_url="http://127.0.0.1:9/v1", model="m"
    )
    return GenerationJob.objects.create(stage="captions", endpoint=endpoint)


def make_generation_unit():
    job = make_generation_job()
    prompt = PromptTemplate.objects.create(
        kind=PromptKind.CAPTION, version=99, text="Describe.", is_current=False
    )
    return GenerationUnit.objects.create(
        job=job, image=ImageFactory(), stage="captions", prompt=prompt, endpoint=job.endpoint
    )


def make_auto_accept_policy():
    from review.models import AutoAcceptPolicy

    return AutoAcceptPolicy.objects.create(domain=DomainFactory())


def make_image():
    return ImageFactory()


def make_second_pass():
    return SecondPass.objects.create(image=ImageFactory())


def make_caption():
    return CaptionFactory(text="A red kettle on a white stove.")


def make_instruction():
    return InstructionFactory(
        type=InstructionType.SHORT_VQA, question="What colour is the kettle?", answer="red"
    )


# One row maker per model with a table of moves (the row may be in any status: the test sets it).
ROW_MAKERS = {
    ImportBatch: ("status", make_import_batch),
    DatasetImport: ("status", make_dataset_import),
    ExportVersion: ("status", make_export_version),
    GenerationJob: ("status", make_generation_job),
    GenerationUnit: ("status", make_generation_unit),
    Image: ("review_status", make_image),
    SecondPass: ("status", make_second_pass),
    apps.get_model("review", "AutoAcceptPolicy"): ("status", make_auto_accept_policy),
}
# Captions and instructions: their table is checked by update_item, and a Revision is their event.
ITEM_MAKERS = {Caption: make_caption, Instruction: make_instruction}


def status_fields():
    """(model, field) of every field whose name ends in `status` and has choices, across the apps."""
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if f.name in ("from_status", "to_status"):  # an event's record of a move, not a status
                continue
            if f.name.endswith("status") and f.choices and model._meta.app_label != "axes":
                yield model, f.name


def test_every_status_field_has_a_table_and_a_row_maker():
    missing = []
    for model, field in status_fields():
        if field not in getattr(model, "STATUS_MOVES", {}):
            missing.append(f"{model._meta.label}.{field}")
        elif ROW_MAKERS.get(model, (None,))[0] != field and not (model in ITEM_MAKERS and field == "status"):
            missing.append(f"{model._meta.label}.{field}")
    assert not missing, f"give these a STATUS_MOVES table and a row maker here: {missing}"


def cases():
    for model, (field, _) in ROW_MAKERS.items():
        values = [v for v, _ in model._meta.get_field(field).choices]
        for frm, to in itertools.product(values, values):
            yield pytest.param(model, field, frm, to, id=f"{model.__name__}-{frm}-{to}")


@pytest.mark.parametrize(("model", "field", "frm", "to"), list(cases()))
def test_each_move_is_allowed_by_its_table_or_refused(model, field, frm, to):
    row = ROW_MAKERS[model][1]()
    model._base_manager.filter(pk=row.pk).update(**{field: frm})
    setattr(row, field, frm)
    events = event_model(model).objects.filter(**{model.EVENT_FK: row})
    before = events.count()
    if to in moves_of(model, field).get(frm, ()):
        assert transition(row, field, to, note="test") is True
        assert getattr(model._base_manager.get(pk=row.pk), field) == to
        assert events.count() == before + 1
        event = events.latest("id")
        assert (event.from_status, event.to_status, event.note) == (frm, to, "test")
    else:
        with pytest.raises(InvalidTransition):
            transition(row, field, to)
        assert getattr(model._base_manager.get(pk=row.pk), field) == frm
        assert events.count() == before


def item_cases():
    for model in ITEM_MAKERS:
        values = [v for v, _ in model._meta.get_field("status").choices]
        for frm, to in itertools.product(values, values):
            if frm != to:  # the same status again is an edit, not a move
                yield pytest.param(model, frm, to, id=f"{model.__name__}-{frm}-{to}")


@pytest.mark.parametrize(("model", "frm", "to"), list(item_cases()))
def test_each_item_move_is_allowed_by_its_table_or_refused(model, frm, to, annotator):
    row = ITEM_MAKERS[model]()
    model.objects.filter(pk=row.pk).update(status=frm)
    row.status = frm
    revisions = Revision.objects.filter(**{model.__name__.lower(): row})
    before = revisions.count()
    if to in moves_of(model, "status").get(frm, ()):
        saved = update_item(row, by=annotator, expected_version=row.version, status=to, reason="test")
        assert model.objects.get(pk=row.pk).status == to == saved.status
        assert revisions.count() == before + 1
        revision = revisions.latest("version")
        assert (revision.before["status"], revision.after["status"], revision.by) == (frm, to, annotator)
    else:
        with pytest.raises(InvalidTransition):
            update_item(row, by=annotator, expected_version=row.version, status=to, reason="test")
        assert model.objects.get(pk=row.pk).status == frm
        assert revisions.count() == before


@pytest.mark.parametrize("model", list(ITEM_MAKERS))
def test_an_item_move_from_a_version_the_item_left_loses_without_writing(model, annotator):
    row = ITEM_MAKERS[model]()
    stale = model.objects.get(pk=row.pk)
    update_item(row, by=annotator, expected_version=row.version, status="accepted")
    revisions = Revision.objects.filter(**{model.__name__.lower(): row}).count()
    with pytest.raises(StaleVersion):
        update_item(stale, by=annotator, expected_version=stale.version, status="rejected", reason="late")
    assert model.objects.get(pk=row.pk).status == "accepted"
    assert Revision.objects.filter(**{model.__name__.lower(): row}).count() == revisions


@pytest.mark.parametrize("model", list(ROW_MAKERS))
def test_a_move_from_a_status_the_row_left_loses_the_race(model):
    field, make = ROW_MAKERS[model]
    table = moves_of(model, field)
    frm, to = next((f, t) for f, tos in table.items() for t in sorted(tos) if t != f)
    row = make()
    model._base_manager.filter(pk=row.pk).update(**{field: frm})
    stale = model._base_manager.get(pk=row.pk)
    assert transition(model._base_manager.get(pk=row.pk), field, to) is True
    events = event_model(model).objects.filter(**{model.EVENT_FK: row}).count()
    assert transition(stale, field, to) is False  # the stale copy still believes the row is at `frm`
    assert event_model(model).objects.filter(**{model.EVENT_FK: row}).count() == events


def test_a_done_export_version_is_refused_by_its_table_before_the_database_trigger():
    """ExportVersion has no move out of done, so every such move is refused by the table (the test above
    sees InvalidTransition, not the trigger's database error); the trigger is there beneath it."""
    assert moves_of(ExportVersion, "status")["done"] == frozenset()
    row = make_export_version()
    ExportVersion.objects.filter(pk=row.pk).update(status="done")
    with pytest.raises(DatabaseError), transaction.atomic():
        ExportVersion.objects.filter(pk=row.pk).update(status="failed")
    row.status = "done"
    for to in ("queued", "building", "done", "failed"):
        with pytest.raises(InvalidTransition):
            transition(row, "status", to)
    assert ExportVersion.objects.get(pk=row.pk).status == "done"
    assert not event_model(ExportVersion).objects.filter(version=row).exists()
