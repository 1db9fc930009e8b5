"""Kubernetes access for the kubectl plugin, behind one small class so tests can pass a fake.

Everything is plain JSON-like dicts, as the API server sends them (Secret ``data`` values are base64
strings). Errors surface as :class:`ApiError` (``NotFound``, ``Conflict``) built from the HTTP status and
the Status message only; the request body (which may hold a token) is never part of an error.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Protocol

from .. import GROUP, KIND, PLURAL, VERSION

REQUEST_TIMEOUT = 30  # seconds, per API call
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_MISSING_HINT = "kubectl apply -f crds/ or install the chart"


class PluginError(Exception):
    """An error to report as ``error: <message>`` (exit code 1). Messages never carry token values.

    ``reason`` is a stable one-word code for ``-o json|yaml`` (Error, NotFound, Forbidden, CRDMissing, ...)."""

    reason = "Error"


class ApiError(PluginError):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def reason(self) -> str:  # type: ignore[override]
        return {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict"}.get(self.status or 0, "ApiError")


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """HTTP 409: a resourceVersion conflict on update, or AlreadyExists on create."""


class Forbidden(ApiError):
    """HTTP 403, with what was refused: ``verb`` on ``resource`` (``plural.group``) in ``namespace``."""

    def __init__(self, message: str, verb: str, resource: str, namespace: str | None, user: str | None) -> None:
        super().__init__(403, message)
        self.verb, self.resource, self.namespace, self.user = verb, resource, namespace, user


class CRDMissing(ApiError):
    """HTTP 404 on the resource type itself (not on one object): the CRD is not installed (or not served)."""

    reason = "CRDMissing"  # type: ignore[assignment]

    def __init__(self, message: str | None = None) -> None:
        super().__init__(404, message or f"CRD {CRD_NAME} is not installed: {CRD_MISSING_HINT}")


def api_error(status: int | None, message: str) -> ApiError:
    cls = {404: NotFound, 409: Conflict}.get(status or 0, ApiError)
    return cls(status, message)


# "... is forbidden: User "bob" cannot list resource "hubspottokens" in API group "hubspot-operator.dev" in
# the namespace "team-a"" (or "at the cluster scope"): the API server's wording since Kubernetes 1.14.
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace "(?P<ns>[^"]*)"| at the cluster scope)?'
)


def qualified(resource: str, group: str = "") -> str:
    """``secrets``, ``deployments.apps``, ``hubspottokens.hubspot-operator.dev`` (kubectl's spelling)."""
    return f"{resource}.{group}" if group else resource


def forbidden(status_message: str, verb: str, resource: str, namespace: str | None) -> Forbidden:
    """A 403 that says what to do. The request's own (verb, resource, namespace) is the truth; the API server's
    message adds who was refused (and wins where it names the refused request more precisely)."""
    m = _FORBIDDEN.search(status_message or "")
    user = None
    if m:
        user = m.group("user")
        verb = m.group("verb") or verb
        resource = qualified(m.group("resource"), m.group("group") or "")
        namespace = m.group("ns") if m.group("ns") is not None else (namespace if "cluster scope" not in m.group(0) else None)
    where = f"in namespace {namespace}" if namespace else "across all namespaces (cluster scope)"
    who = f'user "{user}"' if user else "you"
    message = (f"permission denied: {who} cannot {verb} {resource} {where}. Ask a cluster admin for a Role "
               f"(or ClusterRole) granting {verb!r} on {resource} {where}; `kubectl hubspot check"
               f"{' -n ' + namespace if namespace else ''}` lists every permission the plugin needs")
    return Forbidden(message, verb, resource, namespace, user)


def classify(status: int | None, body: str | None, status_message: str, what: tuple | None) -> ApiError:
    """Turns an HTTP error into the plugin's errors. ``what`` is (verb, resource, namespace, custom: bool)."""
    verb, resource, namespace, custom = what if what else ("access", "the resource", None, False)
    if status == 403:
        return forbidden(status_message, verb, resource, namespace)
    if status == 404 and custom and type_missing(body):
        return CRDMissing()
    if status == 401:
        return ApiError(401, f"{status_message}: the kubeconfig's credentials were rejected (expired token? "
                             "run any kubectl command to refresh them, or check --context)")
    return api_error(status, status_message)


def type_missing(body: str | None) -> bool:
    """A 404 for the whole resource type, as opposed to one missing object: the API server answers those with
    a Status that names no object (``details.name`` absent), "the server could not find the requested
    resource"."""
    try:
        status = json.loads(body or "{}")
    except (TypeError, ValueError):
        return True  # "404 page not found" as plain text: nothing named an object
    if not isinstance(status, dict):
        return True
    details = status.get("details") or {}
    return not details.get("name") and (status.get("reason") in (None, "NotFound"))


class PluginAPI(Protocol):
    """What the plugin needs from Kubernetes. ``KubeAPI`` implements it; tests pass a fake.

    ``namespace=None`` in the list calls means all namespaces."""

    def default_namespace(self) -> str | None: ...
    def get_token(self, namespace: str, name: str) -> dict: ...
    def list_tokens(self, namespace: str | None, label_selector: str | None = None) -> list[dict]: ...
    def patch_token(self, namespace: str, name: str, patch: dict) -> dict: ...  # JSON merge patch
    def read_secret(self, namespace: str, name: str) -> dict | None: ...  # None when missing
    def create_secret(self, namespace: str, body: dict) -> dict: ...
    def replace_secret(self, namespace: str, name: str, body: dict) -> dict: ...  # guarded by resourceVersion
    def list_events(self, namespace: str, name: str) -> list[dict]: ...
    def list_deployments(self, namespace: str | None, label_selector: str) -> list[dict]: ...
    def get_crd(self, name: str) -> dict: ...
    def access_review(self, namespace: str | None, verb: str, resource: str, group: str = "") -> dict: ...
    def server_version(self) -> str | None: ...


TOKENS = qualified(PLURAL, GROUP)


class KubeAPI:
    """The real implementation, on the official ``kubernetes`` client."""

    def __init__(self, api_client: Any, namespace: str | None = None, request_timeout: float = REQUEST_TIMEOUT) -> None:
        from kubernetes import client

        self._api = api_client
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._ext = client.ApiextensionsV1Api(api_client)
        self._authz = client.AuthorizationV1Api(api_client)
        self._version = client.VersionApi(api_client)
        self._namespace = namespace
        self._timeout = request_timeout

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, context: str | None = None,
                        request_timeout: float = REQUEST_TIMEOUT) -> "KubeAPI":
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
        return cls(client.ApiClient(cfg), namespace, request_timeout)

    def default_namespace(self) -> str | None:
        return self._namespace

    def _call(self, fn, *args, _what: tuple | None = None, **kwargs) -> Any:
        """``_what`` = (verb, resource, namespace, custom) names the request for errors (403, CRD missing)."""
        from kubernetes.client import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as e:
            raise classify(e.status, e.body, _status_message(e), _what) from None
        except (HTTPError, OSError) as e:  # connection errors: they name the URL, never the request body
            raise ApiError(None, f"cannot reach the Kubernetes API server: {type(e).__name__}: {e}") from None

    def _plain(self, obj: Any) -> Any:
        return obj if isinstance(obj, dict) else self._api.sanitize_for_serialization(obj)

    # ---- HubSpotToken --------------------------------------------------------------------------------

    def get_token(self, namespace: str, name: str) -> dict:
        return self._call(self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name,
                          _what=("get", TOKENS, namespace, True))

    def list_tokens(self, namespace: str | None, label_selector: str | None = None) -> list[dict]:
        kwargs = {"label_selector": label_selector} if label_selector else {}
        what = ("list", TOKENS, namespace, True)
        if namespace is None:
            res = self._call(self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, _what=what, **kwargs)
        else:
            res = self._call(self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                             _what=what, **kwargs)
        return list(res.get("items", []))

    def patch_token(self, namespace: str, name: str, patch: dict) -> dict:
        return self._call(
            self._custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch,
            _content_type="application/merge-patch+json", _what=("patch", TOKENS, namespace, True),
        )

    # ---- Secrets -------------------------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> dict | None:
        try:
            return self._plain(self._call(self._core.read_namespaced_secret, name, namespace,
                                          _what=("get", "secrets", namespace, False)))
        except NotFound:
            return None

    def create_secret(self, namespace: str, body: dict) -> dict:
        return self._plain(self._call(self._core.create_namespaced_secret, namespace, body,
                                      _what=("create", "secrets", namespace, False)))

    def replace_secret(self, namespace: str, name: str, body: dict) -> dict:
        return self._plain(self._call(self._core.replace_namespaced_secret, name, namespace, body,
                                      _what=("update", "secrets", namespace, False)))

    # ---- Events --------------------------------------------------------------------------------------

    def list_events(self, namespace: str, name: str) -> list[dict]:
        res = self._call(
            self._core.list_namespaced_event, namespace,
            field_selector=f"involvedObject.kind={KIND},involvedObject.name={name}",
            _what=("list", "events", namespace, False),
        )
        return list(self._plain(res).get("items", []))

    # ---- the operator, the CRD, the caller's permissions --------------------------------------------

    def list_deployments(self, namespace: str | None, label_selector: str) -> list[dict]:
        what = ("list", "deployments.apps", namespace, False)
        if namespace is None:
            res = self._call(self._apps.list_deployment_for_all_namespaces, label_selector=label_selector, _what=what)
        else:
            res = self._call(self._apps.list_namespaced_deployment, namespace, label_selector=label_selector,
                             _what=what)
        return list(self._plain(res).get("items", []))

    def get_crd(self, name: str) -> dict:
        return self._plain(self._call(self._ext.read_custom_resource_definition, name,
                                      _what=("get", "customresourcedefinitions.apiextensions.k8s.io", None, False)))

    def access_review(self, namespace: str | None, verb: str, resource: str, group: str = "") -> dict:
        """SelfSubjectAccessReview: may the current user ``verb`` ``resource`` (in ``namespace``)?
        Returns its status: ``{"allowed": bool, "reason": ...}``."""
        attrs = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        res = self._call(self._authz.create_self_subject_access_review, body,
                         _what=("create", "selfsubjectaccessreviews.authorization.k8s.io", None, False))
        return self._plain(res).get("status") or {}

    def server_version(self) -> str | None:
        res = self._plain(self._call(self._version.get_code, _what=("get", "/version", None, False)))
        return (res or {}).get("git_version") or (res or {}).get("gitVersion")


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
