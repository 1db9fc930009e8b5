"""Shared pieces of the plugin's commands: output that redacts secrets, the run context, small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, TextIO

from ..durations import format_duration, parse_duration
from .api import PluginAPI, PluginError

# Exit codes (documented in docs/kubectl-plugin.md).
EXIT_OK = 0
EXIT_ERROR = 1  # usage, input, Kubernetes API or configuration error
EXIT_REJECTED = 2  # rotate: the operator rejected the token; refresh --wait: the refresh failed
EXIT_TIMEOUT = 3  # the operator did not answer within --timeout
EXIT_INTERRUPTED = 130

REDACTED = "[REDACTED]"
POLL_INTERVAL = 0.5  # seconds between status reads while waiting


class Output:
    """stdout/stderr writer that flushes every line and replaces registered secret spellings.

    With ``-o json|yaml`` (``fmt`` set) stdout carries only the one document (:meth:`emit`); the progress
    lines that :meth:`line` writes go to stderr instead, so a script can parse stdout as it is."""

    def __init__(self, stdout: TextIO, stderr: TextIO, fmt: str | None = None, color: bool = False) -> None:
        self._stdout, self._stderr = stdout, stderr
        self._secrets: list[str] = []
        self.fmt = fmt
        self.color = color and fmt is None

    def add_secret(self, *values: str) -> None:
        for v in values:
            if v and v not in self._secrets:
                self._secrets.append(v)
        self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, REDACTED)
        return text

    def _write(self, stream: TextIO, text: str) -> None:
        stream.write(self.redact(text) + "\n")
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass

    def line(self, text: str = "") -> None:
        self._write(self._stderr if self.fmt else self._stdout, text)

    def emit(self, doc: object) -> None:
        """The machine-readable result (only with -o json|yaml)."""
        from .output import dump

        self._write(self._stdout, dump(doc, self.fmt or "json"))

    @property
    def machine(self) -> bool:
        return self.fmt is not None

    def warn(self, text: str) -> None:
        self._write(self._stderr, f"warning: {text}")

    def error(self, text: str) -> None:
        self._write(self._stderr, f"error: {text}")

    def raw_stdout(self, text: str) -> None:  # argparse help/usage
        self._stdout.write(self.redact(text))

    def raw_stderr(self, text: str) -> None:
        self._stderr.write(self.redact(text))


@dataclass
class Ctx:
    api: PluginAPI
    out: Output
    namespace: str
    stdin: TextIO
    getpass: Callable[[str], str]
    clock: Callable[[], float]  # monotonic seconds, for deadlines
    sleep: Callable[[float], None]
    now: Callable[[], datetime]  # wall clock (UTC), for timestamps
    poll_interval: float = POLL_INTERVAL
    extra: dict = field(default_factory=dict)
    all_namespaces: bool = False
    operator_namespace: str | None = None  # where to look for the operator Deployment (None: everywhere)
    operator_selector: str = ""  # label selector of the operator Deployment (operator_info.DEFAULT_SELECTOR)


def parse_timeout(text: str) -> float:
    """``120s``, ``2m``, ``1m30s`` or plain seconds (``90``)."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text).total_seconds()
        except ValueError:
            raise PluginError(f"--timeout {text!r} is not a duration such as 120s, 2m or 90") from None
    if seconds < 0:
        raise PluginError("--timeout must not be negative")
    return seconds


def rfc3339_now(now: datetime) -> str:
    """RFC 3339 UTC with milliseconds, so two requests in the same second differ."""
    now = now.astimezone(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def parse_time(text: object) -> datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def when(text: object, now: datetime) -> str:
    """``2026-01-01T00:00:00Z (in 3d4h)`` / ``(5m ago)``; ``-`` when unset."""
    dt = parse_time(text)
    if dt is None:
        return str(text) if text else "-"
    stamp = dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    delta = dt - now
    if abs(delta.total_seconds()) < 1:
        return f"{stamp} (now)"
    if delta.total_seconds() > 0:
        return f"{stamp} (in {format_duration(delta)})"
    return f"{stamp} ({format_duration(-delta)} ago)"


def condition(obj: dict, ctype: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def describe_condition(c: dict | None) -> str:
    if not c:
        return "Unknown (not reported yet)"
    parts = [str(c.get("status", "Unknown"))]
    if c.get("reason"):
        parts.append(f"({c['reason']})")
    text = " ".join(parts)
    if c.get("message"):
        text += f": {c['message']}"
    return text


def timed_out_tail(ctx: Ctx, name: str, stays: str) -> None:
    """The last lines after a wait for the operator's verdict timed out: whether any operator runs, that
    what was written `stays` (e.g. "the token stays in the Secret ..."), and where to look."""
    lookup = ctx.extra.get("operator")
    if lookup is not None and lookup.problem():
        ctx.out.error(f"no running operator seen: {lookup.problem()}")
    ctx.out.error(f"{stays}; check with: kubectl hubspot status {name} -n {ctx.namespace}")


def ref(obj: dict) -> str:
    md = obj.get("metadata") or {}
    return f"hubspottoken/{md.get('name')} in namespace {md.get('namespace')}"


def get_token(ctx: Ctx, name: str) -> dict:
    from .api import NotFound

    try:
        return ctx.api.get_token(ctx.namespace, name)
    except NotFound:
        raise TokenNotFound(name, ctx.namespace) from None


class TokenNotFound(PluginError):
    reason = "NotFound"

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(f"hubspottoken {name!r} not found in namespace {namespace!r}; list the ones there with "
                         f"`kubectl hubspot status -n {namespace}` (or every namespace with `kubectl hubspot status -A`)")
        self.name, self.namespace = name, namespace
