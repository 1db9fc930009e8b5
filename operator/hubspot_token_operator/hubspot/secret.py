"""A string that refuses to be printed.

Tokens and client secrets travel through outcomes, exceptions and log calls; wrapping them means a stray
``repr()``/f-string shows a short fingerprint instead of the value. ``reveal()`` is the one deliberate,
greppable way out.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

REDACTED = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        """First 8 hex chars of sha256: enough to tell two tokens apart in logs, useless to an attacker."""
        return fingerprint(self._value)

    def __repr__(self) -> str:
        return f"Secret(sha256:{self.fingerprint})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __copy__(self) -> "Secret":
        return self  # immutable

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self

    def __reduce__(self):  # pickling would write the value somewhere; make that explicit instead of silent
        raise TypeError("Secret values are not picklable")


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def reveal(value: "str | Secret") -> str:
    return value.reveal() if isinstance(value, Secret) else value


def redact(text: str, secrets: Iterable["str | Secret | None"]) -> str:
    """Replace every occurrence of each secret in ``text`` (HubSpot sometimes echoes what it was sent)."""
    for secret in secrets:
        if secret is None:
            continue
        raw = reveal(secret)
        if len(raw) >= 4:
            text = text.replace(raw, REDACTED)
    return text
