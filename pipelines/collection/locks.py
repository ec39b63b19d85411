"""Named leases that keep a slow cycle from running twice at once, across processes and machines.

Redis (`SET NX PX` with a token, released only by its holder) when LOCK_REDIS_URL is set, which it
is by default whenever the Celery broker is Redis; otherwise a row in the database with the same
semantics, taken and stolen (once expired) by compare-and-set.

`cycle_lock` is held while work runs and released after it; `claim` takes a lease that is never
released, only expires: "this cycle's shard (or dispatch) is taken", so a duplicate of the same
work in the same cycle does nothing, whether the first one finished, still runs or died.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache

import redis
from django.conf import settings
from django.db import IntegrityError, transaction

from pipelines import clock
from pipelines.models import Lock

KEY_PREFIX = "opsboard:lock:"


@lru_cache(maxsize=4)
def _redis(url: str):
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _acquire_db(name: str, token: str, ttl: float) -> bool:
    at = clock.now()
    expires = at + timedelta(seconds=ttl)
    try:
        with transaction.atomic():
            Lock.objects.create(name=name, token=token, expires_at=expires)
        return True
    except IntegrityError:
        # Held: take it over only if the lease ran out (and nobody else took it over first).
        return Lock.objects.filter(name=name, expires_at__lt=at).update(token=token, expires_at=expires) == 1


def claim(name: str, ttl: float) -> bool:
    """Take the lease `name` for `ttl` seconds, for good: True for the first taker only.

    Nobody releases it; it expires, so work whose holder died is taken by a later claim under
    another name (the next cycle's) or, once `ttl` has passed, under the same one.
    """
    token = secrets.token_hex(16)
    url = settings.LOCK_REDIS_URL
    if url:
        return bool(_redis(url).set(KEY_PREFIX + name, token, nx=True, px=max(1, int(ttl * 1000))))
    return _acquire_db(name, token, ttl)


def prune_expired() -> int:
    """Delete expired database leases (claims leave one row each; Redis expires its own keys)."""
    if settings.LOCK_REDIS_URL:
        return 0
    return Lock.objects.filter(expires_at__lt=clock.now()).delete()[0]


@contextmanager
def cycle_lock(name: str, ttl: float) -> Iterator[bool]:
    """Yield True when the lease was taken (and release it after), False when someone holds it.

    `ttl` bounds how long a crashed holder can block others; use the task's hard time limit.
    """
    token = secrets.token_hex(16)
    url = settings.LOCK_REDIS_URL
    if url:
        lock = _redis(url).lock(KEY_PREFIX + name, timeout=ttl, blocking=False)
        acquired = lock.acquire(blocking=False, token=token)
        try:
            yield bool(acquired)
        finally:
            if acquired:
                try:
                    lock.release()
                except Exception:
                    pass
        return
    acquired = _acquire_db(name, token, ttl)
    try:
        yield acquired
    finally:
        if acquired:
            Lock.objects.filter(name=name, token=token).delete()
