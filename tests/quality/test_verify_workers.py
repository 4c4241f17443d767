"""The verify stage on real Celery workers: a worker killed mid-job, its units taken over by another —
every image ends with exactly one verdict per draft, none twice (the claim token and the (instruction,
unit) uniqueness)."""

import pytest
from django.db.models import Count

from corpus.models import Verdict
from generation import selectors, services
from generation.models import GenerationJob, GenerationUnit, JobStatus, UnitStatus
from tests.corpus.factories import CaptionFactory, DomainFactory, ImageFactory, InstructionFactory
from tests.generation.conftest import (
    assert_one_event_per_move,
    point_endpoints,
    workers,  # noqa: F401 - the fixture with the key variable set
)
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_killed_worker_leaves_no_duplicate_verdicts(workers, fake, admin_user):  # noqa: F811
    workers.env.update(
        CELERY_VISIBILITY_TIMEOUT="5", GENERATION_UNIT_LEASE_SECONDS="4", GENERATION_CHUNK_SIZE="10"
    )
    fake.latency = 0.15
    fake.unsupported_share = 0.2
    point_endpoints(fake.base_url, workers, max_concurrency=4)
    domain = DomainFactory(slug="verify-kill")
    drafts = 0
    for image in ImageFactory.create_batch(40, domain=domain):
        caption = CaptionFactory(image=image)
        for _ in range(3):
            InstructionFactory(image=image, caption=caption)
            drafts += 1
    first = workers.start()
    job = services.launch_job(stage="verify", by=admin_user, domains=["verify-kill"])
    wait_for(lambda: selectors.progress(job).done >= 8, 30, what="some units to finish")
    wait_for(lambda: selectors.progress(job).running, 10, interval=0.01, what="a unit in flight")
    workers.kill(first)
    # The killed worker held units someone else must take over.
    assert GenerationUnit.objects.filter(job=job, status=UnitStatus.RUNNING).exists()
    workers.start()
    wait_for(
        lambda: GenerationJob.objects.get(pk=job.pk).status == JobStatus.DONE, 90, interval=0.5,
        what="the job to finish after the kill",
    )  # fmt: skip
    assert_one_event_per_move(job)
    assert GenerationUnit.objects.filter(job=job, status=UnitStatus.DONE).count() == 40
    assert Verdict.objects.count() == drafts
    assert not Verdict.objects.values("instruction").annotate(n=Count("id")).filter(n__gt=1).exists()
