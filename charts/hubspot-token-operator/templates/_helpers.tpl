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

{{/* Labels on every object. */}}
{{- define "hto.labels" -}}
helm.sh/chart: {{ include "hto.chart" . }}
{{ include "hto.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hubspot-token-operator
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
