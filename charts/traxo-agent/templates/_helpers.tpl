{{/* Names, labels and the checks every template shares. */}}

{{- define "traxo-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Every object's name is the release's fullname (plus a suffix), so two releases (two regions)
live side by side in one namespace. */}}
{{- define "traxo-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "traxo-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "traxo-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "traxo-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "traxo-agent.labels" -}}
helm.sh/chart: {{ include "traxo-agent.chart" . }}
{{ include "traxo-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: traxo
app.kubernetes.io/component: agent
traxo.dev/region: {{ .Values.region | quote }}
{{- end }}

{{- define "traxo-agent.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.browser.enabled }}
{{- $tag = printf "%s%s" $tag .Values.browser.tagSuffix }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{- define "traxo-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "traxo-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "traxo-agent.tokenSecretName" -}}
{{- default (printf "%s-token" (include "traxo-agent.fullname" .)) .Values.token.existingSecret }}
{{- end }}

{{- define "traxo-agent.tokenSecretKey" -}}
{{- if .Values.token.existingSecret }}{{ .Values.token.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* "true" when an extra CA bundle is mounted. */}}
{{- define "traxo-agent.extraCA" -}}
{{- if or .Values.extraCA.configMap .Values.extraCA.secret }}true{{ end }}
{{- end }}

{{/* Combinations the schema cannot explain in words. */}}
{{- define "traxo-agent.validate" -}}
{{- $_ := required "region is required: the region these agents serve, the one their token was created for (--set region=eu-west-1)" .Values.region }}
{{- $_ = required "controlPlane.address is required: HOST:PORT of the control plane's gRPC service (--set controlPlane.address=grpc.traxo.example.com:443)" .Values.controlPlane.address }}
{{- if and .Values.token.value .Values.token.existingSecret }}
{{- fail "token.value and token.existingSecret are both set: give the agent token in one place only" }}
{{- end }}
{{- if not (or .Values.token.value .Values.token.existingSecret) }}
{{- fail "token: set token.existingSecret (a Secret holding the agent token under token.existingSecretKey) or token.value; create a token with `traxo agents create-token --region REGION`" }}
{{- end }}
{{- if and .Values.extraCA.configMap .Values.extraCA.secret }}
{{- fail "extraCA.configMap and extraCA.secret are both set: the CA bundle comes from one of them" }}
{{- end }}
{{- if and (include "traxo-agent.extraCA" .) .Values.extraCA.controlPlane (not .Values.controlPlane.tls) }}
{{- fail "extraCA.controlPlane needs controlPlane.tls: true (the CA verifies the control plane's TLS certificate); set extraCA.controlPlane: false to use the CA for checks only" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled }}
{{- fail "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled are both true: Prometheus would scrape every agent twice; enable one of them" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled (a ServiceMonitor scrapes through the Service); use metrics.podMonitor without a Service" }}
{{- end }}
{{- end }}
