"""Migration review/0004 copies every ReviewEvent row to the event table of its subject — a queue move to
corpus.ImageEvent, a second-pass move to review.SecondPassEvent — before 0005 drops ReviewEvent; its
reverse copies them back."""

import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("review", "0003_second_pass_events"), ("corpus", "0011_image_review_events")]
AFTER = [("review", "0005_delete_reviewevent")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_review_events_are_copied_to_image_and_second_pass_events(django_user_model):
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        old = _migrate(BEFORE)
        user = old.get_model("auth", "User").objects.create(username="migrated-annotator")
        domain = old.get_model("corpus", "Domain").objects.create(name="Migrated", slug="migrated")
        image = old.get_model("corpus", "Image").objects.create(
            file="images/x.png", width=1, height=1, sha256="f" * 64, domain=domain, review_status="reviewed"
        )
        second = old.get_model("review", "SecondPass").objects.create(image=image, status="in_review")
        at = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
        events = old.get_model("review", "ReviewEvent").objects
        events.create(
            image=image,
            subject="queue",
            from_status="pending",
            to_status="in_review",
            actor=user,
            at=at,
            note="claimed",
        )
        events.create(
            image=image,
            subject="queue",
            from_status="in_review",
            to_status="reviewed",
            actor=user,
            at=at + datetime.timedelta(minutes=1),
            note="all drafts decided",
        )
        events.create(
            image=image,
            subject="second_pass",
            from_status="pending",
            to_status="in_review",
            actor=user,
            at=at + datetime.timedelta(minutes=2),
            note="claimed",
        )

        new = _migrate(AFTER)
        image_events = new.get_model("corpus", "ImageEvent").objects.filter(image_id=image.pk).order_by("at")
        assert [(e.from_status, e.to_status, e.actor_id, e.at, e.note) for e in image_events] == [
            ("pending", "in_review", user.pk, at, "claimed"),
            ("in_review", "reviewed", user.pk, at + datetime.timedelta(minutes=1), "all drafts decided"),
        ]
        second_events = new.get_model("review", "SecondPassEvent").objects.filter(second_pass_id=second.pk)
        assert [(e.from_status, e.to_status, e.note) for e in second_events] == [
            ("pending", "in_review", "claimed")
        ]

        back = _migrate(BEFORE)  # the reverse puts them back, subject and all
        restored = back.get_model("review", "ReviewEvent").objects.order_by("at")
        assert [(e.subject, e.to_status, e.note) for e in restored] == [
            ("queue", "in_review", "claimed"),
            ("queue", "reviewed", "all drafts decided"),
            ("second_pass", "in_review", "claimed"),
        ]
    finally:
        _migrate(leaves)
