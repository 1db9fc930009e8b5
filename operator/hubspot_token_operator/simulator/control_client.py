"""A small synchronous client for the ``/_sim/`` control API.

Tests, the benchmark and the demo all script the simulator the same way; one helper keeps them from
growing three slightly different copies of "create an app, install it, inject a fault".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SimApp:
    app_id: int
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class SimPrivateApp:
    app_id: int
    token: str
    hublet: str


class SimControl:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SimControl":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, path: str, body: Any = None) -> Any:
        response = self._http.post(path, json=body if body is not None else {})
        response.raise_for_status()
        return response.json() if response.content else None

    def health(self) -> bool:
        return self._http.get("/_sim/health").status_code == 200

    def reset(self) -> None:
        self._http.post("/_sim/reset").raise_for_status()

    def create_app(self, redirect_uri: str | None = None) -> SimApp:
        body = self._post("/_sim/apps", {"redirect_uri": redirect_uri} if redirect_uri else {})
        return SimApp(body["app_id"], body["client_id"], body["client_secret"])

    def install(self, client_id: str, hub_id: int, scopes: list[str] | None = None, **extra: Any) -> str:
        body = {"client_id": client_id, "hub_id": hub_id, "scopes": scopes or ["oauth"], **extra}
        return self._post("/_sim/installs", body)["refresh_token"]

    def uninstall(self, refresh_token: str) -> None:
        self._http.delete(f"/_sim/installs/{refresh_token}").raise_for_status()

    def auth_code(
        self, client_id: str, hub_id: int, redirect_uri: str, scopes: list[str] | None = None, **extra: Any
    ) -> str:
        body = {"client_id": client_id, "hub_id": hub_id, "redirect_uri": redirect_uri, "scopes": scopes or ["oauth"]}
        return self._post("/_sim/auth-codes", {**body, **extra})["code"]

    def consent(self, hub_id: int, approve: bool = True, scopes: list[str] | None = None, **extra: Any) -> dict:
        """What the next visits of ``GET /oauth/authorize`` do (until changed or reset)."""
        return self._post("/_sim/consent", {"hub_id": hub_id, "approve": approve, "scopes": scopes, **extra})

    def clear_consent(self) -> None:
        self._http.delete("/_sim/consent").raise_for_status()

    def authorize(self, authorize_url: str) -> str:
        """Visits an install URL as the browser would and returns where HubSpot redirects it (not followed)."""
        response = self._http.get(authorize_url, follow_redirects=False)
        if response.status_code != 302:
            raise RuntimeError(f"authorize answered {response.status_code}: {response.text[:200]}")
        return response.headers["Location"]

    def create_private_app(self, hub_id: int, scopes: list[str] | None = None, **extra: Any) -> SimPrivateApp:
        body = self._post("/_sim/private-apps", {"hub_id": hub_id, "scopes": scopes or [], **extra})
        return SimPrivateApp(body["app_id"], body["token"], body["hublet"])

    def rotate_private_app(self, app_id: int, expire: str = "later") -> str:
        return self._post(f"/_sim/private-apps/{app_id}/rotate", {"expire": expire})["token"]

    def expire_previous(self, app_id: int) -> None:
        self._post(f"/_sim/private-apps/{app_id}/expire-previous")

    def cancel_rotation(self, app_id: int) -> None:
        """The UI's "Cancel rotation": the newest token dies, the one it replaced lives on (409: none pending)."""
        self._post(f"/_sim/private-apps/{app_id}/cancel-rotation")

    def deactivate_private_app(self, app_id: int) -> None:
        self._post(f"/_sim/private-apps/{app_id}/deactivate")

    def add_fault(self, kind: str, path: str = "/", **options: Any) -> dict:
        return self._post("/_sim/faults", {"kind": kind, "path": path, **options})

    def faults(self) -> list[dict]:
        return self._http.get("/_sim/faults").json()["faults"]

    def clear_faults(self) -> None:
        self._http.delete("/_sim/faults").raise_for_status()

    def configure(self, **patch: Any) -> dict:
        return self._post("/_sim/config", patch)

    def advance(self, seconds: float) -> float:
        return self._post("/_sim/clock", {"advance_seconds": seconds})["now"]

    def now(self) -> float:
        return self._http.get("/_sim/clock").json()["now"]

    def stats(self) -> dict:
        return self._http.get("/_sim/stats").json()

    def count(self, route: str, status: str | None = None) -> int:
        """Requests seen on ``route`` (e.g. ``POST /oauth/2026-03/token``), optionally of one status."""
        by_status = self.stats()["requests"].get(route, {})
        return by_status.get(status, 0) if status else sum(by_status.values())

    def reset_stats(self) -> None:
        self._http.post("/_sim/stats/reset").raise_for_status()
