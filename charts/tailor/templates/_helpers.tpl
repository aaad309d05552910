{{/*
Names and labels: every template takes them from here.
*/}}

{{/* The chart name, overridable. */}}
{{- define "tailor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<release>-<chart>` (or the release alone when it contains the chart name), 40 chars so suffixes fit. */}}
{{- define "tailor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a component's objects: `<fullname>-<component>`. Call with (dict "root" $ "component" "api"). */}}
{{- define "tailor.componentName" -}}
{{- printf "%s-%s" (include "tailor.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tailor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component. Call with (dict "root" $ "component" "api"). */}}
{{- define "tailor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tailor.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of a component's objects. Call with (dict "root" $ "component" "api"). */}}
{{- define "tailor.labels" -}}
helm.sh/chart: {{ include "tailor.chart" .root }}
{{ include "tailor.selectorLabels" . }}
app.kubernetes.io/part-of: tailor
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* A Tailor image: registry + repository + tag. Call with (dict "root" $ "repository" "..."). */}}
{{- define "tailor.image" -}}
{{- $registry := .root.Values.global.imageRegistry }}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- if $registry }}{{ printf "%s/%s:%s" $registry .repository $tag }}{{ else }}{{ printf "%s:%s" .repository $tag }}{{ end }}
{{- end }}

{{/* A third-party image given whole (`repo:tag`), behind the global registry. */}}
{{- define "tailor.externalImage" -}}
{{- if .root.Values.global.imageRegistry }}{{ printf "%s/%s" .root.Values.global.imageRegistry .image }}{{ else }}{{ .image }}{{ end }}
{{- end }}

{{- define "tailor.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Secret names. */}}
{{- define "tailor.s3SecretName" -}}
{{- default (include "tailor.componentName" (dict "root" . "component" "s3")) .Values.objectStore.existingSecret }}
{{- end }}

{{- define "tailor.appSecretName" -}}
{{- default (include "tailor.componentName" (dict "root" . "component" "app")) .Values.secrets.existingSecret }}
{{- end }}

{{- define "tailor.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecret }}{{ else }}{{ include "tailor.componentName" (dict "root" . "component" "database") }}{{ end }}
{{- end }}

{{/* Service names of the in-release dependencies and the API. */}}
{{- define "tailor.apiUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "tailor.componentName" (dict "root" . "component" "api")) .Release.Namespace .Values.api.service.port }}
{{- end }}

{{/* The gateway's ingress host: its own, else (under a path) the API's first host. */}}
{{- define "tailor.gatewayHost" -}}
{{- $ingress := .Values.gateway.ingress }}
{{- if $ingress.host }}{{ $ingress.host }}
{{- else if and (ne $ingress.path "/") .Values.ingress.enabled .Values.ingress.hosts }}{{ first .Values.ingress.hosts }}
{{- else }}{{ fail "gateway.ingress.host is required when gateway.ingress.enabled is true (or a gateway.ingress.path under the API's ingress host)" }}
{{- end }}
{{- end }}

{{/* Where IDEs reach the gateway: gateway.publicUrl, else its ingress, else its in-cluster Service. */}}
{{- define "tailor.gatewayUrl" -}}
{{- $gw := .Values.gateway }}
{{- if $gw.publicUrl }}
{{- $gw.publicUrl | trimSuffix "/" }}
{{- else if $gw.ingress.enabled }}
{{- $host := include "tailor.gatewayHost" . }}
{{- $tls := ternary $gw.ingress.tls .Values.ingress.tls (gt (len $gw.ingress.tls) 0) }}
{{- $scheme := ternary "https" "http" (gt (len $tls) 0) }}
{{- printf "%s://%s%s" $scheme $host ($gw.ingress.path | trimSuffix "/") }}
{{- else }}
{{- printf "http://%s.%s.svc:%v" (include "tailor.componentName" (dict "root" . "component" "gateway")) .Release.Namespace $gw.service.port }}
{{- end }}
{{- end }}

{{/* The Redis password's Secret (key `redis-password`): the admin's, else the one the chart generates
for the bundled Redis; empty when there is none (an external Redis without auth). */}}
{{- define "tailor.redisSecretName" -}}
{{- if .Values.redis.auth.existingSecret }}{{ .Values.redis.auth.existingSecret }}
{{- else if .Values.redis.enabled }}{{ include "tailor.componentName" (dict "root" . "component" "redis") }}
{{- end }}
{{- end }}

{{/* The bundled Redis's URL for database `db`, its password taken from TAILOR_REDIS_PASSWORD
(Kubernetes expands `$(VAR)` in env values from the variables defined before). */}}
{{- define "tailor.bundledRedisUrl" -}}
{{- printf "redis://:$(TAILOR_REDIS_PASSWORD)@%s:6379/%s" (include "tailor.componentName" (dict "root" .root "component" "redis")) .db }}
{{- end }}

{{- define "tailor.brokerUrl" -}}
{{- if .Values.redis.enabled }}
{{- include "tailor.bundledRedisUrl" (dict "root" . "db" "0") }}
{{- else }}
{{- required "redis.url is required when redis.enabled is false" .Values.redis.url }}
{{- end }}
{{- end }}

{{- define "tailor.resultBackend" -}}
{{- if .Values.redis.enabled }}
{{- include "tailor.bundledRedisUrl" (dict "root" . "db" "1") }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/* The environment every Tailor process reads its Settings from (TAILOR_*). */}}
{{- define "tailor.env" -}}
- name: TAILOR_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tailor.databaseSecretName" . }}
      key: database-url
{{- with include "tailor.redisSecretName" . }}
- name: TAILOR_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: redis-password
{{- end }}
- name: TAILOR_BROKER_URL
  value: {{ include "tailor.brokerUrl" . | quote }}
- name: TAILOR_RESULT_BACKEND
  value: {{ include "tailor.resultBackend" . | quote }}
- name: TAILOR_OBJECT_STORE_URL
  value: {{ .Values.objectStore.url | quote }}
- name: TAILOR_S3_REGION
  value: {{ .Values.objectStore.region | quote }}
{{- with .Values.objectStore.endpointUrl }}
- name: TAILOR_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
- name: TAILOR_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tailor.appSecretName" . }}
      key: secret-key
- name: TAILOR_EXECUTOR
  value: kubernetes
{{- if .Values.gateway.enabled }}
- name: TAILOR_SERVE_URL
  value: {{ include "tailor.gatewayUrl" . | quote }}
{{- end }}
- name: TAILOR_KUBERNETES_NAMESPACE_PREFIX
  value: {{ .Values.operator.namespacePrefix | quote }}
{{- $gpu := get .Values.gpu.types .Values.gpu.defaultType | default dict }}
- name: TAILOR_CLUSTER_GPUS_PER_NODE
  value: {{ $gpu.gpusPerNode | default 8 | quote }}
- name: TAILOR_CLUSTER_MAX_NODES
  value: {{ $gpu.maxNodes | default 64 | quote }}
- name: TAILOR_DEFAULT_GPU_TYPE
  value: {{ .Values.gpu.defaultType | quote }}
- name: TAILOR_HOME
  value: /tmp/tailor
- name: HOME
  value: /tmp
{{- end }}

{{- define "tailor.s3EnvFrom" -}}
- secretRef:
    name: {{ include "tailor.s3SecretName" . }}
{{- end }}

{{/* Security contexts (values: podSecurityContext, containerSecurityContext). */}}
{{- define "tailor.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{- define "tailor.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/* The operator's config file (tailor_operator.config.OperatorConfig) as JSON. */}}
{{- define "tailor.operatorConfig" -}}
{{- $images := dict
  "trainer" (include "tailor.image" (dict "root" . "repository" .Values.workloads.trainer.repository))
  "inference" (include "tailor.image" (dict "root" . "repository" .Values.workloads.inference.repository))
  "vllm" (include "tailor.externalImage" (dict "root" . "image" .Values.workloads.vllmImage))
  "s3Sync" (include "tailor.externalImage" (dict "root" . "image" .Values.workloads.s3SyncImage))
  "pullPolicy" .Values.image.pullPolicy }}
{{- $store := dict
  "url" .Values.objectStore.url
  "endpointUrl" (.Values.objectStore.endpointUrl | default nil)
  "region" .Values.objectStore.region
  "teamCredentials" .Values.objectStore.teams.credentials
  "secretName" "tailor-object-store"
  "serviceAccountName" .Values.objectStore.teams.serviceAccountName
  "serviceAccountAnnotations" .Values.objectStore.teams.serviceAccountAnnotations }}
{{- $kueue := dict
  "enabled" .Values.kueue.enabled
  "cohort" .Values.kueue.cohort
  "localQueueName" .Values.kueue.localQueueName
  "clusterQueuePrefix" .Values.kueue.clusterQueuePrefix
  "trainingPriorityClass" .Values.kueue.priorityClasses.training.name
  "servingPriorityClass" .Values.kueue.priorityClasses.serving.name }}
{{- $apiPods := dict
  "app.kubernetes.io/name" (include "tailor.name" .)
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/component" "api" }}
{{- $egress := dict
  "enabled" .Values.teamNetwork.egress
  "dnsNamespace" .Values.teamNetwork.dnsNamespace
  "dnsPodLabels" .Values.teamNetwork.dnsPodLabels
  "apiPodLabels" $apiPods
  "apiPort" .Values.api.port
  "objectStoreCidrs" .Values.teamNetwork.objectStoreCidrs
  "objectStorePorts" .Values.teamNetwork.objectStorePorts
  "extra" .Values.teamNetwork.extraEgress }}
{{- $operator := include "tailor.componentName" (dict "root" . "component" "operator") }}
{{- $access := dict
  "clusterRole" (printf "%s-team" $operator)
  "serviceAccount" $operator
  "serviceAccountNamespace" .Release.Namespace }}
{{- $config := dict
  "teamAccess" (ternary $access nil .Values.rbac.create)
  "teamEgress" $egress
  "namespacePrefix" .Values.operator.namespacePrefix
  "platformNamespace" .Release.Namespace
  "defaultGpuType" .Values.gpu.defaultType
  "gpuTypes" .Values.gpu.types
  "images" $images
  "objectStore" $store
  "kueue" $kueue
  "masterPort" .Values.operator.masterPort
  "finishedTtlSeconds" .Values.operator.finishedJobTtlSeconds
  "servingPort" 8000
  "gatewayPodLabels" (include "tailor.selectorLabels" (dict "root" . "component" "gateway") | fromYaml)
  "apiUrl" (include "tailor.apiUrl" .) }}
{{- toPrettyJson $config }}
{{- end }}

{{/*
A NetworkPolicy letting only this release's own pods (its namespace, its instance label) reach
a bundled data service: team pods, whatever runs in other namespaces and other releases cannot.
Call with (dict "root" $ "component" "redis" "port" 6379).
*/}}
{{- define "tailor.dataNetworkPolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "tailor.componentName" . }}
  labels:
    {{- include "tailor.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "tailor.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .root.Release.Name }}
      ports:
        - port: {{ .port }}
          protocol: TCP
{{- end }}
