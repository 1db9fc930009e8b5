"""Reading a new private-app token from stdin or a file, checking its shape, and keeping it out of output.

The token is never accepted on the command line (argv lands in shell history and ``ps``). No message
built here contains the token or any part of it.
"""

from __future__ import annotations

import base64
import re
from typing import Callable, TextIO

from .api import PluginError

MAX_TOKEN_CHARS = 4096
# HubSpot private-app tokens and service keys: pat-<hublet>-<uuid>, hublet like na1, na2, eu1, ap1.
# HubSpot does not document the format, so a mismatch is refused only without --force.
TOKEN_PATTERN = re.compile(r"pat-[a-z]{2}[0-9]{1,2}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
PROMPT = "New HubSpot private-app token (input hidden): "


class TokenInputError(PluginError):
    """The input is not usable as a token. The message never contains the input."""


def read_token(
    from_file: str | None,
    stdin: TextIO,
    getpass: Callable[[str], str],
) -> str:
    """Reads the token from ``from_file`` (``-`` or None: stdin; a TTY stdin prompts without echo)."""
    if from_file not in (None, "-"):
        try:
            with open(from_file, "rb") as f:
                raw = f.read(MAX_TOKEN_CHARS * 4 + 1)
        except OSError as e:
            raise TokenInputError(f"cannot read --from-file {from_file}: {e.strerror or type(e).__name__}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenInputError(f"--from-file {from_file} is not UTF-8 text") from None
        source = f"file {from_file}"
    elif _isatty(stdin):
        text = getpass(PROMPT)
        source = "the prompt"
    else:
        try:
            text = stdin.read(MAX_TOKEN_CHARS * 4 + 1)
        except UnicodeDecodeError:
            raise TokenInputError("stdin is not UTF-8 text") from None
        source = "stdin"
    return clean_token(text, source)


def clean_token(text: str | bytes | None, source: str = "the input") -> str:
    """Strips surrounding whitespace (and a BOM); refuses empty, oversized or multi-part input."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="strict")
    token = (text or "").strip().lstrip("\ufeff").strip()
    if not token:
        raise TokenInputError(f"no token on {source}: the input is empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenInputError(f"the input on {source} is {len(token)} characters long; expected one token")
    if any(ch.isspace() for ch in token):
        raise TokenInputError(
            f"the input on {source} contains whitespace inside it (several lines or words?); expected one token"
        )
    if not token.isprintable() or not token.isascii():
        raise TokenInputError(f"the input on {source} contains non-printable or non-ASCII characters")
    return token


def looks_like_private_app_token(token: str) -> bool:
    return TOKEN_PATTERN.fullmatch(token) is not None


def secret_forms(token: str) -> list[str]:
    """The spellings of the token that must never be printed: as is and base64-encoded."""
    return [token, base64.b64encode(token.encode()).decode()]


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
