"""Keyed fingerprints of secret values: safe to show in status, useless to an attacker.

The key lives in an operator-owned Secret, so fingerprints stay comparable across operator restarts
(drift detection compares today's Secret with yesterday's status) while nobody without the key can test
a guess against them.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

PREFIX_LEN = 16


class Fingerprinter:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("fingerprint key must be at least 16 bytes")
        self._key = key
        # Names the key without revealing it: status records it, so fingerprints made with a lost or
        # replaced key are recognised as such (and recomputed) instead of read as "everything changed".
        self.key_id = hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:12]

    def __repr__(self) -> str:
        return "Fingerprinter(<key hidden>)"

    def of(self, value: str | bytes) -> str:
        """Short fingerprint of one secret value (status.tokenFingerprint and friends)."""
        data = value.encode() if isinstance(value, str) else value
        return hmac.new(self._key, b"value\x00" + data, hashlib.sha256).hexdigest()[:PREFIX_LEN]

    def of_data(self, data: Mapping[str, bytes]) -> str:
        """MAC over a Secret's data (status.secretMAC): changes when any key or value changes."""
        mac = hmac.new(self._key, b"secret\x00", hashlib.sha256)
        for k in sorted(data):
            v = data[k]
            mac.update(len(k).to_bytes(4, "big") + k.encode())
            mac.update(len(v).to_bytes(4, "big") + v)
        return mac.hexdigest()[:32]
