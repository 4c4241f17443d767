"""Request rates per user (and per client address for anonymous requests), kept in the cache
(`CACHES`: Redis when REDIS_URL is set, so every web process counts together; in-process in embedded
mode, where one process serves everything).

- `AnonThrottle` / `UserThrottle`: every API request (rates `anon` and `user`).
- `ActionThrottle`: tighter per-user limits for the costly commands. A view names the scope of its
  costly actions — `throttle_scope = {"create": "job_launch"}` (per action) or `throttle_scope =
  "export_build"` (every unsafe request of the view) — and `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`
  gives each scope its rate. Reads (GET, HEAD, OPTIONS) never count against a scope.
- `throttle(scope)`: the same limit for a page view (a form that launches, regenerates or builds).

A refused request gets 429 with `Retry-After` (the API's JSON error body, or the 429 page). Rates are
read when a request arrives, so tests and settings overrides take effect at once.
"""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or the entry of X-Forwarded-For that the last trusted proxy
    added (PROXY_COUNT proxies from the right) — the same rule DRF's throttles use (NUM_PROXIES).
    django-axes uses it too (AXES_CLIENT_IP_CALLABLE)."""
    return BaseThrottle().get_ident(request)


class _RatesFromSettings(SimpleRateThrottle):
    def get_rate(self):
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        if self.scope not in rates:
            raise ImproperlyConfigured(
                f"No throttle rate for scope {self.scope!r} in DEFAULT_THROTTLE_RATES."
            )
        return rates[self.scope]


class AnonThrottle(_RatesFromSettings):
    """Anonymous requests, per client address (rate `anon`)."""

    scope = "anon"

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UserThrottle(_RatesFromSettings):
    """Every request, per user (per client address when anonymous) (rate `user`)."""

    scope = "user"

    def get_cache_key(self, request, view):
        user = request.user
        ident = user.pk if user and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def _scope_of(view) -> str | None:
    scope = getattr(view, "throttle_scope", None)
    if isinstance(scope, dict):
        scope = scope.get(getattr(view, "action", None))
    return scope or None


class ScopeThrottle(UserThrottle):
    """Per-user limit of one named scope (the costly commands)."""

    def __init__(self, scope: str | None = None):
        if scope:
            self.scope = scope
            super().__init__()


class ActionThrottle(ScopeThrottle):
    """The view's `throttle_scope` (a name, or a dict of action → name), unsafe methods only."""

    def __init__(self):  # the scope, hence the rate, is known only once the view is
        pass

    def allow_request(self, request, view):
        scope = _scope_of(view)
        if request.method in SAFE_METHODS or not scope:
            return True
        self.scope = scope
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


def throttle(scope: str):
    """Page-view decorator: unsafe requests over the scope's rate get the 429 page with Retry-After."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in SAFE_METHODS:
                limiter = ScopeThrottle(scope)
                if not limiter.allow_request(request, None):
                    from web.error_pages import too_many_requests

                    return too_many_requests(request, limiter.wait())
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
