"""The sliding-window limiter, in Redis and in-process: the limit holds, waits are right, tokens count."""

import asyncio
import time
import uuid

import pytest

from generation import ratelimit


@pytest.fixture
def short_window(settings):
    settings.GENERATION_RATE_WINDOW = 1.0  # limits are per-minute figures scaled to this window
    settings.GENERATION_RATE_MARGIN = 0.1


@pytest.fixture(params=["redis", "local"])
def limiter(request, settings, short_window):
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        lim = ratelimit.RedisLimiter(url)
    else:
        lim = ratelimit.LocalLimiter()
    return lim


def run(coro):
    return asyncio.run(coro)


def test_requests_beyond_the_limit_wait_for_the_oldest_to_leave_the_window(limiter):
    limits = ratelimit.Limits(f"t-{uuid.uuid4().hex}", requests=5, tokens=0, paced=False)

    async def go():
        waits = [await limiter.try_acquire(limits, 1, uuid.uuid4().hex) for _ in range(6)]
        return waits

    waits = run(go())
    assert waits[:5] == [0.0] * 5
    assert 0.5 < waits[5] <= 1.2


def test_per_minute_limits_scale_with_the_window(short_window):
    limits = ratelimit.Limits.per_minute("k", rpm=300, tpm=6000)
    assert (limits.requests, limits.tokens) == (5, 100)
    assert limits.spacing_ms == 220  # (1 s window + 0.1 s margin) / 5


@pytest.mark.parametrize("paced", [True, False])
def test_acquire_holds_the_limit_in_every_window(limiter, paced):
    limits = ratelimit.Limits(f"t-{uuid.uuid4().hex}", requests=4, tokens=0, paced=paced)

    async def go():
        stamps = []

        async def one():
            await ratelimit.acquire(limiter, limits, 1)
            stamps.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(10)))
        return sorted(stamps)

    stamps = run(go())
    for i in range(len(stamps) - 4):
        assert stamps[i + 4] - stamps[i] >= 1.0, "5 admissions inside one window"
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    if paced:
        assert min(gaps) >= 0.25  # (1 s + 0.1 s) / 4, evenly spread
    else:
        assert min(gaps[:3]) < 0.1  # a burst, then a wait for the window
    assert stamps[-1] - stamps[0] < 3.5


def test_tokens_per_minute_limit_and_settle(limiter):
    limits = ratelimit.Limits(f"t-{uuid.uuid4().hex}", requests=0, tokens=100)

    async def go():
        first = uuid.uuid4().hex
        a = await limiter.try_acquire(limits, 80, first)
        b = await limiter.try_acquire(limits, 30, uuid.uuid4().hex)  # 110 > 100: wait
        await limiter.settle(limits, first, 20)  # the call used fewer tokens than reserved
        c = await limiter.try_acquire(limits, 30, uuid.uuid4().hex)  # 50 ≤ 100: admitted
        return a, b, c

    a, b, c = run(go())
    assert a == 0.0 and b > 0 and c == 0.0


def test_redis_limiter_is_shared_between_clients(redis_url, short_window):
    limits = ratelimit.Limits(f"t-{uuid.uuid4().hex}", requests=3, tokens=0, paced=False)

    async def go():
        one, two = ratelimit.RedisLimiter(redis_url), ratelimit.RedisLimiter(redis_url)
        waits = [await lim.try_acquire(limits, 1, uuid.uuid4().hex) for lim in (one, two, one, two)]
        await one.close()
        await two.close()
        return waits

    waits = run(go())
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] > 0  # the fourth, from either client, must wait: one bucket for both
