"""Coalesce concurrent identical calls into one.

Two reconcilers refreshing the same grant at once would cost two token calls, and with rotating refresh
tokens the loser would hold a dead token. Keys are HMAC-SHA256 digests under a per-process random key, so
the in-flight map never holds a plaintext token and a digest is useless outside this process.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._hmac_key = secrets.token_bytes(32)
        self._inflight: dict[str, asyncio.Task[T]] = {}

    def key(self, *parts: str) -> str:
        message = "\x00".join(parts).encode()
        return hmac.new(self._hmac_key, message, hashlib.sha256).hexdigest()

    def in_flight(self) -> int:
        return len(self._inflight)

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        """Join the call already running under ``key`` or start one.

        The call runs as its own task and callers await it through ``shield``, so one caller being
        cancelled (e.g. a Kopf handler timing out) neither cancels the others nor wastes the HTTP call.
        """
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: nobody may be left awaiting it
