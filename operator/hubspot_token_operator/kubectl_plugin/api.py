"""Kubernetes access for the kubectl plugin, behind one small class so tests can pass a fake.

Everything is plain JSON-like dicts, as the API server sends them (Secret ``data`` values are base64
strings). Errors surface as :class:`ApiError` (``NotFound``, ``Conflict``) built from the HTTP status and
the Status message only; the request body (which may hold a token) is never part of an error.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from .. import GROUP, KIND, PLURAL, VERSION

REQUEST_TIMEOUT = 30  # seconds, per API call
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class PluginError(Exception):
    """An error to report as ``error: <message>`` (exit code 1). Messages never carry token values."""


class ApiError(PluginError):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """HTTP 409: a resourceVersion conflict on update, or AlreadyExists on create."""


def api_error(status: int | None, message: str) -> ApiError:
    cls = {404: NotFound, 409: Conflict}.get(status or 0, ApiError)
    return cls(status, message)


class PluginAPI(Protocol):
    """What the plugin needs from Kubernetes. ``KubeAPI`` implements it; tests pass a fake."""

    def default_namespace(self) -> str | None: ...
    def get_token(self, namespace: str, name: str) -> dict: ...
    def list_tokens(self, namespace: str, label_selector: str | None = None) -> list[dict]: ...
    def patch_token(self, namespace: str, name: str, patch: dict) -> dict: ...  # JSON merge patch
    def read_secret(self, namespace: str, name: str) -> dict | None: ...  # None when missing
    def create_secret(self, namespace: str, body: dict) -> dict: ...
    def replace_secret(self, namespace: str, name: str, body: dict) -> dict: ...  # guarded by resourceVersion
    def list_events(self, namespace: str, name: str) -> list[dict]: ...


class KubeAPI:
    """The real implementation, on the official ``kubernetes`` client (CoreV1Api, CustomObjectsApi)."""

    def __init__(self, api_client: Any, namespace: str | None = None) -> None:
        from kubernetes import client

        self._api = api_client
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._namespace = namespace

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None) -> "KubeAPI":
        """Loads ``kubeconfig`` (else $KUBECONFIG, else ~/.kube/config) and ``context`` (else the current one).
        Falls back to the in-cluster service account when no kubeconfig exists and none was named."""
        from kubernetes import client, config

        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
            namespace = _context_namespace(kubeconfig, context)
        except (config.ConfigException, OSError) as e:
            if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise PluginError(f"cannot load kubeconfig: {e}") from None
            config.load_incluster_config(client_configuration=cfg)
            namespace = _read_text(_SA_NAMESPACE)
        return cls(client.ApiClient(cfg), namespace)

    def default_namespace(self) -> str | None:
        return self._namespace

    def _call(self, fn, *args, **kwargs) -> Any:
        from kubernetes.client import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as e:
            raise api_error(e.status, _status_message(e)) from None
        except (HTTPError, OSError) as e:  # connection errors: they name the URL, never the request body
            raise ApiError(None, f"cannot reach the Kubernetes API server: {type(e).__name__}: {e}") from None

    def _plain(self, obj: Any) -> Any:
        return obj if isinstance(obj, dict) else self._api.sanitize_for_serialization(obj)

    # ---- HubSpotToken --------------------------------------------------------------------------------

    def get_token(self, namespace: str, name: str) -> dict:
        return self._call(self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)

    def list_tokens(self, namespace: str, label_selector: str | None = None) -> list[dict]:
        kwargs = {"label_selector": label_selector} if label_selector else {}
        res = self._call(self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **kwargs)
        return list(res.get("items", []))

    def patch_token(self, namespace: str, name: str, patch: dict) -> dict:
        return self._call(
            self._custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch,
            _content_type="application/merge-patch+json",
        )

    # ---- Secrets -------------------------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> dict | None:
        try:
            return self._plain(self._call(self._core.read_namespaced_secret, name, namespace))
        except NotFound:
            return None

    def create_secret(self, namespace: str, body: dict) -> dict:
        return self._plain(self._call(self._core.create_namespaced_secret, namespace, body))

    def replace_secret(self, namespace: str, name: str, body: dict) -> dict:
        return self._plain(self._call(self._core.replace_namespaced_secret, name, namespace, body))

    # ---- Events --------------------------------------------------------------------------------------

    def list_events(self, namespace: str, name: str) -> list[dict]:
        res = self._call(
            self._core.list_namespaced_event, namespace,
            field_selector=f"involvedObject.kind={KIND},involvedObject.name={name}",
        )
        return list(self._plain(res).get("items", []))


def _status_message(e: Any) -> str:
    """``HTTP 403 Forbidden: <Status.message>`` from an ApiException, without echoing anything else."""
    text = f"HTTP {e.status} {e.reason or ''}".rstrip()
    try:
        status = json.loads(e.body or "{}")
        if isinstance(status, dict) and status.get("message"):
            text += f": {status['message']}"
    except (TypeError, ValueError):
        pass
    return text


def _context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception:
        return None
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    return ((chosen or {}).get("context") or {}).get("namespace") or None


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None
