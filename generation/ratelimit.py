"""Requests- and tokens-per-minute limits per endpoint, shared by every worker through Redis.

A sliding-window log in one Lua script (atomic in Redis): a sorted set of the requests admitted in the
last window (score = Redis server time, so worker clocks do not matter) and a hash of the tokens each
reserved, with their running sum. Requests are also paced (at least window/limit apart) so that a burst
does not spend a whole window's budget in its first seconds and then stall. `acquire` admits a request or says how long to wait; `settle` replaces
a request's reserved tokens by its real usage once the answer is in. No window of `window` seconds ever
holds more than the limit; a margin is added to the window so that arrival jitter at the server cannot
either. Without Redis (embedded mode) the same algorithm runs in-process — it then limits one worker
process only, which is what embedded mode has.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from django.conf import settings

log = logging.getLogger(__name__)

ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local req_limit = tonumber(ARGV[2])
local tok_limit = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
local spacing = tonumber(ARGV[6])
local cutoff = now - window
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #old > 0 then
  local freed = 0
  for _, m in ipairs(old) do
    local tk = redis.call('HGET', KEYS[2], m)
    if tk then
      freed = freed + tonumber(tk)
      redis.call('HDEL', KEYS[2], m)
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  if freed ~= 0 then redis.call('HINCRBY', KEYS[2], '_sum', -freed) end
end
if spacing > 0 then
  local last = tonumber(redis.call('HGET', KEYS[2], '_last') or '0')
  if now - last < spacing then return spacing - (now - last) + 1 end
end
if req_limit > 0 and redis.call('ZCARD', KEYS[1]) >= req_limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(first[2]) + window - now + 1
end
local sum = tonumber(redis.call('HGET', KEYS[2], '_sum') or '0')
if tok_limit > 0 and sum > 0 and sum + tokens > tok_limit then
  local need = sum + tokens - tok_limit
  local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local freed = 0
  for i = 1, #entries, 2 do
    freed = freed + tonumber(redis.call('HGET', KEYS[2], entries[i]) or '0')
    if freed >= need then return tonumber(entries[i + 1]) + window - now + 1 end
  end
  return window
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('HSET', KEYS[2], ARGV[5], tokens)
redis.call('HINCRBY', KEYS[2], '_sum', tokens)
redis.call('HSET', KEYS[2], '_last', now)
redis.call('PEXPIRE', KEYS[1], window * 2)
redis.call('PEXPIRE', KEYS[2], window * 2)
return 0
"""

SETTLE_LUA = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return 0 end
local delta = tonumber(ARGV[2]) - tonumber(old)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], '_sum', delta)
return delta
"""


@dataclass(frozen=True)
class Limits:
    key: str  # one bucket per endpoint
    requests: int  # per window; 0 = none
    tokens: int  # per window; 0 = none
    paced: bool = True  # space requests evenly (window / requests apart) instead of bursting

    @property
    def spacing_ms(self) -> int:
        return int(window_ms() / self.requests) if self.paced and self.requests else 0

    @classmethod
    def per_minute(cls, key: str, rpm: int, tpm: int) -> Limits:
        """Scale per-minute limits to the configured window (60 s in production, shorter in tests)."""
        scale = settings.GENERATION_RATE_WINDOW / 60.0
        return cls(
            key=key,
            requests=max(1, int(rpm * scale)) if rpm else 0,
            tokens=max(1, int(tpm * scale)) if tpm else 0,
        )


def window_ms() -> int:
    return int((settings.GENERATION_RATE_WINDOW + settings.GENERATION_RATE_MARGIN) * 1000)


class RedisLimiter:
    shared = True

    def __init__(self, url: str):
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)
        self._acquire = self._redis.register_script(ACQUIRE_LUA)
        self._settle = self._redis.register_script(SETTLE_LUA)

    @staticmethod
    def _keys(limits: Limits) -> list[str]:
        return [f"mmi:rl:{limits.key}:req", f"mmi:rl:{limits.key}:tok"]

    async def try_acquire(self, limits: Limits, tokens: int, member: str) -> float:
        """Admit the request now (0.0) or return the seconds to wait before asking again."""
        wait_ms = await self._acquire(
            keys=self._keys(limits),
            args=[window_ms(), limits.requests, limits.tokens, tokens, member, limits.spacing_ms],
        )
        return max(0.0, int(wait_ms) / 1000.0)

    async def settle(self, limits: Limits, member: str, tokens: int) -> None:
        await self._settle(keys=self._keys(limits), args=[member, tokens])

    async def close(self) -> None:
        await self._redis.aclose()


class LocalLimiter:
    """The same sliding window in this process (embedded mode). Shared by all tasks of the process."""

    shared = False
    _lock = threading.Lock()
    _log: dict[str, deque] = {}
    _tokens: dict[str, dict[str, int]] = {}
    _last: dict[str, float] = {}

    async def try_acquire(self, limits: Limits, tokens: int, member: str) -> float:
        now = time.monotonic()
        window = window_ms() / 1000.0
        with self._lock:
            entries = self._log.setdefault(limits.key, deque())
            reserved = self._tokens.setdefault(limits.key, {})
            while entries and entries[0][0] <= now - window:
                _, old = entries.popleft()
                reserved.pop(old, None)
            spacing = limits.spacing_ms / 1000.0
            last = self._last.get(limits.key)
            if spacing and last is not None and now - last < spacing:
                return spacing - (now - last) + 0.001
            if limits.requests and len(entries) >= limits.requests:
                return entries[0][0] + window - now + 0.001
            total = sum(reserved.values())
            if limits.tokens and total and total + tokens > limits.tokens:
                need, freed = total + tokens - limits.tokens, 0
                for at, m in entries:
                    freed += reserved.get(m, 0)
                    if freed >= need:
                        return at + window - now + 0.001
                return window
            entries.append((now, member))
            reserved[member] = tokens
            self._last[limits.key] = now
            return 0.0

    async def settle(self, limits: Limits, member: str, tokens: int) -> None:
        with self._lock:
            reserved = self._tokens.get(limits.key, {})
            if member in reserved:
                reserved[member] = tokens

    async def close(self) -> None:
        pass


def make_limiter() -> RedisLimiter | LocalLimiter:
    if settings.REDIS_URL:
        return RedisLimiter(settings.REDIS_URL)
    global _warned
    if not _warned:
        log.warning("No REDIS_URL: the rate limit is enforced per worker process only (embedded mode).")
        _warned = True
    return LocalLimiter()


_warned = False


async def acquire(limiter, limits: Limits, tokens: int) -> str:
    """Wait until the limiter admits one request reserving `tokens`; return its id for `settle`."""
    member = uuid.uuid4().hex
    while True:
        wait = await limiter.try_acquire(limits, tokens, member)
        if wait <= 0:
            return member
        await asyncio.sleep(wait)
