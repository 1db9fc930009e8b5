"""Workloads for rollout tests: Deployments, StatefulSets, DaemonSets (scheduled by the real scheduler,
"run" by kwok) and a minimal Argo Rollouts CRD, so restarts are observed end to end."""

from __future__ import annotations

import yaml
from kubernetes import client

RESTARTED_FOR = "hubspot-operator.dev/restarted-for"

ARGO_ROLLOUT_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rollouts.argoproj.io}
spec:
  group: argoproj.io
  scope: Namespaced
  names: {plural: rollouts, singular: rollout, kind: Rollout, shortNames: [ro]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""

from hubspot_token_operator.tenancy import CONSENT_LABEL

# Workloads the tests create consent to restarts by the HubSpotTokens of their namespace (tenancy.py).
CONSENT = {CONSENT_LABEL: "true"}


def _template(name: str) -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": name}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="example.invalid/app:1")]),
    )


def deployment(apps: client.AppsV1Api, ns: str, name: str, labels: dict | None = None, replicas: int = 1) -> None:
    apps.create_namespaced_deployment(
        ns,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, labels={**CONSENT, **(labels or {})}),
            spec=client.V1DeploymentSpec(
                replicas=replicas, selector=client.V1LabelSelector(match_labels={"app": name}), template=_template(name)
            ),
        ),
    )


def statefulset(apps: client.AppsV1Api, ns: str, name: str) -> None:
    apps.create_namespaced_stateful_set(
        ns,
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name=name, labels=dict(CONSENT)),
            spec=client.V1StatefulSetSpec(
                replicas=1, service_name=name, selector=client.V1LabelSelector(match_labels={"app": name}),
                template=_template(name),
            ),
        ),
    )


def daemonset(apps: client.AppsV1Api, ns: str, name: str) -> None:
    apps.create_namespaced_daemon_set(
        ns,
        client.V1DaemonSet(
            metadata=client.V1ObjectMeta(name=name, labels=dict(CONSENT)),
            spec=client.V1DaemonSetSpec(selector=client.V1LabelSelector(match_labels={"app": name}), template=_template(name)),
        ),
    )


def install_argo_crd(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(yaml.safe_load(ARGO_ROLLOUT_CRD))
    except client.ApiException as e:
        if e.status != 409:
            raise


def argo_rollout(custom: client.CustomObjectsApi, ns: str, name: str) -> None:
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": dict(CONSENT)},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}},
    }
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", ns, "rollouts", body)


def template_value(apps: client.AppsV1Api, ns: str, kind: str, name: str) -> str | None:
    read = {"Deployment": apps.read_namespaced_deployment, "StatefulSet": apps.read_namespaced_stateful_set,
            "DaemonSet": apps.read_namespaced_daemon_set}[kind]
    obj = read(name, ns)
    return (obj.spec.template.metadata.annotations or {}).get(RESTARTED_FOR)


def rollout_complete(apps: client.AppsV1Api, ns: str, kind: str, name: str) -> bool:
    if kind == "Deployment":
        d = apps.read_namespaced_deployment(name, ns)
        s = d.status
        return (s.observed_generation or 0) >= d.metadata.generation and (s.updated_replicas or 0) == d.spec.replicas \
            and (s.available_replicas or 0) == d.spec.replicas
    if kind == "StatefulSet":
        s = apps.read_namespaced_stateful_set(name, ns)
        st = s.status
        return (st.observed_generation or 0) >= s.metadata.generation and st.update_revision == st.current_revision \
            and (st.ready_replicas or 0) == s.spec.replicas
    d = apps.read_namespaced_daemon_set(name, ns)
    st = d.status
    return (st.observed_generation or 0) >= d.metadata.generation and \
        st.updated_number_scheduled == st.desired_number_scheduled and st.number_available == st.desired_number_scheduled


def replicasets(apps: client.AppsV1Api, ns: str, deployment_name: str) -> list:
    return [rs for rs in apps.list_namespaced_replica_set(ns, label_selector=f"app={deployment_name}").items]
