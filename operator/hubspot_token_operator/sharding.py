"""Which HubSpotTokens this operator release serves, and which tokens a Secret event concerns.

A shard is the release's namespaces (`--namespace`, or all) plus an optional label selector on
HubSpotTokens (`--token-selector`, the kubectl syntax: `shard=a`, `tier!=x`, `env in (a,b)`, `!legacy`).
Releases with disjoint shards each run their own leader election (the lease name is per shard), so no
token is served twice; a token matching no release is served by none, which `kubectl hubspot status`
shows as a token with no status.

`TokenIndex` replaces Kopf indexes: plain dicts updated from the HubSpotToken watch, O(1) per event.
(Kopf's index pre-population woke every waiting handler for each object indexed: N² at start-up.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .model import LabelSelector

_SET = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*$")


class SelectorError(ValueError):
    pass


def parse_selector(text: str) -> LabelSelector | None:
    """A label selector in kubectl's syntax; None for the empty selector (everything)."""
    if not text.strip():
        return None
    labels: dict[str, str] = {}
    exprs: list[dict] = []
    for part in _split(text):
        if m := _SET.match(part):
            values = [v.strip() for v in m.group(3).split(",") if v.strip()]
            exprs.append({"key": m.group(1), "operator": "In" if m.group(2) == "in" else "NotIn", "values": values})
        elif m := _EQ.match(part):
            if m.group(2) == "!=":
                exprs.append({"key": m.group(1), "operator": "NotIn", "values": [m.group(3)]})
            else:
                labels[m.group(1)] = m.group(3)
        elif m := _EXISTS.match(part):
            exprs.append({"key": m.group(2), "operator": "DoesNotExist" if m.group(1) else "Exists"})
        else:
            raise SelectorError(f"cannot parse {part!r} in label selector {text!r}")
    return LabelSelector.model_validate({"matchLabels": labels, "matchExpressions": exprs})


def _split(text: str) -> list[str]:
    """Splits on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def in_shard(selector: LabelSelector | None, labels: dict | None) -> bool:
    return selector is None or selector.matches(dict(labels or {}))


def secret_names(spec: dict) -> set[str]:
    """Every Secret a HubSpotToken reads or writes (its own namespace)."""
    names = {((spec.get("target") or {}).get("name"))}
    oauth = spec.get("oauth") or {}
    names.add((oauth.get("clientSecretRef") or {}).get("name"))
    names.add((oauth.get("refreshTokenSecretRef") or {}).get("name"))
    names.add(((spec.get("privateApp") or {}).get("tokenSecretRef") or {}).get("name"))
    names.add((((spec.get("privateApp") or {}).get("auditLog") or {}).get("tokenSecretRef") or {}).get("name"))
    return {n for n in names if n}


@dataclass
class TokenIndex:
    """(namespace, secret) -> tokens that use it; namespace -> tokens in it."""

    by_secret: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    by_namespace: dict[str, set[str]] = field(default_factory=dict)
    _secrets_of: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def put(self, namespace: str, name: str, spec: dict) -> None:
        key = (namespace, name)
        new = secret_names(spec)
        old = self._secrets_of.get(key, set())
        for s in old - new:
            self._discard((namespace, s), name)
        for s in new - old:
            self.by_secret.setdefault((namespace, s), set()).add(name)
        self._secrets_of[key] = new
        self.by_namespace.setdefault(namespace, set()).add(name)

    def drop(self, namespace: str, name: str) -> None:
        for s in self._secrets_of.pop((namespace, name), set()):
            self._discard((namespace, s), name)
        names = self.by_namespace.get(namespace)
        if names is not None:
            names.discard(name)
            if not names:
                del self.by_namespace[namespace]

    def using_secret(self, namespace: str, secret: str) -> list[str]:
        return sorted(self.by_secret.get((namespace, secret), ()))

    def in_namespace(self, namespace: str) -> list[str]:
        return sorted(self.by_namespace.get(namespace, ()))

    def _discard(self, key: tuple[str, str], name: str) -> None:
        names = self.by_secret.get(key)
        if names is not None:
            names.discard(name)
            if not names:
                del self.by_secret[key]
