"""Keep tokens out of httpx/httpcore log lines.

httpx logs every request URL at INFO, and the v1 metadata endpoints put the token in the URL path. A
logging filter on those loggers rewrites such paths before any handler (including the root's) sees the
record. Installed once per process by the client; it does not change log levels the application chose.
"""

from __future__ import annotations

import logging
import re

_TOKEN_IN_PATH = re.compile(r"(/oauth/v1/(?:access|refresh)-tokens/)[^/\s?\"'#]+")
_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")
_installed = False


def redact_paths(text: str) -> str:
    return _TOKEN_IN_PATH.sub(r"\1{token}", text)


class RedactTokenPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_paths(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    guard = RedactTokenPaths()
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(guard)
