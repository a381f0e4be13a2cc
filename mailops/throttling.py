"""Rate limits: per-token API throttling and the sign-in failure limiter.

Both keep their counters in the shared cache (the database cache by default, Redis in
production), so every web process on every machine counts the same attempts.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class ApiRateThrottle(UserRateThrottle):
    """DRF's per-user throttle (one token per user, so per token), reading its rate on each request.

    DRF's own class binds the rate table when it is imported, so a rate changed in the
    environment of a running test or a reloaded setting would be ignored.
    """

    scope = "user"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


@dataclass(frozen=True, slots=True)
class LoginLimit:
    failures: int
    window_seconds: int


def login_limits() -> tuple[LoginLimit, LoginLimit]:
    """(per username and address, per address): a password guesser on one account, and a sprayer across many."""
    per_account = LoginLimit(
        failures=getattr(settings, "LOGIN_FAILURES_PER_ACCOUNT", 5),
        window_seconds=getattr(settings, "LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60),
    )
    per_address = LoginLimit(
        failures=getattr(settings, "LOGIN_FAILURES_PER_ADDRESS", 50),
        window_seconds=per_account.window_seconds,
    )
    return per_account, per_address


def _keys(username: str, address: str) -> tuple[str, str]:
    # Hashed so a cache dump shows neither usernames nor addresses, and any username length fits a key.
    account = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode()).hexdigest()
    ip = hashlib.sha256(address.encode()).hexdigest()
    return f"login-fail:acct:{account}", f"login-fail:ip:{ip}"


def _count(key: str) -> int:
    return int(cache.get(key) or 0)


def retry_after(username: str, address: str, *, now: float | None = None) -> int:
    """Seconds until this username may try again from this address; 0 when it may try now."""
    now = time.time() if now is None else now
    wait = 0.0
    for key, limit in zip(_keys(username, address), login_limits()):
        if _count(key) >= limit.failures:
            ends = float(cache.get(f"{key}:t") or now) + limit.window_seconds
            # A cache that outlives the window (Redis expires keys on its own clock) must not
            # keep the lock: the window, not the key's lifetime, decides.
            if ends > now:
                wait = max(wait, ends - now, 1)
    return max(0, math.ceil(wait))


def record_failure(username: str, address: str, *, now: float | None = None) -> None:
    """Count one failed attempt in a window that starts at the first failure.

    add() then incr() so concurrent attempts on Redis cannot overwrite each other's counts;
    both keys expire together when the window ends.
    """
    now = time.time() if now is None else now
    for key, limit in zip(_keys(username, address), login_limits()):
        started = cache.get(f"{key}:t")
        if started is not None and float(started) + limit.window_seconds <= now:
            # The window ended but its keys outlived it: this failure opens a new one.
            cache.delete_many([key, f"{key}:t"])
        cache.add(f"{key}:t", now, timeout=limit.window_seconds)
        cache.add(key, 0, timeout=limit.window_seconds)
        try:
            cache.incr(key)
        except ValueError:
            # The window ended between add() and incr(): this failure opens a new one.
            cache.set(key, 1, timeout=limit.window_seconds)
            cache.set(f"{key}:t", now, timeout=limit.window_seconds)


def clear_failures(username: str, address: str) -> None:
    """A successful sign-in forgets the account's failures (not the address's: a sprayer may own one account)."""
    key = _keys(username, address)[0]
    cache.delete_many([key, f"{key}:t"])


def client_address(request) -> str:
    """The caller's address as the web server saw it.

    X-Forwarded-For is trusted only when settings.TRUST_X_FORWARDED_FOR is on (behind a
    proxy that overwrites it); otherwise a client could pick a fresh address per attempt.
    """
    if getattr(settings, "TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"
