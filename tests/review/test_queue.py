import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from corpus.models import Caption, Image, ImageEvent, ItemStatus, ReviewStatus
from corpus.services.review_state import claim_by_swap
from corpus.transitions import InvalidTransition, transition
from review.selectors import previous_image_id
from review.services.queue import (
    LeaseError,
    LeaseHeld,
    claim_next_image,
    release_lease,
    renew_lease,
    sweep_expired_leases,
    take_image,
)
from tests.corpus.factories import DomainFactory, ImageFactory
from tests.review.conftest import make_pending_image

pytestmark = pytest.mark.django_db


def test_claim_leases_the_smallest_pending_image_and_logs_the_event(annotator, domain):
    first, second = make_pending_image(domain), make_pending_image(domain)
    claimed = claim_next_image(annotator, domain_ids=[domain.pk])
    assert claimed == first.pk
    first.refresh_from_db()
    assert first.review_status == ReviewStatus.IN_REVIEW and first.leased_by == annotator
    assert first.lease_expires_at > timezone.now() + timedelta(minutes=14)
    event = ImageEvent.objects.get(image=first, to_status=ReviewStatus.IN_REVIEW)
    assert (event.from_status, event.actor, event.note) == ("pending", annotator, "claimed")
    assert claim_next_image(annotator, domain_ids=[domain.pk]) == second.pk
    assert claim_next_image(annotator, domain_ids=[domain.pk]) is None


def test_claim_only_takes_images_of_the_chosen_domains(annotator, domain):
    other = DomainFactory()
    make_pending_image(other)
    mine = make_pending_image(domain)
    assert claim_next_image(annotator, domain_ids=[domain.pk]) == mine.pk
    assert claim_next_image(annotator, domain_ids=[domain.pk]) is None


def test_claim_across_domains_takes_the_smallest_id(annotator):
    a, b = DomainFactory(), DomainFactory()
    first = make_pending_image(b)
    make_pending_image(a)
    assert claim_next_image(annotator, domain_ids=[a.pk, b.pk]) == first.pk


def test_two_annotators_never_get_the_same_image(annotator, second_annotator, domain):
    make_pending_image(domain)
    make_pending_image(domain)
    a = claim_next_image(annotator, domain_ids=[domain.pk])
    b = claim_next_image(second_annotator, domain_ids=[domain.pk])
    assert a and b and a != b


def test_an_expired_lease_goes_back_to_the_queue(annotator, second_annotator, domain):
    image = make_pending_image(domain)
    assert claim_next_image(annotator, domain_ids=[domain.pk]) == image.pk
    assert claim_next_image(second_annotator, domain_ids=[domain.pk]) is None
    Image.objects.filter(pk=image.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    # The sweep may run inside the claim's statement (PostgreSQL) — then the image is claimable from
    # the next call on — or before the compare-and-swap claim (SQLite).
    got = claim_next_image(second_annotator, domain_ids=[domain.pk]) or claim_next_image(
        second_annotator, domain_ids=[domain.pk]
    )
    assert got == image.pk
    image.refresh_from_db()
    assert image.leased_by == second_annotator
    assert ImageEvent.objects.filter(image=image, note="lease expired", to_status="pending").count() == 1


def test_sweep_returns_only_expired_leases(annotator, domain):
    live, dead = make_pending_image(domain), make_pending_image(domain)
    claim_next_image(annotator, domain_ids=[domain.pk])
    claim_next_image(annotator, domain_ids=[domain.pk])
    Image.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    assert sweep_expired_leases() == 1
    assert Image.objects.get(pk=dead.pk).review_status == ReviewStatus.PENDING
    assert Image.objects.get(pk=live.pk).review_status == ReviewStatus.IN_REVIEW
    assert sweep_expired_leases() == 0


def test_renew_extends_and_release_returns_an_image_with_drafts_to_the_queue(annotator, pending_image):
    claim_next_image(annotator)
    Image.objects.filter(pk=pending_image.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=3))
    until = renew_lease(pending_image.pk, annotator)
    assert until > timezone.now() + timedelta(minutes=14)
    assert release_lease(pending_image.pk, annotator) == ReviewStatus.PENDING
    pending_image.refresh_from_db()
    assert pending_image.leased_by is None and pending_image.lease_expires_at is None


def test_renew_of_an_image_someone_else_holds_is_refused(annotator, second_annotator, pending_image):
    claim_next_image(annotator)
    with pytest.raises(LeaseHeld, match="ann-annotator"):
        renew_lease(pending_image.pk, second_annotator)
    # Releasing what one does not hold changes nothing.
    assert release_lease(pending_image.pk, second_annotator) == ReviewStatus.IN_REVIEW


def test_a_lapsed_lease_nobody_took_is_taken_back_by_its_holder(annotator, pending_image):
    claim_next_image(annotator)
    Image.objects.filter(pk=pending_image.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
    sweep_expired_leases()
    renew_lease(pending_image.pk, annotator)
    pending_image.refresh_from_db()
    assert pending_image.review_status == ReviewStatus.IN_REVIEW and pending_image.leased_by == annotator


def test_an_image_without_drafts_cannot_be_opened_for_review(annotator):
    image = ImageFactory()
    with pytest.raises(LeaseError, match="no drafts"):
        take_image(image.pk, annotator)


def test_transition_refuses_moves_outside_the_table_and_loses_races_quietly(annotator, pending_image):
    with pytest.raises(InvalidTransition):
        transition(
            Image(pk=pending_image.pk, review_status=ReviewStatus.PENDING), "review_status", "reviewed"
        )
    # The image is pending, not reviewed: the swap finds nothing and changes nothing.
    assert not transition(
        Image(pk=pending_image.pk, review_status=ReviewStatus.REVIEWED), "review_status", "in_review"
    )
    pending_image.refresh_from_db()
    assert pending_image.review_status == ReviewStatus.PENDING
    assert not ImageEvent.objects.filter(image=pending_image).exists()


def test_previous_image_is_the_one_opened_before(annotator, domain):
    a, b = make_pending_image(domain), make_pending_image(domain)
    claim_next_image(annotator)
    claim_next_image(annotator)
    assert previous_image_id(annotator, before=b.pk) == a.pk


def test_the_image_is_reviewed_when_its_last_draft_is_decided_and_released_then(annotator, pending_image):
    claim_next_image(annotator)
    pending_image.captions.update(status=ItemStatus.ACCEPTED)
    pending_image.instructions.update(status=ItemStatus.REJECTED)
    assert release_lease(pending_image.pk, annotator) == ReviewStatus.REVIEWED


# --- real concurrency on PostgreSQL ----------------------------------------------------------------


def _claim_in_threads(users, domain_ids, per_thread, claim=claim_next_image):
    results: dict[int, list[int]] = {u.pk: [] for u in users}
    errors = []
    barrier = threading.Barrier(len(users))

    def work(user):
        try:
            barrier.wait()
            for _ in range(per_thread):
                got = claim(user, domain_ids=domain_ids)
                if got is not None:
                    results[user.pk].append(got)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def _compare_and_swap_claim(user, *, domain_ids):
    return claim_by_swap(user, domain_ids=domain_ids)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "claim", [claim_next_image, _compare_and_swap_claim], ids=["skip-locked", "compare-and-swap"]
)
def test_concurrent_claims_never_lease_one_image_twice_and_nothing_stays_stuck(
    postgres, django_user_model, claim
):
    """Both claim paths under real concurrency (threads with their own PostgreSQL connections); the
    compare-and-swap path is the one SQLite uses, raced here where a race is real."""
    from django.contrib.auth.models import Group

    group, _ = Group.objects.get_or_create(
        name="annotator"
    )  # a flush by an earlier transactional test drops it
    users = []
    for n in range(8):  # eight annotators, as in the acceptance criterion
        u = django_user_model.objects.create_user(f"racer{n}", password="x")
        u.groups.add(group)
        users.append(u)
    domains = [DomainFactory(), DomainFactory()]
    # Enough rows to race on without factories' file writes: copy one image's row.
    template = make_pending_image(domains[0])
    rows = []
    for n in range(240):
        rows.append(
            Image(
                file=template.file.name,
                sha256=f"{n:064d}",
                domain=domains[n % 2],
                review_status=ReviewStatus.PENDING,
            )
        )
    created = Image.objects.bulk_create(rows)
    # Each with a draft, so that an expired lease sends it back to the queue (not to reviewed).
    Caption.objects.bulk_create([Caption(image=image, text="A draft.") for image in created])
    total = Image.objects.filter(review_status=ReviewStatus.PENDING).count()

    results = _claim_in_threads(users, [d.pk for d in domains], per_thread=40, claim=claim)
    claimed = [i for ids in results.values() for i in ids]
    assert len(claimed) == total, "every pending image was claimed"
    assert len(set(claimed)) == len(claimed), "no image was leased twice"
    # The event log agrees: one claim per image.
    assert ImageEvent.objects.filter(to_status="in_review").count() == total

    # Everyone walks away: after expiry nothing stays stuck — all come back and are claimed again once.
    Image.objects.filter(review_status=ReviewStatus.IN_REVIEW).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    again = _claim_in_threads(users, [d.pk for d in domains], per_thread=45, claim=claim)
    reclaimed = [i for ids in again.values() for i in ids]
    assert sorted(reclaimed) == sorted(claimed)
    assert not Image.objects.filter(review_status=ReviewStatus.PENDING).exists()
    assert connection.vendor == "postgresql"


def test_an_expired_lease_on_an_image_without_drafts_goes_back_to_reviewed(
    annotator, second_annotator, domain
):
    image = make_pending_image(domain, types=())
    claim_next_image(annotator, domain_ids=[domain.pk])
    image.captions.update(status=ItemStatus.ACCEPTED)
    Image.objects.filter(pk=image.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    # Whichever path sweeps (the claim's statement on PostgreSQL, the portable sweep elsewhere), the image
    # has nothing left to review and is not handed out again.
    assert claim_next_image(second_annotator, domain_ids=[domain.pk]) is None
    sweep_expired_leases()
    image.refresh_from_db()
    assert image.review_status == ReviewStatus.REVIEWED and image.leased_by is None
    assert ImageEvent.objects.filter(image=image, note="lease expired", to_status="reviewed").exists()
