"""Named leases that keep a slow cycle from running twice at once, across processes and machines.

Redis (`SET NX PX` with a token, released only by its holder) when LOCK_REDIS_URL is set, which it
is by default whenever the Celery broker is Redis; otherwise a row in the database with the same
semantics, taken and stolen (once expired) by compare-and-set.
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
