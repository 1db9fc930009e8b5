"""Optional on-disk state (``hubspot-sim --state FILE``) so a restarted simulator keeps its apps and tokens.

Writes are atomic (temp file + ``os.replace``) and coalesced: a background task saves at most every
``interval`` seconds when the state's revision moved, plus once more on shutdown. Refresh storms therefore
cost one write per interval, not one per request; a hard kill can lose the last interval's changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

from aiohttp import web

from .state import SimState

log = logging.getLogger(__name__)


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def save(path: Path, snapshot: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(snapshot, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # it holds client secrets and tokens
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Persister:
    def __init__(self, state: SimState, path: str | os.PathLike, interval: float = 0.2) -> None:
        self.state = state
        self.path = Path(path)
        self.interval = interval
        self._saved_revision = -1
        self._task: asyncio.Task | None = None

    def load(self) -> bool:
        data = load(self.path)
        if data is None:
            return False
        self.state.restore(data)
        self._saved_revision = self.state.revision
        return True

    def flush(self) -> None:
        revision = self.state.revision
        if revision == self._saved_revision:
            return
        save(self.path, self.state.snapshot())
        self._saved_revision = revision

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.flush()
            except OSError:
                log.exception("could not save simulator state to %s", self.path)

    def attach(self, app: web.Application) -> None:
        async def start(_app: web.Application) -> None:
            self._task = asyncio.create_task(self._loop())

        async def stop(_app: web.Application) -> None:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self.flush()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
