{{- define "targetlock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "targetlock.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "targetlock.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "targetlock.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Common labels; call with (dict "ctx" $ "component" "webhook"). */}}
{{- define "targetlock.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "targetlock.selectorLabels" . }}
{{- end -}}

{{- define "targetlock.selectorLabels" -}}
app.kubernetes.io/name: {{ include "targetlock.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* repository@digest when a digest is given (the tag is then ignored), else repository:tag. */}}
{{- define "targetlock.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "targetlock.orchestrator" -}}{{ include "targetlock.fullname" . }}-orchestrator{{- end -}}
{{- define "targetlock.webhook" -}}{{ include "targetlock.fullname" . }}-webhook{{- end -}}
{{- define "targetlock.webhookCert" -}}{{ include "targetlock.fullname" . }}-webhook-cert{{- end -}}
{{- define "targetlock.webhookSecret" -}}
{{- if eq .Values.certs.mode "manual" -}}
{{ required "certs.manual.secretName is required when certs.mode=manual" .Values.certs.manual.secretName }}
{{- else -}}
{{ include "targetlock.fullname" . }}-webhook-tls
{{- end -}}
{{- end -}}

{{- /* The client CA volume (webhook.clientAuth): only the CA certificate
       is projected, never a CA key stored beside it. */ -}}
{{- define "targetlock.clientCAVolume" -}}
{{- $a := .Values.webhook.clientAuth -}}
{{- if eq $a.caSource "configMap" -}}
configMap:
  name: {{ required "webhook.clientAuth.caConfigMap.name is required when webhook.clientAuth.caSource=configMap" $a.caConfigMap.name }}
  items: [{key: {{ $a.caConfigMap.key }}, path: ca.crt}]
{{- else if eq $a.caSource "cert-manager" -}}
secret:
  secretName: {{ include "targetlock.fullname" . }}-ca
  items: [{key: ca.crt, path: ca.crt}]
{{- else -}}
secret:
  secretName: {{ required "webhook.clientAuth.caSecret.name is required when webhook.clientAuth.caSource=secret" $a.caSecret.name }}
  items: [{key: {{ $a.caSecret.key }}, path: ca.crt}]
{{- end -}}
{{- end -}}

{{/* Restricted pod security: non-root, read-only root, no privilege escalation, no capabilities, seccomp RuntimeDefault. */}}
{{- define "targetlock.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "targetlock.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Preferred anti-affinity across nodes unless the user set affinity. */}}
{{- define "targetlock.affinity" -}}
{{- if .values.affinity -}}
{{ toYaml .values.affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "targetlock.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* Environment every pod gets from the downward API. */}}
{{- define "targetlock.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
{{- end -}}

{{/* "true" in kubernaut mode (guard kubernaut's own CRDs), "" in standalone mode. */}}
{{- define "targetlock.kubernaut" -}}
{{- if eq .Values.mode "kubernaut" }}true{{ end -}}
{{- end -}}

{{/* The API group of the WorkflowExecutions the webhook and the policy guard. */}}
{{- define "targetlock.executionGroup" -}}
{{- if include "targetlock.kubernaut" . }}kubernaut.ai{{ else }}targetlock.io{{ end -}}
{{- end -}}

{{/* "true" when the chart renders its CRDs: standalone mode with crds.install. */}}
{{- define "targetlock.installCRDs" -}}
{{- if and (not (include "targetlock.kubernaut" .)) .Values.crds.install }}true{{ end -}}
{{- end -}}

{{/* The CRDs of templates/crds/, one per line (checked against the render by test/chart). */}}
{{- define "targetlock.crdNames" -}}
remediationrequests.targetlock.io
workflowexecutions.targetlock.io
{{- end -}}

{{/* kubernaut's RemediationOrchestrator ServiceAccount, as "namespace/name". */}}
{{- define "targetlock.kubernautOrchestrator" -}}
{{ .Values.kubernaut.namespace }}/{{ .Values.kubernaut.orchestratorServiceAccount }}
{{- end -}}

{{/* A pod template's labels, call with (dict "ctx" $ "component" c "values" v):
     the chart's own (the Deployment's selector among them) over v.podLabels. */}}
{{- define "targetlock.podLabels" -}}
{{ toYaml (merge (include "targetlock.labels" . | fromYaml) (.values.podLabels | default dict)) }}
{{- end -}}

{{/* Scheduling fields both Deployments take, call with (dict "ctx" $
     "component" c "values" v): v.priorityClassName and
     v.topologySpreadConstraints, a constraint without a labelSelector
     getting the component's selector labels. */}}
{{- define "targetlock.podScheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if .values.topologySpreadConstraints }}
{{- $out := list }}
{{- range .values.topologySpreadConstraints }}
{{- $tsc := deepCopy . }}
{{- if not $tsc.labelSelector }}
{{- $_ := set $tsc "labelSelector" (dict "matchLabels" (include "targetlock.selectorLabels" $ | fromYaml)) }}
{{- end }}
{{- $out = append $out $tsc }}
{{- end }}
topologySpreadConstraints: {{- toYaml $out | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The names `certs verify` (kubectl targetlock certs verify, and the
     webhook image's `webhook certs verify`) must check: the release's
     --release when the chart names it as the plugin assumes, or each name
     when nameOverride or fullnameOverride renames it. */}}
{{- define "targetlock.certsVerifyNames" -}}
{{- if or .Values.nameOverride .Values.fullnameOverride -}}
--webhook-configuration {{ include "targetlock.fullname" . }} --secret {{ include "targetlock.webhookSecret" . }} --certificate {{ include "targetlock.webhookCert" . }}
{{- else -}}
--release {{ .Release.Name }}
{{- end -}}
{{- end -}}

{{/* helm test hook annotations; call with the hook weight as a string. */}}
{{- define "targetlock.testHook" -}}
helm.sh/hook: test
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}
