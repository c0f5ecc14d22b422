{{/* Names, labels and the checks every template shares. */}}

{{- define "traxo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's fullname: every object's name starts with it, so two releases never collide. */}}
{{- define "traxo.fullname" -}}
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

{{- define "traxo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "traxo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "traxo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "traxo.labels" -}}
helm.sh/chart: {{ include "traxo.chart" . }}
{{ include "traxo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: traxo
{{- end }}

{{- define "traxo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "traxo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "traxo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the keys: the user's existingSecret or the chart's. */}}
{{- define "traxo.secretName" -}}
{{- default (include "traxo.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* "true" when the database is an SQLite file in the pod: no URL and no Secret of the user's, or an
sqlite URL. A URL in an existingSecret is taken to be PostgreSQL (the chart cannot read it). */}}
{{- define "traxo.sqlite" -}}
{{- if and (not .Values.database.existingSecret) (or (not .Values.database.url) (hasPrefix "sqlite" .Values.database.url)) }}true{{ end }}
{{- end }}

{{- define "traxo.sqliteUrl" -}}
{{- default "sqlite+aiosqlite:////var/lib/traxo/traxo.db" .Values.database.url }}
{{- end }}

{{/* Combinations the schema cannot express in a message a person understands. */}}
{{- define "traxo.validate" -}}
{{- if include "traxo.sqlite" . }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount is %d but the database is SQLite (database.url is empty or sqlite://): an SQLite file lives in one pod; set database.url to a postgresql:// URL (or database.existingSecret) to run more than one replica" (int .Values.replicaCount)) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs PostgreSQL: the database is SQLite (database.url is empty or sqlite://), one file in one pod; set database.url to a postgresql:// URL (or database.existingSecret)" }}
{{- end }}
{{- if .Values.workers.separate }}
{{- fail "workers.separate needs PostgreSQL: the database is SQLite (database.url is empty or sqlite://), which a second Deployment cannot share; set database.url to a postgresql:// URL (or database.existingSecret)" }}
{{- end }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "database.url and database.existingSecret are both set: give the URL in one place only" }}
{{- end }}
{{- if ge (int .Values.shutdown.delaySeconds) (int .Values.shutdown.deadlineSeconds) }}
{{- fail (printf "shutdown.delaySeconds (%d) must be below shutdown.deadlineSeconds (%d): the delay counts within the deadline, so in-flight requests, agents' streams and workers' runs would get no time to finish" (int .Values.shutdown.delaySeconds) (int .Values.shutdown.deadlineSeconds)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail (printf "autoscaling.maxReplicas (%d) is below autoscaling.minReplicas (%d)" (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- end }}
{{- end }}

{{- define "traxo.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else if and .Values.ingress.http.enabled .Values.ingress.http.hosts }}
{{- printf "https://%s" (first .Values.ingress.http.hosts).host }}
{{- end }}
{{- end }}

{{/* A key of the Secret as an env var; optional keys may be missing from an existingSecret. */}}
{{- define "traxo.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/* The environment of every control plane process (API, workers, migration). */}}
{{- define "traxo.env" -}}
{{- $secret := include "traxo.secretName" . }}
{{- $keys := .Values.secrets.keys }}
{{- $own := not .Values.secrets.existingSecret }}
{{- if include "traxo.sqlite" . }}
- name: TRAXO_DATABASE_URL
  value: {{ include "traxo.sqliteUrl" . | quote }}
{{- else if .Values.database.existingSecret }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_DATABASE_URL" "secret" .Values.database.existingSecret "key" .Values.database.existingSecretKey) }}
{{- else }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_DATABASE_URL" "secret" (include "traxo.fullname" .) "key" "database-url") }}
{{- end }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_METRICS_TOKEN" "secret" $secret "key" $keys.metricsToken) }}
{{- if or (not $own) .Values.secrets.redisUrl }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_REDIS_URL" "secret" $secret "key" $keys.redisUrl "optional" true) }}
{{- end }}
{{- if or (not $own) .Values.secrets.smtpPassword }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_SMTP_PASSWORD" "secret" $secret "key" $keys.smtpPassword "optional" true) }}
{{- end }}
{{- if or (not $own) .Values.secrets.revenuecatSecretKey }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_REVENUECAT_SECRET_KEY" "secret" $secret "key" $keys.revenuecatSecretKey "optional" true) }}
{{- end }}
{{- if or (not $own) .Values.secrets.revenuecatWebhookSecret }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_REVENUECAT_WEBHOOK_SECRET" "secret" $secret "key" $keys.revenuecatWebhookSecret "optional" true) }}
{{- end }}
{{- if or (not $own) .Values.secrets.revenuecatPublicKey }}
{{ include "traxo.secretEnv" (dict "name" "TRAXO_REVENUECAT_PUBLIC_KEY" "secret" $secret "key" $keys.revenuecatPublicKey "optional" true) }}
{{- end }}
- name: TRAXO_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: TRAXO_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: TRAXO_DEFAULT_PLAN
  value: {{ .Values.config.defaultPlan | quote }}
- name: TRAXO_GRPC_PORT
  value: {{ .Values.service.grpcPort | quote }}
- name: TRAXO_SHUTDOWN_DELAY_SECONDS
  value: {{ .Values.shutdown.delaySeconds | quote }}
- name: TRAXO_SHUTDOWN_DEADLINE_SECONDS
  value: {{ .Values.shutdown.deadlineSeconds | quote }}
{{- with (include "traxo.publicUrl" .) }}
- name: TRAXO_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.regions }}
- name: TRAXO_REGIONS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.defaultRegions }}
- name: TRAXO_DEFAULT_REGIONS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.smtp }}
{{- if .host }}
- name: TRAXO_SMTP_HOST
  value: {{ .host | quote }}
- name: TRAXO_SMTP_PORT
  value: {{ .port | quote }}
- name: TRAXO_SMTP_SECURITY
  value: {{ .security | quote }}
{{- with .username }}
- name: TRAXO_SMTP_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- with .from }}
- name: TRAXO_SMTP_FROM
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.grpc.tls.secretName }}
- name: TRAXO_GRPC_TLS_CERT
  value: /etc/traxo/grpc-tls/tls.crt
- name: TRAXO_GRPC_TLS_KEY
  value: /etc/traxo/grpc-tls/tls.key
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* What every control plane container mounts: a writable /tmp on the read-only root, the SQLite
volume, gRPC's certificate. */}}
{{- define "traxo.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "traxo.sqlite" . }}
- name: data
  mountPath: /var/lib/traxo
{{- end }}
{{- if .Values.grpc.tls.secretName }}
- name: grpc-tls
  mountPath: /etc/traxo/grpc-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "traxo.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if include "traxo.sqlite" . }}
- name: data
  {{- if .Values.database.sqlite.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "traxo.fullname" . }}-data
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}
{{- if .Values.grpc.tls.secretName }}
- name: grpc-tls
  secret:
    secretName: {{ .Values.grpc.tls.secretName }}
{{- end }}
{{- end }}

{{/* Pod-level fields the API, worker and migration pods share. */}}
{{- define "traxo.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* The kubelet's SIGKILL comes this long after SIGTERM. The drain ends by the deadline (the delay
counts within it), so delay + deadline + 5 leaves the process time to exit on its own even were the
delay added to the deadline, plus 5 s for closing the database and the process's exit. */}}
{{- define "traxo.terminationGracePeriodSeconds" -}}
{{- add (int .Values.shutdown.delaySeconds) (int .Values.shutdown.deadlineSeconds) 5 }}
{{- end }}
