"""Simulated time.

Tests and demos must be able to age tokens by hours or days without waiting, so every expiry decision in
the simulator asks this clock instead of ``time.time()``. Simulated now is real now plus an offset; the
offset only moves when the control API says so, which keeps the simulator's notion of "elapsed" honest
between two requests.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class SimClock:
    def __init__(self, offset_seconds: float = 0.0, real_time: Callable[[], float] = time.time) -> None:
        self._offset = float(offset_seconds)
        self._real_time = real_time
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._real_time() + self._offset

    @property
    def offset_seconds(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += float(seconds)
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
