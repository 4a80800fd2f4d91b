{{/* The chart's name. */}}
{{- define "imprint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Base name of the release's objects. */}}
{{- define "imprint.fullname" -}}
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

{{- define "imprint.agentName" -}}
{{- printf "%s-agent" (include "imprint.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "imprint.controllerName" -}}
{{- printf "%s-controller" (include "imprint.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "imprint.agentServiceAccount" -}}
{{- default (include "imprint.agentName" .) .Values.serviceAccount.agentName }}
{{- end }}

{{- define "imprint.controllerServiceAccount" -}}
{{- default (include "imprint.controllerName" .) .Values.serviceAccount.controllerName }}
{{- end }}

{{- define "imprint.agentPriorityClassName" -}}
{{- if .Values.agent.priorityClassName }}
{{- .Values.agent.priorityClassName }}
{{- else if .Values.agent.priorityClass.create }}
{{- include "imprint.agentName" . }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "imprint.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "imprint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: imprint
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of a component: include "imprint.selectorLabels" (list . "agent") */}}
{{- define "imprint.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "imprint.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag: appVersion). */}}
{{- define "imprint.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}
