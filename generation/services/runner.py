"""Run a chunk of units: an asyncio loop keeps up to `max_concurrency` model calls in flight.

The network calls are concurrent; every database step (claim, prepare, write, fail) runs through
`sync_to_async(thread_sensitive=True)`, i.e. serially on one thread with one connection, and never
inside a transaction that spans a call. Retries live here (the client has max_retries=0): 429 waits for
Retry-After (capped), 5xx/timeouts/connection errors/malformed output back off exponentially with full
jitter, up to GENERATION_MAX_ATTEMPTS; anything else fails the unit at once with the error text.

The database may drop its connections under a running chunk (a PostgreSQL restart): every database step
goes through `_db`, which closes the dead connection and tries again with backoff (DB_ATTEMPTS times),
so the chunk carries on once the database is back. A claim is retried with its own token, so a claim
that committed before the connection died is not lost; a result write is guarded by the claim token, so
a write that committed before the connection died is not made twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from .. import llm, ratelimit
from ..models import LOCAL_STAGES, GenerationJob, JobStatus, Stage
from . import drafting, ocr
from . import endpoints as endpoint_service
from . import jobs as job_service
from . import units as unit_service

log = logging.getLogger(__name__)
db = sync_to_async(thread_sensitive=True)
# Tries of one database step when the connection is lost, with exponential backoff from DB_BACKOFF s
# capped at DB_BACKOFF_CAP s (about half a minute in all); then the chunk task fails and Celery retries it.
DB_ATTEMPTS = 6
DB_BACKOFF = 0.5
DB_BACKOFF_CAP = 8.0


def _drop_connection() -> None:
    """Forget this thread's database connection after an error (the next query opens a new one)."""
    try:
        connection.close()
    except (OperationalError, InterfaceError):
        connection.connection = None


async def _db(fn, *args, **kwargs):
    """Run one database step on the database thread; a lost connection is closed and the step retried."""
    for attempt in range(1, DB_ATTEMPTS + 1):
        try:
            return await db(fn)(*args, **kwargs)
        except (OperationalError, InterfaceError) as e:
            if attempt == DB_ATTEMPTS:
                raise
            wait = min(DB_BACKOFF_CAP, DB_BACKOFF * 2 ** (attempt - 1))
            log.warning("database step %s failed (%s); retrying in %.1f s", fn.__name__, e, wait)
            await db(_drop_connection)()
            await asyncio.sleep(wait)


@dataclass
class ChunkResult:
    done: int = 0
    failed: int = 0
    released: int = 0
    skipped: int = 0
    held: dict[int, object] = field(default_factory=dict)  # unit id → lease expiry (another worker has it)
    stopped: bool = False


def backoff(attempt: int) -> float:
    """Full-jitter exponential backoff for the attempt-th retry (1-based)."""
    ceiling = min(settings.GENERATION_BACKOFF_CAP, settings.GENERATION_BACKOFF_BASE * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)


class _JobWatch:
    """The job's status, re-read at most every 0.5 s, so a pause or cancel stops new work quickly."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.status: str | None = None
        self.read_at = 0.0

    async def running(self) -> bool:
        if time.monotonic() - self.read_at > 0.5:
            self.status = await _db(job_service.job_status, self.job_id)
            self.read_at = time.monotonic()
        return self.status == JobStatus.RUNNING


def run_chunk(job_id: int, unit_ids: list[int]) -> ChunkResult:
    """Process these units of the job. Idempotent: units done or owned by a live worker are left alone."""
    job = GenerationJob.objects.select_related("endpoint").get(pk=job_id)
    result = ChunkResult()
    if job.status != JobStatus.RUNNING:
        result.stopped = True
        return result
    # A redelivered chunk, or one whose units other lanes already took: skip the finished ones quickly.
    unit_ids = unit_service.open_unit_ids(unit_ids)
    if job.stage in LOCAL_STAGES:
        ocr.run_units(job, unit_ids, result)  # no model, no event loop: this process's OCR engine
        close_old_connections()
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run(job, unit_ids, result))
    else:
        # Called from code that already runs an event loop in this thread (asyncio.run would refuse):
        # give ours a thread of its own.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, _run(job, unit_ids, result)).result()
    close_old_connections()
    return result


async def _run(job: GenerationJob, unit_ids: list[int], result: ChunkResult) -> None:
    # A connection this thread kept from an earlier chunk may have died since (database restart): let
    # Django check it (CONN_HEALTH_CHECKS) before the first query.
    await _db(close_old_connections)
    endpoint = job.endpoint
    try:
        client = llm.make_client(
            base_url=endpoint.base_url, api_key_env=endpoint.api_key_env, timeout=endpoint.timeout
        )
    except llm.EndpointRefused as e:
        # The endpoint breaks the rules (a key variable or address that is not allowed): nothing is sent;
        # every unit of the chunk fails with the reason.
        lease = unit_service.lease_seconds(endpoint)
        for unit_id in unit_ids:
            claim = await _db(unit_service.claim_unit, unit_id, lease=lease)
            if claim.unit is not None:
                await _db(
                    unit_service.fail_unit, claim.unit, claim.token, error=str(e), attempts=0, tokens_in=0,
                    tokens_out=0, cost=0,
                )  # fmt: skip
                result.failed += 1
        await _db(close_old_connections)
        return
    limiter = ratelimit.make_limiter()
    limits = ratelimit.Limits.per_minute(f"endpoint-{endpoint.pk}", endpoint.rpm_limit, endpoint.tpm_limit)
    watch = _JobWatch(job.pk)
    lease = unit_service.lease_seconds(endpoint)
    queue = deque(unit_ids)
    refill_lock = asyncio.Lock()
    state = {"exhausted": not settings.GENERATION_STEAL_WORK}
    # Whether to write instructions from draft captions is part of the selection (the params dict does
    # not carry it); regenerations select include_drafts too.
    params = {**job.params, "include_drafts": job.selection.get("include_drafts", True)}

    async def next_unit() -> int | None:
        # When this chunk's own units run out, keep the lanes busy with other pending units of the job
        # (the claims keep that single), instead of letting concurrency drain to zero at every chunk's end;
        # units a dead worker left running past their lease are taken too.
        if queue:
            return queue.popleft()
        async with refill_lock:
            if not queue and not state["exhausted"]:
                more = await _db(unit_service.claimable_unit_ids, job.pk, limit=endpoint.max_concurrency)
                if more:
                    queue.extend(more)
                else:
                    state["exhausted"] = True
        return queue.popleft() if queue else None

    async def lane() -> None:
        while True:
            if not await watch.running():
                result.stopped = True
                return
            unit_id = await next_unit()
            if unit_id is None:
                return
            await _process(unit_id, job, params, endpoint, client, limiter, limits, watch, lease, result)

    try:
        await asyncio.gather(*(lane() for _ in range(endpoint.max_concurrency)))
    finally:
        await limiter.close()
        await client.close()
        await _db(close_old_connections)


async def _process(
    unit_id, job, params, endpoint, client, limiter, limits, watch, lease, result: ChunkResult
) -> None:
    claim = await _db(unit_service.claim_unit, unit_id, lease=lease, token=uuid.uuid4().hex)
    if claim.unit is None:
        if claim.held_until is not None:
            result.held[unit_id] = claim.held_until
        else:
            result.skipped += 1
        return
    token = claim.token
    usage = drafting.Usage()
    try:
        request = await _db(drafting.prepare, claim.unit, params)
    except (OperationalError, InterfaceError):
        raise  # the database is gone for good (after _db's retries): the task fails and Celery retries it
    except Exception as e:  # an unreadable image, a missing caption, a deleted row: fail this unit only
        log.warning("unit %s cannot run: %s", unit_id, e)
        await _db(
            unit_service.fail_unit,
            claim.unit,
            token,
            error=f"cannot prepare the request: {e}",
            attempts=0,
            tokens_in=0,
            tokens_out=0,
            cost=0,
        )
        result.failed += 1
        return

    last_error = ""
    max_attempts = settings.GENERATION_MAX_ATTEMPTS
    for attempt in range(1, max_attempts + 1):
        if attempt > 1 and not await watch.running():
            await _db(unit_service.release_unit, unit_id, token, attempts=usage.attempts)
            result.released += 1
            return
        member = await ratelimit.acquire(
            limiter, limits, request.est_tokens + settings.GENERATION_TOKENS_RESERVED
        )
        usage.attempts = attempt
        wait: float | None = None
        try:
            if request.stage == Stage.CAPTIONS:
                answer = await llm.describe_image(
                    client, model=endpoint.model, prompt=request.prompt, image_data_url=request.image_data_url
                )
            elif request.stage == Stage.VERIFY:
                answer = await llm.judge_image(
                    client,
                    model=endpoint.model,
                    prompt=request.prompt,
                    image_data_url=request.image_data_url,
                    schema=request.schema,
                    schema_name=request.schema_name,
                )
            else:
                answer = await llm.write_json(
                    client,
                    model=endpoint.model,
                    prompt=request.prompt,
                    schema=request.schema,
                    schema_name=request.schema_name,
                )
        except llm.RateLimited as e:
            await limiter.settle(limits, member, 0)
            last_error = str(e)
            wait = (
                min(e.retry_after, settings.GENERATION_RETRY_AFTER_CAP) if e.retry_after else backoff(attempt)
            )
        except llm.TransientError as e:
            await limiter.settle(limits, member, 0)
            last_error = str(e)
            wait = backoff(attempt)
        except llm.PermanentError as e:
            await limiter.settle(limits, member, 0)
            await _db(
                unit_service.fail_unit,
                claim.unit,
                token,
                error=str(e),
                attempts=attempt,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
                cost=usage.cost,
            )
            result.failed += 1
            return
        else:
            await limiter.settle(limits, member, answer.tokens_in + answer.tokens_out)
            usage.tokens_in += answer.tokens_in
            usage.tokens_out += answer.tokens_out
            usage.cost = endpoint_service.cost_of(endpoint, usage.tokens_in, usage.tokens_out)
            usage.latency_ms = answer.latency_ms
            try:
                text, items = drafting.parse_answer(request, answer.text)
            except drafting.MalformedOutput as e:
                last_error = f"malformed output: {e}"
                wait = backoff(attempt)
            else:
                wrote = await _db(
                    drafting.write_result,
                    claim.unit,
                    token,
                    request,
                    text=text,
                    items=items,
                    model_name=answer.model,
                    usage=usage,
                )
                if wrote:
                    result.done += 1
                else:
                    result.skipped += 1  # our lease ran out and another worker took the unit
                return
        if attempt < max_attempts and wait is not None:
            await asyncio.sleep(wait)

    await _db(
        unit_service.fail_unit,
        claim.unit,
        token,
        error=f"gave up after {max_attempts} attempts: {last_error}",
        attempts=max_attempts,
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        cost=usage.cost,
    )
    result.failed += 1
