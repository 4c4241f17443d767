"""Every status move of a job or a unit goes through corpus.transitions and leaves exactly one event: a
whole run through the fake server, adoption by a later job, a takeover after a lease ran out, the
sweep's freeing of a dead worker's unit, a claim retried after a lost answer. And the unit's hot path
stays short: the statements of a claim and of a result write are pinned."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from corpus.models import Caption
from generation import services
from generation.models import GenerationJob, GenerationUnit, JobEvent, JobStatus, UnitEvent, UnitStatus
from generation.services import drafting
from generation.services import jobs as job_service
from generation.services import units as unit_service
from tests.corpus.factories import DomainFactory, ImageFactory

from .conftest import assert_one_event_per_move, unit_histories

CLAIM = ("pending", "running")
DONE = ("running", "done")
FAILED = ("running", "failed")


def launch(admin, **kw):
    job = services.launch_job(stage="captions", by=admin, domains=["charts"], **kw)
    return GenerationJob.objects.get(pk=job.pk)


def planned_job(admin, n=1):
    ImageFactory.create_batch(n, domain=DomainFactory(slug="charts"))
    job = launch(admin, start=False)
    job_service.move_job(job, JobStatus.RUNNING, note="started")
    job_service.plan_units(job)
    return job


@pytest.mark.django_db(transaction=True)
def test_a_whole_job_run_leaves_one_event_per_unit_move_and_per_job_move(
    eager, endpoints, fake, admin_user, settings
):
    settings.GENERATION_MAX_ATTEMPTS = 2
    ImageFactory.create_batch(6, domain=DomainFactory(slug="charts"))
    # A transient error retried within the unit's claim (no extra move), and a permanent one that fails
    # a unit; the other units just succeed.
    fake.script(["500", "400"])
    first = launch(admin_user)
    assert first.status == JobStatus.DONE
    assert list(first.events.values_list("from_status", "to_status")) == [
        ("", "queued"),
        ("queued", "running"),
        ("running", "done"),
    ]
    histories = assert_one_event_per_move(first)
    failed = [u for u, h in histories.items() if h == [CLAIM, FAILED]]
    done = [u for u, h in histories.items() if h == [CLAIM, DONE]]
    assert len(failed) == 1 and len(done) == 5, histories
    assert UnitEvent.objects.count() == 12

    # A later launch adopts the failed unit (failed → pending, one event naming both jobs) and runs it.
    second = launch(admin_user)
    assert second.status == JobStatus.DONE and Caption.objects.count() == 6
    histories = assert_one_event_per_move(second)
    assert histories == {failed[0]: [CLAIM, FAILED, ("failed", "pending"), CLAIM, DONE]}
    adopted = UnitEvent.objects.get(unit_id=failed[0], from_status="failed")
    assert adopted.note == f"adopted by job {second.pk} from job {first.pk}"
    assert UnitEvent.objects.count() == 12 + 3
    assert JobEvent.objects.filter(job=second).count() == 3


@pytest.mark.django_db
def test_a_takeover_after_the_lease_ran_out_is_one_move_and_the_late_worker_writes_no_event(admin_user):
    job = planned_job(admin_user)
    unit = job.units.get()
    slow = unit_service.claim_unit(unit.pk, lease=-1)  # its lease is already over: as if the worker hung
    fast = unit_service.claim_unit(unit.pk, lease=60)
    request = drafting.Request(unit_id=unit.pk, stage="captions", prompt="p")
    usage = drafting.Usage(tokens_in=1, tokens_out=2, attempts=1)
    late = dict(text="late", items=None, model_name="m", usage=usage)
    assert drafting.write_result(slow.unit, slow.token, request, **late) is False
    assert not unit_service.fail_unit(
        slow.unit, slow.token, error="late", attempts=1, tokens_in=0, tokens_out=0, cost=0
    )
    assert not unit_service.release_unit(unit.pk, slow.token, attempts=1)
    assert drafting.write_result(fast.unit, fast.token, request, **{**late, "text": "first"})
    assert unit_histories(job)[unit.pk] == [CLAIM, ("running", "running"), DONE]
    assert UnitEvent.objects.get(from_status="running", to_status="running").note.startswith("taken over")
    assert_one_event_per_move(job)


@pytest.mark.django_db
def test_a_claim_retried_with_its_own_token_finds_it_and_writes_no_second_event(admin_user):
    job = planned_job(admin_user)
    unit = job.units.get()
    first = unit_service.claim_unit(unit.pk, lease=60, token="t" * 32)
    again = unit_service.claim_unit(unit.pk, lease=60, token="t" * 32)  # the answer of the first was lost
    assert first.unit and again.unit and again.token == first.token
    other = unit_service.claim_unit(unit.pk, lease=60)
    assert other.unit is None and other.held_until > timezone.now()
    assert unit_histories(job)[unit.pk] == [CLAIM]


@pytest.mark.django_db
def test_the_sweep_frees_a_dead_workers_unit_with_one_event_and_a_second_sweep_adds_none(admin_user):
    job = planned_job(admin_user, n=2)
    dead = job.units.first()
    unit_service.claim_unit(dead.pk, lease=60)
    GenerationUnit.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert unit_service.free_expired(job.pk) == [dead.pk]
    assert unit_service.free_expired(job.pk) == []
    assert unit_histories(job)[dead.pk] == [CLAIM, ("running", "pending")]
    unit = GenerationUnit.objects.get(pk=dead.pk)
    assert (unit.status, unit.claim_token, unit.lease_expires_at) == (UnitStatus.PENDING, "", None)
    assert_one_event_per_move(job)


@pytest.mark.django_db
def test_pause_and_cancel_are_one_job_event_each_with_who_did_it(admin_user):
    job = planned_job(admin_user)
    assert job_service.pause_job(job, by=admin_user)
    assert not job_service.pause_job(job, by=admin_user)  # not running any more: no move, no event
    assert job_service.cancel_job(job, by=admin_user)
    events = list(job.events.values_list("from_status", "to_status", "actor__username"))
    assert events == [
        ("", "queued", "ada-admin"),
        ("queued", "running", None),
        ("running", "paused", "ada-admin"),
        ("paused", "cancelled", "ada-admin"),
    ]
    assert_one_event_per_move(job)


def _data_statements(ctx) -> list[str]:
    """The statements that read or write rows (transaction control left out: it depends on whether the
    test itself runs inside a transaction)."""
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(control)]


@pytest.mark.django_db
def test_a_unit_costs_generation_five_statements_a_claim_three_and_a_result_two(admin_user):
    job = planned_job(admin_user)
    unit = job.units.get()
    with CaptureQueriesContext(connection) as claim_ctx:
        claim = unit_service.claim_unit(unit.pk, lease=60)
    # Read the unit with its prompt, endpoint and image; swap pending → running; its event.
    assert [s.split()[0] for s in _data_statements(claim_ctx)] == ["SELECT", "UPDATE", "INSERT"]
    with CaptureQueriesContext(connection) as prepare_ctx:
        request = drafting.prepare(claim.unit, job.params)
    assert _data_statements(prepare_ctx) == []  # a caption request needs nothing the claim did not read
    usage = drafting.Usage(tokens_in=1, tokens_out=2, attempts=1)
    with CaptureQueriesContext(connection) as write_ctx:
        assert drafting.write_result(
            claim.unit, claim.token, request, text="t", items=None, model_name="m", usage=usage
        )
    ours = [s for s in _data_statements(write_ctx) if '"generation_' in s.split("(")[0]]
    # The swap running → done (with the usage) and its event; the rest are corpus's caption writes.
    assert [s.split()[0] for s in ours] == ["UPDATE", "INSERT"]


@pytest.mark.django_db
def test_the_admin_shows_a_units_moves_and_offers_no_field_to_move_it(client, admin_user):
    job = planned_job(admin_user)
    unit = job.units.get()
    unit_service.claim_unit(unit.pk, lease=60)
    client.force_login(admin_user)
    page = client.get(f"/django-admin/generation/generationunit/{unit.pk}/change/").content.decode()
    assert "events-0-" in page and "events-1-" not in page  # the inline of its one move so far
    assert 'name="status"' not in page and 'name="claim_token"' not in page
    page = client.get(f"/django-admin/generation/generationjob/{job.pk}/change/").content.decode()
    assert "events-1-" in page and 'name="status"' not in page  # queued, then running
