"""The objects the demo creates. Plain dicts, so they can be written out as YAML for a newcomer to read
(demo-state/manifests/) and applied with kubectl. Secrets are built separately and never written to disk."""

from __future__ import annotations

import base64

from .. import GROUP, VERSION

NAMESPACE = "hubspot-demo"
OPERATOR_NAMESPACE = "hubspot-token-operator"
HUB_ID = 4242424
SCOPES = ["oauth", "crm.objects.contacts.read"]
REQUIRED_SCOPES = ["crm.objects.contacts.read"]
ACCESS_TOKEN_LIFETIME = 60  # seconds; HubSpot's real one is 30 minutes
REFRESH_PERCENT = 50  # so the operator refreshes every 30 s


def secret(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        # hubspot-operator.dev/consent: the Secret's owner lets this namespace's HubSpotTokens use it
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "hubspot-demo",
                                                                      "hubspot-operator.dev/consent": "true",
                                                                      **(labels or {})}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def oauth_token() -> dict:
    """crm-sync: an OAuth install whose access token the operator refreshes into Secret crm-sync-hubspot."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HubSpotToken",
        "metadata": {"name": "crm-sync", "namespace": NAMESPACE},
        "spec": {
            "type": "OAuth",
            "hubId": HUB_ID,
            "requiredScopes": REQUIRED_SCOPES,
            "oauth": {
                "clientSecretRef": {"name": "hubspot-app"},  # keys client_id, client_secret
                "refreshTokenSecretRef": {"name": "crm-sync-install"},  # key refresh_token
            },
            "target": {"name": "crm-sync-hubspot"},
            "refresh": {"percent": REFRESH_PERCENT, "jitterPercent": 0, "minRemainingValidity": "10s"},
        },
    }


def private_app_token() -> dict:
    """reporting: a private-app token, verified, published with a 7-day overlap, Deployment restarted."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HubSpotToken",
        "metadata": {"name": "reporting", "namespace": NAMESPACE},
        "spec": {
            "type": "PrivateApp",
            "hubId": HUB_ID,
            "requiredScopes": REQUIRED_SCOPES,
            "privateApp": {"tokenSecretRef": {"name": "reporting-source"}, "overlap": "7d"},  # key token
            "target": {"name": "reporting-hubspot"},
            "rollout": {"targets": [{"kind": "Deployment", "name": "reporting"}], "delay": "0s"},
        },
    }


# On the real node the consumer prints what it holds, as SHA-256 (never the token): env var and mounted file.
CONSUMER_SCRIPT = ('while true; do printf "env=%s file=%s\\n" '
                   '"$(printf %s "$HUBSPOT_ACCESS_TOKEN" | sha256sum | cut -c1-64)" '
                   '"$(sha256sum < /etc/hubspot/access_token | cut -c1-64)"; sleep 2; done')


def deployment(real_node_image: str | None = None) -> dict:
    """reporting: 2 replicas that read the published token from Secret reporting-hubspot.
    kwok "runs" the pods on a fake node, so the image never needs to exist; with `real_node_image` they
    run on the real node from that image and print the SHA-256 of the token they read."""
    body = _deployment()
    if real_node_image:
        from ..devcluster.real_node import placement

        spec = body["spec"]["template"]["spec"]
        spec.update(placement())
        spec["terminationGracePeriodSeconds"] = 1
        c = spec["containers"][0]
        c.update({"image": real_node_image, "imagePullPolicy": "Never", "command": ["/bin/sh", "-c", CONSUMER_SCRIPT],
                  "volumeMounts": [{"name": "hubspot", "mountPath": "/etc/hubspot", "readOnly": True}]})
        spec["volumes"] = [{"name": "hubspot", "secret": {"secretName": "reporting-hubspot"}}]
    return body


def _deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "reporting", "namespace": NAMESPACE,
                     "labels": {"app": "reporting", "hubspot-operator.dev/consent": "true"}},  # consents to restarts
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "reporting"}},
            "template": {
                "metadata": {"labels": {"app": "reporting"}},
                "spec": {
                    "containers": [{
                        "name": "reporting",
                        "image": "example.invalid/reporting:1",
                        "env": [{
                            "name": "HUBSPOT_ACCESS_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "reporting-hubspot", "key": "access_token"}},
                        }],
                    }],
                },
            },
        },
    }
