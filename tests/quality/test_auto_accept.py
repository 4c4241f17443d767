"""Review by exception: the audit share, the verifier report against people, switching on only above the
floors, switching itself off when an audit falls below them, and what auto-accept may take."""

import itertools

import pytest

from corpus.models import Instruction, ItemStatus, QualityFlag, ReviewStatus, Revision, Verdict
from corpus.rules import InstructionType as T
from corpus.services import items as item_service
from corpus.services import quality
from review.models import AutoAcceptEvent, AutoAcceptStatus
from review.services import auto_accept, verifier_report
from review.services.queue import take_image
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory

pytestmark = pytest.mark.django_db

CAPTION = "A small test image with a colour gradient running from the top left corner to the bottom right."


def test_the_audit_share_is_stable_and_close_to_the_setting():
    ids = range(1, 10_001)
    audited = [i for i in ids if verifier_report.is_audited(i, 0.1)]
    assert 900 <= len(audited) <= 1100
    assert audited == [i for i in ids if verifier_report.is_audited(i, 0.1)]  # the same every time
    assert not any(verifier_report.is_audited(i, 0.0) for i in ids)
    assert all(verifier_report.is_audited(i, 1.0) for i in ids)


def test_wilson_intervals_on_known_inputs():
    low, high = verifier_report.wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert verifier_report.wilson(0, 0) is None
    low, high = verifier_report.wilson(10, 10)
    assert high == 1.0 and round(low, 4) == 0.7225


@pytest.fixture
def domain():
    quality.clear_caches()
    return DomainFactory(slug="exceptions")


_serial = itertools.count()


def drafts_with_verdicts(domain, verdicts: list[str], *, per_image: int = 5) -> list[Instruction]:
    """Draft short answers (clean: no flag) on pending images, each with one verdict of the list."""
    made = []
    for start in range(0, len(verdicts), per_image):
        image = ImageFactory(domain=domain)
        caption = CaptionFactory(image=image, text=CAPTION, status=ItemStatus.ACCEPTED)
        for verdict in verdicts[start : start + per_image]:
            n = next(_serial)  # questions unique across calls: no duplicate-in-domain flag
            item = item_service.create_instruction(
                image, type=T.SHORT_VQA, question=f"What runs across part {n} of it?", answer="a gradient",
                caption=caption, model_name="m1",
            )  # fmt: skip
            Verdict.objects.create(
                instruction=item, item_version=item.version, verdict=verdict,
                category="object" if verdict == "unsupported" else "", model_name="judge", generation_unit_id=n,
            )  # fmt: skip
            made.append(item)
    return made


def decide(items, by, *, reject: set[int] = frozenset(), edit: set[int] = frozenset()):
    for item in items:
        item.refresh_from_db()
        if item.pk in reject:
            item_service.update_item(item, by=by, expected_version=item.version, status=ItemStatus.REJECTED)
        elif item.pk in edit:
            item_service.update_item(
                item,
                by=by,
                expected_version=item.version,
                status=ItemStatus.ACCEPTED,
                changes={"answer": "colours"},
            )
        else:
            item_service.update_item(item, by=by, expected_version=item.version, status=ItemStatus.ACCEPTED)


def test_the_report_counts_unsupported_against_peoples_rejects_and_edits(domain, annotator):
    verdicts = ["unsupported"] * 4 + ["supported"] * 5 + ["unsure"]
    items = drafts_with_verdicts(domain, verdicts)
    # People: reject 3 of the 4 unsupported, edit one supported, reject the unsure one.
    decide(items, annotator, reject={items[0].pk, items[1].pk, items[2].pk, items[9].pk}, edit={items[4].pk})
    overall = verifier_report.report()["overall"]
    # By hand: tp 3 (unsupported & rejected), fp 1, fn 2 (edited supported, rejected unsure), tn 4.
    assert (overall["tp"], overall["fp"], overall["fn"], overall["tn"]) == (3, 1, 2, 4)
    assert overall["precision"] == 0.75 and overall["recall"] == 0.6
    assert overall["precision_ci"] == verifier_report.wilson(3, 4)
    by_type = {row["key"]: row for row in verifier_report.report()["by_type"]}
    assert by_type["short_vqa"]["decided"] == 10


def test_auto_accept_is_refused_until_the_floors_are_met_and_the_switch_leaves_an_event(
    domain, annotator, admin_user, settings
):
    settings.QUALITY_MIN_DECIDED = 10
    items = drafts_with_verdicts(domain, ["unsupported"] * 5 + ["supported"] * 5)
    with pytest.raises(auto_accept.AutoAcceptRefused, match="over 0 decided items"):
        auto_accept.switch_on(domain, by=admin_user)
    decide(items, annotator, reject={i.pk for i in items[:5]})
    policy = auto_accept.switch_on(domain, by=admin_user)
    assert policy.status == AutoAcceptStatus.ON and policy.since is not None
    event = AutoAcceptEvent.objects.get(policy=policy)
    assert (event.from_status, event.to_status, event.actor) == ("off", "on", admin_user)
    assert "precision 100.0%, recall 100.0% over 10 decided items" in event.note


def test_auto_accept_takes_only_unflagged_supported_drafts_outside_the_audit(
    domain, annotator, admin_user, settings
):
    settings.QUALITY_MIN_DECIDED = 4
    settings.QUALITY_AUDIT_SHARE = 0.3
    calibration = drafts_with_verdicts(domain, ["unsupported"] * 2 + ["supported"] * 2)
    decide(calibration, annotator, reject={calibration[0].pk, calibration[1].pk})
    auto_accept.switch_on(domain, by=admin_user)
    work = drafts_with_verdicts(domain, ["supported"] * 30 + ["unsupported"] * 5 + ["unsure"] * 5)
    flagged = work[3]
    item_service.update_item(flagged, by=annotator, expected_version=1, changes={"answer": "7 gradients"})
    Verdict.objects.filter(instruction=flagged).update(item_version=2)  # judged at its new version too
    assert QualityFlag.objects.filter(instruction=flagged).exists()
    stale = work[4]  # edited after the verdict: the verdict is about another version
    item_service.update_item(stale, by=annotator, expected_version=1, changes={"answer": "the gradient"})
    held = work[25]  # its image is leased to a person: left alone
    take_image(held.image_id, annotator)
    held_ids = set(Instruction.objects.filter(image_id=held.image_id).values_list("pk", flat=True))

    counts = auto_accept.run_auto_accept(domain)

    accepted = set(Revision.objects.filter(origin="auto").values_list("instruction_id", flat=True))
    expected = {
        i.pk
        for i in work[:30]
        if i not in (flagged, stale) and i.pk not in held_ids and not verifier_report.is_audited(i.pk, 0.3)
    }
    assert accepted == expected and counts["accepted"] == len(expected)
    assert counts["audited"] == sum(
        1 for i in work[:30] if i not in (flagged, stale) and verifier_report.is_audited(i.pk, 0.3)
    )
    system = verifier_report.system_user()
    assert set(Instruction.objects.filter(pk__in=accepted).values_list("status", "reviewed_by")) == {
        (ItemStatus.ACCEPTED, system.pk)
    }
    assert not Instruction.objects.filter(
        pk__in=[i.pk for i in work[30:]], status=ItemStatus.ACCEPTED
    ).exists()
    assert auto_accept.run_auto_accept(domain)["accepted"] == 0  # nothing left: idempotent
    # Images with audited items still wait for people; images auto-accept emptied are reviewed.
    assert held.image.__class__.objects.get(pk=held.image_id).review_status == ReviewStatus.IN_REVIEW


def test_auto_accept_switches_itself_off_when_a_later_audit_falls_below_the_floors(
    domain, annotator, admin_user, settings
):
    settings.QUALITY_MIN_DECIDED = 4
    settings.QUALITY_AUDIT_SHARE = 1.0  # every item is audited: people see them all
    calibration = drafts_with_verdicts(domain, ["unsupported"] * 2 + ["supported"] * 2)
    decide(calibration, annotator, reject={calibration[0].pk, calibration[1].pk})
    policy = auto_accept.switch_on(domain, by=admin_user)
    # The audit since: people reject 4 items the verifier called supported — recall falls to 0.
    later = drafts_with_verdicts(domain, ["supported"] * 4)
    decide(later, annotator, reject={i.pk for i in later})
    assert auto_accept.run_auto_accept(domain) == {"accepted": 0, "audited": 0, "skipped": 0}
    policy.refresh_from_db()
    assert policy.status == AutoAcceptStatus.OFF
    event = AutoAcceptEvent.objects.filter(policy=policy).latest("id")
    assert (event.from_status, event.to_status) == ("on", "off")
    assert (
        event.actor.username == "auto-accept"
        and "audit below the floors: precision n/a, recall 0.0%" in event.note
    )


def test_the_switch_on_page_and_api_refuse_with_the_figures_and_the_report_is_served(
    client, domain, admin_user
):
    from rest_framework.test import APIClient

    client.force_login(admin_user)
    response = client.post(f"/review/auto-accept/{domain.slug}/", {"on": "1"}, follow=True)
    assert response.status_code == 200 and "auto-accept stays off for exceptions" in response.content.decode()
    assert 'id="verifier"' in response.content.decode() and 'id="auto-accept"' in response.content.decode()
    api = APIClient()
    api.force_authenticate(admin_user)
    refused = api.post(f"/api/v1/review/quality/{domain.slug}/auto-accept/", {"on": True}, format="json")
    assert refused.status_code == 409 and "floors" in refused.json()["detail"]
    assert (
        api.post(
            f"/api/v1/review/quality/{domain.slug}/auto-accept/", {"on": "maybe"}, format="json"
        ).status_code
        == 400
    )
    assert (
        api.post("/api/v1/review/quality/nowhere/auto-accept/", {"on": False}, format="json").status_code
        == 404
    )
    report = api.get("/api/v1/review/quality/report/").json()
    assert {"flags", "verifier", "auto_accept"} <= set(report)
    assert report["auto_accept"][0]["status"] == "off"
