"""Log setup and the per-token log context.

`token_context(namespace, name)` (set by the reconcile entry point, controller.reconcile, and by the
HubSpotToken watch handler) puts the token and a per-reconcile id into contextvars; every record logged
inside, however deep (the HubSpot client, kube.py, a task started from there), carries them. The JSON
formatter writes them as `namespace`, `name` and `reconcile_id`. Text logs (the default outside the chart)
look as they always did: their messages already name the token.

JSON lines: {"time": "2026-12-03T08:49:24.123Z", "level": "info", "logger": "...", "msg": "...",
"namespace": "...", "name": "...", "reconcile_id": "..."}; `exc` holds a traceback when there is one. Kopf's
own per-object lines carry their object's namespace/name too (Kopf's `k8s_ref`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

_token: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("hto_token", default=None)
_reconcile_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hto_reconcile_id", default=None)


def new_reconcile_id() -> str:
    return secrets.token_hex(6)


@contextmanager
def token_context(namespace: str | None, name: str | None, reconcile_id: str | None = None) -> Iterator[None]:
    """Records logged inside are about this token (and this reconcile, when an id is given)."""
    t1 = _token.set((namespace or "", name or ""))
    t2 = _reconcile_id.set(reconcile_id)
    try:
        yield
    finally:
        _reconcile_id.reset(t2)
        _token.reset(t1)


def current_token() -> tuple[str, str] | None:
    return _token.get()


def utc_timestamp(created: float) -> str:
    """RFC 3339, UTC, milliseconds: 2026-12-03T08:49:24.123Z."""
    stamp = datetime.fromtimestamp(created, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def record_fields(record: logging.LogRecord) -> dict:
    """The fields of one JSON line (a pure function of the record and the log context)."""
    out: dict = {
        "time": utc_timestamp(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    ns = getattr(record, "namespace", None)
    name = getattr(record, "token", None)  # extra={"namespace": ..., "token": ...} (`name` is the logger's)
    ref = getattr(record, "k8s_ref", None)  # Kopf's object loggers
    if ns is None and isinstance(ref, dict) and ref.get("name"):
        ns, name = ref.get("namespace") or "", ref.get("name")
    if ns is None:
        token = _token.get()
        if token is not None:
            ns, name = token
    if ns is not None:
        out["namespace"], out["name"] = ns, name or ""
    rid = getattr(record, "reconcile_id", None) or _reconcile_id.get()
    if rid:
        out["reconcile_id"] = rid
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = record_fields(record)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party loggers that could print request URLs or bodies stay quiet.
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes", "kubernetes_asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Kopf says "Handler 'secret_event' succeeded." at INFO for every watch event of every object: three
    # lines per refresh, none of them news. Its warnings and errors still come through.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
