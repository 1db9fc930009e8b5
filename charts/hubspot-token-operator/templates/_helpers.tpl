{{/* Chart name, overridable with nameOverride. */}}
{{- define "hto.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else <release>-<name> (just <release> when it already contains the name).
Truncated to 63 characters (DNS label limit).
*/}}
{{- define "hto.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hto.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object: the chart's, then commonLabels (which cannot override the chart's own). */}}
{{- define "hto.labels" -}}
helm.sh/chart: {{ include "hto.chart" . }}
{{ include "hto.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hubspot-token-operator
{{- range $k, $v := omit (.Values.commonLabels | default dict) "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/part-of" "app.kubernetes.io/component" }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end }}

{{/* Immutable selector labels (Deployment selector, Service selector). */}}
{{- define "hto.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hto.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hto.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hto.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hto.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Name of the metrics Service; the ServiceMonitor's job label and the OperatorDown alert use it. */}}
{{- define "hto.metricsServiceName" -}}
{{- printf "%s-metrics" (include "hto.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
RBAC rules for the namespaced resources the operator reads and writes. Rendered into the ClusterRole in
`watch.mode: all` and into one Role per watched namespace in `watch.mode: namespaces`. Keep in sync with
what the operator does (tests/unit/test_chart.py pins these verbs exactly).
*/}}
{{- define "hto.namespacedRules" -}}
- apiGroups: ["hubspot-operator.dev"]
  resources: ["hubspottokens"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["hubspot-operator.dev"]
  resources: ["hubspottokens/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{/* Name of the leader-election Lease: leaderElection.leaseName, else the full name (one lease per release). */}}
{{- define "hto.leaseName" -}}
{{- default (include "hto.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Refuses values that cannot work together: several replicas without leader election would refresh (and
rotate) the same tokens concurrently; the lease timings must satisfy what the operator checks at start.
*/}}
{{- define "hto.validateHA" -}}
{{- $le := .Values.leaderElection }}
{{- if and (gt (int .Values.replicaCount) 1) (not $le.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: replicas without leader election would refresh (and rotate) the same tokens concurrently. Set replicaCount: 1 or leaderElection.enabled: true" (int .Values.replicaCount)) }}
{{- end }}
{{- if $le.enabled }}
{{- $retry := float64 $le.retryPeriodSeconds }}
{{- $renew := float64 $le.renewDeadlineSeconds }}
{{- $duration := float64 $le.leaseDurationSeconds }}
{{- if not (and (gt $retry 0.0) (lt $retry $renew) (lt $renew $duration)) }}
{{- fail (printf "leaderElection needs 0 < retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds (got %v / %v / %v)" $le.retryPeriodSeconds $le.renewDeadlineSeconds $le.leaseDurationSeconds) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Default topologySpreadConstraints: spread this release's pods across zones, never blocking scheduling. */}}
{{- define "hto.defaultTopologySpreadConstraints" -}}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "hto.selectorLabels" . | nindent 6 }}
{{- end }}

{{/* The HubSpotToken CRD's name (files/crds/, a copy of the repository's crds/). */}}
{{- define "hto.crdName" -}}
hubspottokens.hubspot-operator.dev
{{- end }}

{{/*
"true" when this release renders the CRD: crds.enabled, and the CRD either does not exist yet or already
belongs to this release (Helm's meta.helm.sh/release-name and release-namespace annotations). A CRD that
exists and belongs to someone else (another release of this chart, e.g. another shard; `kubectl apply -f
crds/`; a chart version that installed it from crds/) is left alone and NOTES.txt says how to hand it over
(docs/install.md). Without a cluster (helm template, GitOps renderers) lookup finds nothing: rendered.
*/}}
{{- define "hto.crdManagedHere" -}}
{{- if .Values.crds.enabled }}
{{- $live := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" (include "hto.crdName" .) }}
{{- if not $live }}true
{{- else }}
{{- $ann := dig "metadata" "annotations" dict $live }}
{{- if and (eq (get $ann "meta.helm.sh/release-name") .Release.Name) (eq (get $ann "meta.helm.sh/release-namespace") .Release.Namespace) }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}
