"""HubSpot's three OAuth API generations and the paths each one uses.

``2026-03`` is the default; ``v3`` takes the same parameters; ``v1`` is deprecated with a sunset on
2027-02-16 (facts §1.1), so choosing it warns once per process instead of once per client, to stay visible
without flooding the operator log.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import warnings

log = logging.getLogger(__name__)

V1_SUNSET = "2027-02-16"
_warned = False
_warn_lock = threading.Lock()
_REFRESH_TOKEN_SHAPE = re.compile(r"^[a-z]{2}\d-[0-9a-f]{4}-")


class ApiGeneration(str, enum.Enum):
    V1 = "v1"
    V3 = "v3"
    V2026_03 = "2026-03"

    @property
    def token_path(self) -> str:
        return f"/oauth/{self.value}/token"

    @property
    def introspect_path(self) -> str:
        return f"/oauth/{self.value}/token/introspect"

    @property
    def revoke_path(self) -> str:
        return f"/oauth/{self.value}/token/revoke"

    @property
    def account_details_path(self) -> str:
        """The account-info API has no v1; v1 and v3 clients use its v3."""
        return "/account-info/2026-03/details" if self is ApiGeneration.V2026_03 else "/account-info/v3/details"


V1_ACCESS_TOKEN_ROUTE = "/oauth/v1/access-tokens/{token}"
V1_REFRESH_TOKEN_ROUTE = "/oauth/v1/refresh-tokens/{token}"
PRIVATE_APP_INFO_PATH = "/oauth/v2/private-apps/get/access-token-info"
AUDIT_LOGS_PATH = "/account-info/2026-03/activity/audit-logs"  # Enterprise; scope account-info.security.read


def looks_like_refresh_token(token: str) -> bool:
    """HubSpot refresh tokens carry a hublet prefix (``na1-xxxx-...``); access tokens are opaque."""
    return bool(_REFRESH_TOKEN_SHAPE.match(token))


def warn_if_deprecated(generation: ApiGeneration) -> None:
    global _warned
    if generation is not ApiGeneration.V1:
        return
    with _warn_lock:
        if _warned:
            return
        _warned = True
    message = f"HubSpot OAuth v1 is deprecated and will be shut down on {V1_SUNSET}; use 2026-03"
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    log.warning(message)


def _reset_deprecation_warning_for_tests() -> None:
    global _warned
    with _warn_lock:
        _warned = False
