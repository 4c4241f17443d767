"""python manage.py generate captions|instructions|conversation|ocr|verify --domain SLUG [--domain …] [--model NAME] [--limit N]
[--force] [--wait [--timeout SECONDS]]

--wait only watches: recovery of dead workers' work is Celery beat's sweep, not this command's. A job
that no worker has started after QUEUED_HINT_SECONDS gets one line saying so (it waits in the queue; start
a worker); --timeout stops watching — not the job — after that many seconds, with exit status 1."""

import argparse
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from corpus.rules import InstructionType
from generation import selectors
from generation.models import GenerationJob, JobStatus, Stage
from generation.services import jobs as job_service

QUEUED_HINT_SECONDS = 30.0


class Command(BaseCommand):
    help = (
        "Launch a generation job — captions, instructions, conversations or OCR (run by the Celery workers)."
    )

    def add_arguments(self, parser):
        parser.add_argument("stage", choices=Stage.values)
        parser.add_argument(
            "--domain", action="append", required=True, dest="domains", help="Domain slug (repeat)."
        )
        parser.add_argument(
            "--model", help="Endpoint name (default: the default endpoint of the stage's kind)."
        )
        parser.add_argument("--limit", type=int, help="At most this many images.")
        parser.add_argument(
            "--status", action="append", dest="statuses", help="Only images in this review state."
        )
        parser.add_argument("--type", action="append", dest="types", choices=InstructionType.values)
        parser.add_argument("--n", type=int, default=3, help="Questions per type (instructions).")
        parser.add_argument("--seeds", type=int, default=2, help="Seed questions per prompt (instructions).")
        parser.add_argument(
            "--include-drafts",
            action="store_true",
            help="Instructions (and conversations) from draft captions too.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Launch although the endpoint's key variable is not set or its last connection test failed.",
        )
        parser.add_argument("--wait", action="store_true", help="Show progress until the job ends.")
        parser.add_argument(
            "--timeout",
            type=float,
            help="With --wait: stop watching after this many seconds (the job goes on); exit status 1.",
        )
        parser.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)

    def handle(self, *args, **opts):
        if opts["timeout"] is not None and not opts["wait"]:
            raise CommandError("--timeout goes with --wait: it says how long to watch the job.")
        if opts["timeout"] is not None and not opts["timeout"] > 0:
            raise CommandError("--timeout: give a number of seconds above 0.")
        try:
            job = job_service.launch_job(
                stage=opts["stage"],
                by=None,
                domains=opts["domains"],
                endpoint_name=opts["model"],
                statuses=opts["statuses"],
                limit=opts["limit"],
                include_drafts=opts["include_drafts"],
                types=opts["types"],
                n_per_type=opts["n"],
                seeds_per_prompt=opts["seeds"],
                force=opts["force"],
            )
        except job_service.NeedsConfirmation as e:
            raise CommandError(f"not launched: {'; '.join(e.warnings)}. Add --force to launch anyway.") from e
        except job_service.LaunchError as e:
            raise CommandError(f"{e.field}: {e}" if e.field else str(e)) from e
        runs_on = f"endpoint {job.endpoint.name}" if job.endpoint else "the local OCR engine"
        self.stdout.write(f"Job {job.pk} queued ({job.stage}, {runs_on}).")
        if not opts["wait"]:
            return
        started, hinted = time.monotonic(), False
        bar = tqdm(total=0, unit="unit", file=self.stderr._out, dynamic_ncols=True)
        try:
            while True:
                job = GenerationJob.objects.select_related("endpoint").get(pk=job.pk)
                p = selectors.progress(job)
                bar.total = p.total
                bar.n = p.finished
                bar.set_postfix_str(f"{job.status} failed={p.failed} cost=${p.cost:.4f}")
                bar.refresh()
                if not job.is_active:
                    break
                waited = time.monotonic() - started
                if not hinted and job.status == JobStatus.QUEUED and waited >= QUEUED_HINT_SECONDS:
                    hinted = True
                    bar.write(
                        f"Job {job.pk} is still queued after {waited:.0f} s: no worker has started it. It"
                        " waits in the queue until one runs (make worker; make run starts one).",
                        file=self.stderr._out,
                    )
                if opts["timeout"] is not None and waited >= opts["timeout"]:
                    raise CommandError(
                        f"job {job.pk} is still {job.status} after {waited:.0f} s; it goes on without this"
                        f" command (its page: /generation/jobs/{job.pk}/)."
                        + (
                            " No worker has started it: start one (make worker)."
                            if job.status == JobStatus.QUEUED
                            else ""
                        )
                    )
                time.sleep(opts["poll"])
        finally:
            bar.close()
        self.stdout.write(
            f"Job {job.pk} {job.status}: {p.done} done, {p.failed} failed, {p.skipped} skipped, "
            f"tokens {p.tokens_in}/{p.tokens_out}, cost ${p.cost:.4f}."
        )
        if job.plan_note:
            self.stdout.write(f"  plan: {job.plan_note}")
        for failure in selectors.latest_errors(job, limit=5):
            self.stdout.write(f"  unit {failure.unit_id} (image {failure.image_id}): {failure.error}")
        if job.status != JobStatus.DONE:
            raise CommandError(f"job {job.pk} ended {job.status}")
